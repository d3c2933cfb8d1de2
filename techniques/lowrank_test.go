package techniques

import (
	"slices"
	"testing"
)

func TestLowRankDefaults(t *testing.T) {
	c := NewLowRankConfig()
	if !slices.Equal(c.Layers, LowRankGroups) || c.ParamsKept != DefaultParamsKept || c.Rank != 0 || c.Energy != 0 || c.KeepLarger || c.Epochs != 0 {
		t.Errorf("defaults %+v", c)
	}
}

func TestLowRankValidate(t *testing.T) {
	type c = *LowRankConfig
	runValidate(t, LowRank, NewLowRankConfig, []validateCase[c]{
		{"defaults", nil, ""},
		{"rank", func(c c) { c.Rank = 16 }, ""},
		{"energy", func(c c) { c.Energy = 0.9 }, ""},
		{"params kept", func(c c) { c.ParamsKept = 0.25 }, ""},
		{"fine-tune with teacher", func(c c) { c.Epochs, c.Teacher = 1, "big" }, ""},
		{"rank and energy", func(c c) { c.Rank, c.Energy = 16, 0.9 }, "one way"},
		{"params kept and rank", func(c c) { c.ParamsKept, c.Rank = 0.25, 16 }, "one way"},
		{"params kept 0", func(c c) { c.ParamsKept = 0 }, "params_kept"},
		{"params kept 1 changes nothing", func(c c) { c.ParamsKept = 1 }, "params_kept 1: want (0, 1)"},
		{"energy 2", func(c c) { c.Energy = 2 }, "energy"},
		{"negative rank", func(c c) { c.Rank = -1 }, "rank -1"},
		{"head", func(c c) { c.Layers = []string{"head"} }, "head cannot be factored"},
		{"unknown", func(c c) { c.Layers = []string{"mlp"} }, "unknown group"},
		{"empty", func(c c) { c.Layers = nil }, "layers is empty"},
		{"teacher without fine-tune", func(c c) { c.Teacher = "big" }, "finetune_epochs"},
	})
}
