package techniques

import (
	"math"
	"reflect"
	"slices"
	"testing"
)

func TestFineTuneValidate(t *testing.T) {
	tests := []validateCase[*FineTune]{
		{"defaults", nil, ""},
		{"epochs", func(f *FineTune) { f.Epochs = 2.5 }, ""},
		{"teacher", func(f *FineTune) { f.Teacher, f.Epochs = "big", 1 }, ""},
		{"hard", func(f *FineTune) { f.KDKind = KDHard }, ""},
		{"alpha bounds", func(f *FineTune) { f.KDAlpha = 1 }, ""},
		{"negative epochs", func(f *FineTune) { f.Epochs = -1 }, "finetune_epochs -1: want 0..1000"},
		{"too many epochs", func(f *FineTune) { f.Epochs = 1001 }, "finetune_epochs 1001"},
		{"lr", func(f *FineTune) { f.LR = -1e-3 }, "lr -0.001: want >= 0"},
		{"teacher without epochs", func(f *FineTune) { f.Teacher = "big" }, `teacher "big" is used by fine-tuning only: set finetune_epochs`},
		{"temperature 0", func(f *FineTune) { f.KDTemperature = 0 }, "kd_temperature 0: want > 0"},
		{"temperature NaN", func(f *FineTune) { f.KDTemperature = math.NaN() }, "kd_temperature NaN"},
		{"alpha", func(f *FineTune) { f.KDAlpha = 1.5 }, "kd_alpha 1.5: want [0, 1]"},
		{"kind", func(f *FineTune) { f.KDKind = "feature" }, `kd_kind "feature": want soft or hard`},
		{"smoothing", func(f *FineTune) { f.LabelSmoothing = 1 }, "label_smoothing 1: want [0, 1)"},
		{"smoothing a distillation", func(f *FineTune) { f.LabelSmoothing, f.Teacher, f.Epochs = 0.1, "big", 1 }, ""},
		{"smoothing without a teacher", func(f *FineTune) { f.LabelSmoothing, f.Epochs = 0.1, 1 }, "label_smoothing 0.1 smooths the label term of distillation: set teacher"},
		{"several", func(f *FineTune) { f.LR, f.KDAlpha = -1, 2 }, "lr -1: want >= 0; kd_alpha 2"},
	}
	runValidate(t, "the fine-tune", func() *FineTune { f := NewFineTune(); return &f }, tests)
}

func TestFineTuneReferences(t *testing.T) {
	f := NewFineTune()
	if r := f.References(); r != nil {
		t.Errorf("references without teacher: %v", r)
	}
	f.Teacher = "big"
	if r := f.References(); !slices.Equal(r, []string{"big"}) {
		t.Errorf("references: %v", r)
	}
	// Every training config refers to its block's teacher.
	for _, c := range []interface {
		Config
		References() []string
	}{NewQuantizeConfig(), NewLowRankConfig(), NewPruneConfig(), NewDistillConfig()} {
		reflect.ValueOf(c).Elem().FieldByName("FineTune").FieldByName("Teacher").SetString("big")
		if r := c.References(); !slices.Equal(r, []string{"big"}) {
			t.Errorf("%T references %v, want [big]", c, r)
		}
	}
}

// TestFineTuneDefaults: every technique starts from the shared block's
// defaults; quantize's QAT rate and distill's one epoch differ.
func TestFineTuneDefaults(t *testing.T) {
	base := NewFineTune()
	if base != (FineTune{KDTemperature: 4, KDAlpha: 0.5, KDKind: KDSoft}) {
		t.Errorf("NewFineTune() = %+v", base)
	}
	withLR, withEpochs := base, base
	withLR.LR = DefaultQATLR
	withEpochs.Epochs = 1
	tests := []struct {
		technique string
		block     FineTune
		want      FineTune
	}{
		{Quantize, NewQuantizeConfig().FineTune, withLR},
		{LowRank, NewLowRankConfig().FineTune, base},
		{Prune, NewPruneConfig().FineTune, base},
		{Distill, NewDistillConfig().FineTune, withEpochs},
	}
	for _, tt := range tests {
		if tt.block != tt.want {
			t.Errorf("%s: fine-tune defaults %+v, want %+v", tt.technique, tt.block, tt.want)
		}
	}
}
