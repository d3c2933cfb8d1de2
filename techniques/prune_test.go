package techniques

import "testing"

func TestPruneValidate(t *testing.T) {
	type c = *PruneConfig
	runValidate(t, Prune, NewPruneConfig, []validateCase[c]{
		{"defaults", nil, ""},
		{"heads", func(c c) { c.Kind, c.Amount = KindHeads, 0.25 }, ""},
		{"amount 0", func(c c) { c.Amount = 0 }, ""},
		{"amount 1", func(c c) { c.Amount = 1 }, "amount 1: want [0, 1)"},
		{"negative amount", func(c c) { c.Amount = -0.1 }, "amount"},
		{"bad kind", func(c c) { c.Kind = "channels" }, "kind"},
		{"bad scope", func(c c) { c.Scope = "block" }, "scope"},
		{"bad layer", func(c c) { c.Layers = []string{"qkv", "conv"} }, "layers"},
		{"no layers", func(c c) { c.Layers = nil }, "nothing to prune"},
		{"iterative without fine-tuning", func(c c) { c.Schedule = "iterative" }, "finetune_epochs"},
		{"iterative", func(c c) { c.Schedule, c.Epochs = "iterative", 1 }, ""},
		{"iterative tokens", func(c c) { c.Kind, c.Schedule, c.Epochs = KindTokens, "iterative", 1 }, "tokens"},
		{"bad importance", func(c c) { c.Importance = "random" }, "importance"},
		{"taylor without images", func(c c) { c.Importance, c.CalibImages = ImportanceTaylor, 0 }, "calib_images 0"},
		{"bad method", func(c c) { c.Kind, c.Method = KindTokens, "dynamicvit" }, "method"},
		{"negative r", func(c c) { c.MergeR = -1 }, "merge_r"},
		{"evit without fine-tuning", func(c c) { c.Kind, c.Method = KindTokens, MethodEViT }, "finetune_epochs > 0, or use method evit-trainfree"},
		{"evit fine-tuned", func(c c) { c.Kind, c.Method, c.Epochs = KindTokens, MethodEViT, 0.2 }, ""},
		{"evit-trainfree", func(c c) { c.Kind, c.Method = KindTokens, MethodEViTTrainFree }, ""},
		{"evit-trainfree fine-tuned", func(c c) { c.Kind, c.Method, c.Epochs = KindTokens, MethodEViTTrainFree, 0.2 }, "evit-trainfree trains nothing, but finetune_epochs is 0.2"},
		{"tome with or without fine-tuning", func(c c) { c.Kind, c.Method, c.Epochs = KindTokens, MethodToMe, 0.2 }, ""},
		{"evit method on another kind", func(c c) { c.Method = MethodEViT }, ""},
		{"keep rate 0", func(c c) { c.KeepRate = 0 }, "keep_rate"},
		{"negative block", func(c c) { c.Blocks = []int{0, -1} }, "negative block index -1"},
		{"teacher without fine-tuning", func(c c) { c.Teacher = "big" }, "finetune_epochs"},
		{"teacher", func(c c) { c.Teacher, c.Epochs = "big", 1 }, ""},
		{"alpha", func(c c) { c.KDAlpha = 2 }, "kd_alpha"},
		{"temperature", func(c c) { c.KDTemperature = -1 }, "kd_temperature"},
	})
}
