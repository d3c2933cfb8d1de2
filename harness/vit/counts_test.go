package vit

import (
	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
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

// TestCountSparsity zeroes rows of one linear layer and checks the
// non-zero parameters and effective MACs Count reports for it, down to a
// layer pruned to nothing (which once read as dense: zero meant unset).
func TestCountSparsity(t *testing.T) {
	img, patch, dim, depth, heads, classes, ratio := 16, 4, 32, 1, 2, 10, 2.0
	cfg, err := Custom("", Overrides{ImgSize: &img, PatchSize: &patch, EmbedDim: &dim,
		Depth: &depth, NumHeads: &heads, NumClasses: &classes, MLPRatio: &ratio})
	if err != nil {
		t.Fatal(err)
	}
	const rows, in = 64, 32 // fc1: 32 -> 64
	for _, tt := range []struct {
		name     string
		zeroRows int64
	}{
		{"dense", 0},
		{"a quarter of the rows", 16},
		{"every row", rows},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(cfg, gotch.CPU)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Drop()
			var fc1 *Linear
			for _, l := range m.Linears() {
				if l.Name == "blocks.0.mlp.fc1" {
					fc1 = l.Linear
				}
			}
			if fc1 == nil {
				t.Fatal("no blocks.0.mlp.fc1")
			}
			ts.NoGrad(func() {
				for _, p := range []*ts.Tensor{fc1.Weight, fc1.Bias} {
					p.MustFill_(ts.FloatScalar(1)) // the bias starts at zero
					if tt.zeroRows > 0 {
						r := p.MustNarrow(0, 0, tt.zeroRows, false)
						r.MustZero_()
						r.MustDrop()
					}
				}
			})
			c := m.Count()
			var got LayerCount
			var sumNZ, sumEff int64
			for _, l := range c.Layers {
				if l.Name == "blocks.0.mlp.fc1" {
					got = l
				}
				sumNZ += l.NonZero
				sumEff += l.EffMACs
			}
			kept := rows - tt.zeroRows
			if want := kept * (in + 1); got.NonZero != want {
				t.Errorf("fc1 non-zero params = %d, want %d", got.NonZero, want)
			}
			if want := got.MACs * kept / rows; got.EffMACs != want {
				t.Errorf("fc1 effective MACs = %d, want %d of %d", got.EffMACs, want, got.MACs)
			}
			if c.NonZero != sumNZ || c.EffMACs != sumEff {
				t.Errorf("totals %d non-zero, %d effective MACs; layers sum to %d, %d", c.NonZero, c.EffMACs, sumNZ, sumEff)
			}
		})
	}
}
