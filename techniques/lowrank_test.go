package techniques

import (
	"slices"
	"testing"
)

func TestLowRankDefaults(t *testing.T) {
	c := NewLowRankConfig()
	if !slices.Equal(c.Layers, LowRankGroups) || c.RankRatio != DefaultRankRatio || c.Rank != 0 || c.Energy != 0 || c.KeepLarger || c.Epochs != 0 {
		t.Errorf("defaults %+v", c)
	}
}

func TestLowRankValidate(t *testing.T) {
	type c = *LowRankConfig
	runValidate(t, LowRank, NewLowRankConfig, []validateCase[c]{
		{"defaults", nil, ""},
		{"rank", func(c c) { c.Rank = 16 }, ""},
		{"energy", func(c c) { c.Energy = 0.9 }, ""},
		{"ratio", func(c c) { c.RankRatio = 0.25 }, ""},
		{"fine-tune with teacher", func(c c) { c.Epochs, c.Teacher = 1, "big" }, ""},
		{"rank and energy", func(c c) { c.Rank, c.Energy = 16, 0.9 }, "one way"},
		{"ratio and rank", func(c c) { c.RankRatio, c.Rank = 0.25, 16 }, "one way"},
		{"ratio 0", func(c c) { c.RankRatio = 0 }, "rank_ratio"},
		{"energy 2", func(c c) { c.Energy = 2 }, "energy"},
		{"negative rank", func(c c) { c.Rank = -1 }, "rank -1"},
		{"head", func(c c) { c.Layers = []string{"head"} }, "head cannot be factored"},
		{"unknown", func(c c) { c.Layers = []string{"mlp"} }, "unknown group"},
		{"empty", func(c c) { c.Layers = nil }, "layers is empty"},
		{"teacher without fine-tune", func(c c) { c.Teacher = "big" }, "finetune_epochs"},
	})
}
