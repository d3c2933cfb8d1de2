package vit

import (
	"fmt"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// shape (197 tokens) and inputs whose sizes differ from 1.
func TestToMeTensorMatchesHost(t *testing.T) {
	tests := []struct {
		b, n, c, hd, r, prefix int
		sizes                  bool
	}{
		{3, 197, 16, 64, 8, 1, false},
		{3, 197, 16, 64, 8, 1, true},
		{2, 198, 16, 64, 8, 2, true},
		{4, 65, 8, 16, 16, 1, true},
		{4, 65, 8, 16, 100, 1, false},
		{2, 14, 8, 4, 3, 0, true},
		{2, 13, 8, 4, 6, 2, false},
	}
	torchrt.ManualSeed(11)
	for _, tt := range tests {
		name := fmt.Sprintf("b%d_n%d_r%d_prefix%d_sizes%t", tt.b, tt.n, tt.r, tt.prefix, tt.sizes)
		t.Run(name, func(t *testing.T) {
			x := ts.MustRandn([]int64{int64(tt.b), int64(tt.n), int64(tt.c)}, gotch.Float, gotch.CPU)
			defer x.MustDrop()
			k := ts.MustRandn([]int64{int64(tt.b), int64(tt.n), int64(tt.hd)}, gotch.Float, gotch.CPU)
			defer k.MustDrop()
			var s *ts.Tensor
			if tt.sizes {
				s = ts.MustRand([]int64{int64(tt.b), int64(tt.n), 1}, gotch.Float, gotch.CPU).
					MustMulScalar(ts.FloatScalar(3), true).MustAddScalar(ts.FloatScalar(1), true)
				defer s.MustDrop()
			}
			y, ys := tensorTomeReduce(x, k, s, tt.r, tt.prefix)
			h, hs := hostTomeReduce(x, k, s, tt.r, tt.prefix)
			if y == nil || h == nil {
				t.Fatalf("nothing merged: tensor %v, host %v", y != nil, h != nil)
			}
			defer func() {
				for _, v := range []*ts.Tensor{y, ys, h, hs} {
					v.MustDrop()
				}
			}()
			if a, b := y.MustSize(), h.MustSize(); fmt.Sprint(a) != fmt.Sprint(b) {
				t.Fatalf("shape %v, host %v", a, b)
			}
			if !ys.MustAllclose(hs, 1e-6, 1e-6, false, false) {
				t.Errorf("sizes differ from the host's")
			}
			if !y.MustAllclose(h, 1e-5, 1e-5, false, false) {
				d := y.MustSub(h, false).MustAbs(true).MustMax(true)
				t.Errorf("merged tokens differ from the host's by up to %g", d.Float64Values()[0])
				d.MustDrop()
			}
		})
	}
}

// BenchmarkToMeMatching times one ToMe reduction (matching and
// size-weighted merge) at batch 64 and 1 with r = 8, the class token
// protected and sizes from an earlier merge, at deit_tiny's shape (197 tokens of
// width 192, keys averaged over 3 heads: width 64) and at all.toml's
// cifar_vit's (65 tokens of width 128, 4 heads: keys of width 32).
// "tensor" is tomeReduce, "host" the host matching it replaced.
//
//	go test -run '^$' -bench ToMe -count 5 ./harness/vit
func BenchmarkToMeMatching(b *testing.B) {
	const r = 8
	shapes := []struct {
		name            string
		batch, n, c, hd int64
	}{{"deit_tiny", 64, 197, 192, 64}, {"cifar_vit", 64, 65, 128, 32},
		{"deit_tiny-batch1", 1, 197, 192, 64}, {"cifar_vit-batch1", 1, 65, 128, 32}}
	impls := []struct {
		name string
		fn   func(x, k, s *ts.Tensor, r, prefix int) (*ts.Tensor, *ts.Tensor)
	}{{"tensor", tensorTomeReduce}, {"host", hostTomeReduce}}
	for _, sh := range shapes {
		torchrt.ManualSeed(5)
		x := ts.MustRandn([]int64{sh.batch, sh.n, sh.c}, gotch.Float, gotch.CPU)
		k := ts.MustRandn([]int64{sh.batch, sh.n, sh.hd}, gotch.Float, gotch.CPU)
		s := ts.MustRand([]int64{sh.batch, sh.n, 1}, gotch.Float, gotch.CPU).MustAddScalar(ts.FloatScalar(1), true)
		for _, impl := range impls {
			b.Run(sh.name+"/"+impl.name, func(b *testing.B) {
				torchrt.NoGrad(func() {
					for b.Loop() {
						y, ys := impl.fn(x, k, s, r, 1)
						y.MustDrop()
						ys.MustDrop()
					}
				})
			})
		}
		x.MustDrop()
		k.MustDrop()
		s.MustDrop()
	}
}
