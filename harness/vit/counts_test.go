package vit

import (
	"math"
	"testing"
)

func TestCountsMatchPublished(t *testing.T) {
	tests := []struct {
		arch   string
		params int64
		gmacs  float64 // published GMACs ("GFLOPs" in the literature)
		tol    float64 // relative; DeiT's table rounds to one decimal
	}{
		{"vit_b_16", 86_567_656, 17.56, 0.01},
		{"vit_b_32", 88_224_232, 4.41, 0.01},
		{"vit_l_16", 304_326_632, 61.55, 0.01},
		{"vit_l_32", 306_535_400, 15.38, 0.01},
		{"deit_base_patch16_224", 86_567_656, 17.6, 0.01},
		{"deit_small_patch16_224", 22_050_664, 4.6, 0.01},
		{"deit_tiny_patch16_224", 5_717_416, 1.3, 0.05 / 1.3}, // 1.3 is 1.25..1.35 rounded
	}
	for _, tt := range tests {
		t.Run(tt.arch, func(t *testing.T) {
			cfg, err := Lookup(tt.arch)
			if err != nil {
				t.Fatal(err)
			}
			c := cfg.Count()
			if c.Params != tt.params {
				t.Errorf("params = %d, want %d", c.Params, tt.params)
			}
			g := float64(c.MACs) / 1e9
			if math.Abs(g-tt.gmacs)/tt.gmacs > tt.tol {
				t.Errorf("GMACs = %.3f, want %.2f within %.1f%%", g, tt.gmacs, 100*tt.tol)
			}
			if c.FLOPs() != 2*c.MACs {
				t.Errorf("FLOPs %d != 2*MACs %d", c.FLOPs(), c.MACs)
			}
		})
	}
}

func TestCountsFollowStructure(t *testing.T) {
	base, _ := Lookup("deit_tiny_patch16_224")
	full := base.Count()

	pruned := base.WithBlocks()
	for i := range pruned.Blocks {
		pruned.Blocks[i].Heads = 2       // of 3
		pruned.Blocks[i].MLPHidden = 384 // of 768
	}
	pc := pruned.Count()
	if pc.Params >= full.Params || pc.MACs >= full.MACs {
		t.Fatalf("pruned counts not smaller: params %d vs %d, macs %d vs %d", pc.Params, full.Params, pc.MACs, full.MACs)
	}
	// Exact: per block, qkv loses 3*64 outputs of 192 inputs (+bias),
	// proj loses 64 inputs, fc1/fc2 lose 384 neurons.
	perBlock := int64(192*192+192) + int64(64*192) + int64(384*192+384) + int64(384*192)
	if got := full.Params - pc.Params; got != 12*perBlock {
		t.Errorf("params removed = %d, want %d", got, 12*perBlock)
	}

	merged := base.WithBlocks()
	for i := range merged.Blocks {
		merged.Blocks[i].MergeR = 8
	}
	mc := merged.Count()
	if mc.Params != full.Params {
		t.Errorf("token merging changed params: %d vs %d", mc.Params, full.Params)
	}
	if mc.MACs >= full.MACs {
		t.Errorf("token merging did not cut MACs")
	}
	last := mc.Layers[len(mc.Layers)-3] // norm before head(s): tokens left
	if want := 197 - 12*8; last.Tokens != want {
		t.Errorf("tokens after 12 merges of 8 = %d, want %d", last.Tokens, want)
	}

	fact := base.WithBlocks()
	for i := range fact.Blocks {
		fact.Blocks[i].Ranks = map[string]int{"fc1": 48}
	}
	fc := fact.Count()
	want := full.Params - 12*int64(192*768) + 12*int64(48*(192+768))
	if fc.Params != want {
		t.Errorf("factored params = %d, want %d", fc.Params, want)
	}
}
