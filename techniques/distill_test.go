package techniques

import "testing"

func TestDistillDefaults(t *testing.T) {
	c := NewDistillConfig()
	if c.KDTemperature != 4 || c.KDAlpha != 0.5 || c.KDKind != KDSoft || c.Epochs != 1 || c.Teacher != "" || c.LR != 0 {
		t.Errorf("defaults %+v", c)
	}
}

func TestDistillValidate(t *testing.T) {
	type c = *DistillConfig
	withTeacher := func() c {
		c := NewDistillConfig()
		c.Teacher = "big"
		return c
	}
	runValidate(t, Distill, withTeacher, []validateCase[c]{
		{"ok", nil, ""},
		{"hard", func(c c) { c.KDKind = KDHard }, ""},
		{"no teacher", func(c c) { c.Teacher = "" }, "teacher is required"},
		{"temperature", func(c c) { c.KDTemperature = 0 }, "kd_temperature"},
		{"alpha", func(c c) { c.KDAlpha = 1.5 }, "kd_alpha"},
		{"kind", func(c c) { c.KDKind = "feature" }, "kd_kind"},
		{"epochs", func(c c) { c.Epochs = 0 }, "finetune_epochs 0: want > 0"},
		{"lr", func(c c) { c.LR = -1 }, "lr"},
		{"smoothing", func(c c) { c.LabelSmoothing = 1 }, "label_smoothing"},
	})
}
