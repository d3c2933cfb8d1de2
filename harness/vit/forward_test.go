package vit

import (
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// TestInferencePathMatchesAutograd checks that the no-grad forward pass,
// which adds and applies GELU in place, computes exactly what the autograd
// one does, for the block shapes the techniques produce, and leaves its
// input alone.
func TestInferencePathMatchesAutograd(t *testing.T) {
	tests := []struct {
		name      string
		distilled bool
		headDim   int // 0: EmbedDim/NumHeads
		set       func(i int, b *BlockConfig)
	}{
		{"dense", false, 0, nil},
		{"distilled", true, 0, nil},
		{"head dim 6", false, 6, nil},
		{"low rank", false, 0, func(i int, b *BlockConfig) {
			b.Ranks = map[string]int{"qkv": 8, "proj": 4, "fc1": 8, "fc2": 6}
		}},
		{"pruned heads and mlp", false, 0, func(i int, b *BlockConfig) {
			b.Heads, b.MLPHidden = 1+i%2, 16+8*i
		}},
		{"tome", false, 0, func(i int, b *BlockConfig) { b.MergeR = 4 }},
		{"evit", true, 0, func(i int, b *BlockConfig) {
			if i == 1 {
				b.KeepRate = 0.5
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tokenTestConfig(tt.distilled)
			if tt.headDim != 0 || tt.set != nil {
				cfg = cfg.WithBlocks()
				for i := range cfg.Blocks {
					if tt.headDim != 0 {
						cfg.Blocks[i].HeadDim = tt.headDim
					}
					if tt.set != nil {
						tt.set(i, &cfg.Blocks[i])
					}
				}
			}
			m := newTokenModel(t, cfg, nil)
			defer m.Drop()
			x := ts.MustRandn([]int64{3, 3, 16, 16}, gotch.Float, gotch.CPU)
			defer x.MustDrop()
			keep := x.MustMulScalar(ts.FloatScalar(1), false) // a copy
			defer keep.MustDrop()

			grad := m.Forward(x) // parameters require grad: the autograd path
			defer grad.MustDrop()
			var infer *ts.Tensor
			torchrt.NoGrad(func() { infer = m.Forward(x) })
			defer infer.MustDrop()

			if !grad.MustRequiresGrad() {
				t.Fatal("the reference pass did not record autograd")
			}
			if !x.MustEqual(keep, false) {
				t.Fatal("the inference pass changed its input")
			}
			d := grad.MustDetach(false).MustSub(infer, true).MustAbs(true).MustMax(true)
			defer d.MustDrop()
			// The same kernels on the same values, in the same order.
			if diff := d.Float64Values()[0]; diff != 0 {
				t.Errorf("inference logits differ from autograd's by %g", diff)
			}
		})
	}
}

// TestParallelMatchesOnePass checks that Parallel gives the logits of one
// pass over the batch, split by images (evenly, unevenly) and by tokens
// (16 patches and 1 or 2 prefix tokens over 2 or 3 threads; pruned and
// factored blocks), with token reducers too: by images each replica keeps
// the reducers' per-pass state to itself, by tokens the threads share one
// model whose state thread 0 updates between barriers.
func TestParallelMatchesOnePass(t *testing.T) {
	tests := []struct {
		name      string
		batch     int64
		ways      int
		distilled bool
		set       func(i int, b *BlockConfig)
	}{
		{"images, even", 4, 2, false, nil},
		{"images, uneven", 5, 3, false, nil},
		{"one way", 3, 1, false, nil},
		{"tokens, batch 1", 1, 2, false, nil},
		{"tokens, batch 1, three ways", 1, 3, true, nil},
		{"tokens, batch 2 of 3 ways", 2, 3, false, nil},
		{"tokens, pruned and factored", 1, 2, true, func(i int, b *BlockConfig) {
			b.Heads, b.MLPHidden = 1+i%2, 16+8*i
			b.Ranks = map[string]int{"qkv": 8, "fc2": 6}
		}},
		{"tome, images", 6, 2, false, func(i int, b *BlockConfig) { b.MergeR = 3 }},
		{"tome, tokens", 1, 2, false, func(i int, b *BlockConfig) { b.MergeR = 3 }},
		{"tome, tokens, distilled, three ways", 1, 3, true, func(i int, b *BlockConfig) { b.MergeR = 3 }},
		{"tome from block 2, tokens", 1, 2, false, func(i int, b *BlockConfig) {
			if i >= 2 {
				b.MergeR = 5
			}
		}},
		{"evit, tokens", 1, 2, true, func(i int, b *BlockConfig) {
			if i == 1 {
				b.KeepRate = 0.5
			}
		}},
		{"evit down to 3 tokens on 4 threads", 1, 4, false, func(i int, b *BlockConfig) {
			b.KeepRate = 0.1
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTokenModel(t, tokenTestConfig(tt.distilled), tt.set)
			defer m.Drop()
			p, err := NewParallel(m, tt.ways)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			x := ts.MustRandn([]int64{tt.batch, 3, 16, 16}, gotch.Float, gotch.CPU)
			defer x.MustDrop()
			var one, par *ts.Tensor
			torchrt.NoGrad(func() {
				one = m.Forward(x)
				par, err = p.Forward(x)
			})
			if err != nil {
				t.Fatal(err)
			}
			defer one.MustDrop()
			defer par.MustDrop()
			if got, want := par.MustSize(), one.MustSize(); !slices.Equal(got, want) {
				t.Fatalf("shape %v, want %v", got, want)
			}
			d := one.MustSub(par, false).MustAbs(true).MustMax(true)
			defer d.MustDrop()
			if diff := d.Float64Values()[0]; diff > 1e-6 {
				t.Errorf("sharded logits differ by %g", diff)
			}
		})
	}
}

// TestParallelFailureReleasesOthers checks that a thread failing between
// barriers stops the others instead of leaving them waiting for it, and
// that the error reported is the failure, not the others' abort.
func TestParallelFailureReleasesOthers(t *testing.T) {
	m := newTokenModel(t, tokenTestConfig(false), nil)
	defer m.Drop()
	p, err := NewParallel(m, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for failing := range 3 {
		bar := newBarrier(3)
		jobs := make([]job, 3)
		for i := range jobs {
			jobs[i] = func(*Model) error {
				for round := 0; round < 3; round++ {
					if i == failing && round == 1 {
						panic("injected failure")
					}
					if !bar.wait() {
						return errAborted
					}
				}
				return nil
			}
		}
		err := p.runAll(jobs, bar)
		if err == nil || !strings.Contains(err.Error(), "injected failure") {
			t.Errorf("thread %d failing: got %v, want the injected failure", failing, err)
		}
	}
}
