package vit

import (
	"fmt"
	"math"
	"sort"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// hostTomeReduce is ToMe's bipartite soft matching and size-weighted merge
// (bipartite_soft_matching and merge_wavg of facebookresearch/ToMe) of x
// [B,N,C] with sizes s (nil: all 1), matched by the keys k [B,N,C']: the
// tokens at even positions (A) are matched to their most cosine-similar
// token at an odd position (B), and the r A tokens with the most similar
// matches are averaged, weighted by size, into them. Tokens before prefix
// take part in no match and lead the result in their order; then come
// the other kept A tokens in order, then the B tokens, as in ToMe. r is
// clipped to (N - prefix) / 2; nil results mean nothing was merged.
//
// It is the implementation tomeReduce replaced, kept here to check the
// tensor version against and to time beside it: the matching runs on the
// host (tomeDest) and the merge is one index_add.
func hostTomeReduce(x, k, s *ts.Tensor, r, prefix int) (xo, so *ts.Tensor) {
	sz := x.MustSize()
	b, n, c := int(sz[0]), int(sz[1]), sz[2]
	r = min(r, (n-prefix)/2)
	if r <= 0 {
		return nil, nil
	}
	dest := tomeDest(hostValues(k), b, n, int(k.MustSize()[2]), r, prefix)
	var src *ts.Tensor
	if s == nil {
		ones := onesFor(x)
		src = ts.MustCat([]*ts.Tensor{x, ones}, -1)
		ones.MustDrop()
	} else {
		xs := x.MustMul(s, false)
		src = ts.MustCat([]*ts.Tensor{xs, s}, -1)
		xs.MustDrop()
	}
	res := scatterTokens(src, dest, int64(n-r))
	src.MustDrop()
	cols := columns(res, c, 1)
	res.MustDrop()
	so = cols[1].MustDetach(true).MustContiguous(true)
	xo = cols[0].MustDiv(so, true)
	return xo, so
}

// tomeDest runs ToMe's matching for every batch element on the keys
// [B,N,C] and returns every token's slot in the merged sequence. The
// cosine similarities of the A tokens to the B tokens are computed here,
// in float64: na x nb x C multiply-adds per image, little next to a block.
func tomeDest(keys []float32, b, n, c, r, prefix int) []int64 {
	na, nb := (n+1)/2, n/2
	pa, pb := (prefix+1)/2, prefix/2 // protected tokens in A and in B
	// dstSlot is the slot of B token j, unmSlot that of the u-th kept A
	// token.
	dstSlot := func(j int) int64 {
		if j < pb {
			return int64(2*j + 1)
		}
		return int64(na - r + j)
	}
	unmSlot := func(u int) int64 {
		if u < pa {
			return int64(2 * u)
		}
		return int64(pb + u)
	}
	dest := make([]int64, b*n)
	nodeMax := make([]float64, na)
	nodeIdx := make([]int, na)
	order := make([]int, na)
	inv := make([]float64, n) // 1 / |k|
	for bi := 0; bi < b; bi++ {
		kb := keys[bi*n*c : (bi+1)*n*c]
		for i := range inv {
			ss := 0.0
			for _, v := range kb[i*c : (i+1)*c] {
				ss += float64(v) * float64(v)
			}
			inv[i] = 1 / math.Max(math.Sqrt(ss), 1e-12)
		}
		for ia := 0; ia < na; ia++ {
			i := 2 * ia
			best, bj := math.Inf(-1), 0
			if i >= prefix {
				ki := kb[i*c : (i+1)*c]
				for ib := 0; ib < nb; ib++ {
					j := 2*ib + 1
					if j < prefix {
						continue
					}
					dot := 0.0
					for d, v := range kb[j*c : (j+1)*c] {
						dot += float64(ki[d]) * float64(v)
					}
					if v := dot * inv[i] * inv[j]; v > best {
						best, bj = v, ib
					}
				}
			}
			nodeMax[ia], nodeIdx[ia] = best, bj
			order[ia] = ia
		}
		sort.SliceStable(order, func(i, j int) bool { return nodeMax[order[i]] > nodeMax[order[j]] })
		d := dest[bi*n : (bi+1)*n]
		for _, ia := range order[:r] {
			d[2*ia] = dstSlot(nodeIdx[ia])
		}
		unm := append([]int(nil), order[r:]...)
		sort.Ints(unm)
		for u, ia := range unm {
			d[2*ia] = unmSlot(u)
		}
		for ib := 0; ib < nb; ib++ {
			d[2*ib+1] = dstSlot(ib)
		}
	}
	return dest
}

// TestToMeTensorMatchesHost checks the batched tensor matching and merge
// against the host implementation it replaced, including deit_tiny's
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
			y, ys := tomeReduce(x, k, s, tt.r, tt.prefix)
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
	}{{"tensor", tomeReduce}, {"host", hostTomeReduce}}
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
