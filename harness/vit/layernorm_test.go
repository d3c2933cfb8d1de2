package vit

import (
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// TestLayerNormHalfPrecision: a bfloat16 input is normalised in float32
// and cast back, so the result is the float32 LayerNorm rounded once to
// bfloat16, and no further from the float32 result than libtorch's own
// bfloat16 kernel; float32 inputs take libtorch's kernel unchanged.
func TestLayerNormHalfPrecision(t *testing.T) {
	torchrt.ManualSeed(3)
	const d = 48
	shape := []int64{2, 9, d}
	x := ts.MustRandn(shape, gotch.Float, gotch.CPU).MustMulScalar(ts.FloatScalar(3), true)
	w := ts.MustRandn([]int64{d}, gotch.Float, gotch.CPU)
	b := ts.MustRandn([]int64{d}, gotch.Float, gotch.CPU)
	defer func() {
		for _, t := range []*ts.Tensor{x, w, b} {
			t.MustDrop()
		}
	}()
	maxDiff := func(a, b *ts.Tensor) float64 {
		af := a.MustTotype(gotch.Float, false)
		bf := b.MustTotype(gotch.Float, false)
		d := af.MustSub(bf, true).MustAbs(true).MustMax(true)
		bf.MustDrop()
		defer d.MustDrop()
		return d.Float64Values()[0]
	}
	torchrt.NoGrad(func() {
		norm := []int64{d}
		ref := ts.MustLayerNorm(x, norm, w, b, 1e-6, false)
		defer ref.MustDrop()
		if got := layerNorm(x, norm, w, b, 1e-6); maxDiff(got, ref) != 0 {
			t.Errorf("float32 input: layerNorm differs from libtorch's kernel by %g", maxDiff(got, ref))
		}
		xh := x.MustTotype(gotch.BFloat16, false)
		wh := w.MustTotype(gotch.BFloat16, false)
		bh := b.MustTotype(gotch.BFloat16, false)
		defer func() {
			for _, t := range []*ts.Tensor{xh, wh, bh} {
				t.MustDrop()
			}
		}()
		got := layerNorm(xh, norm, wh, bh, 1e-6)
		defer got.MustDrop()
		if got.DType() != gotch.BFloat16 {
			t.Fatalf("dtype %v, want bfloat16", got.DType())
		}
		// The same computation on the bfloat16 values, in float32.
		xf, wf, bf := xh.MustTotype(gotch.Float, false), wh.MustTotype(gotch.Float, false), bh.MustTotype(gotch.Float, false)
		want := ts.MustLayerNorm(xf, norm, wf, bf, 1e-6, false).MustTotype(gotch.BFloat16, true)
		defer want.MustDrop()
		if diff := maxDiff(got, want); diff != 0 {
			t.Errorf("bfloat16 input: %g from the float32 LayerNorm rounded to bfloat16", diff)
		}
		kernel := ts.MustLayerNorm(xh, norm, wh, bh, 1e-6, false)
		defer kernel.MustDrop()
		exact := ts.MustLayerNorm(xf, norm, wf, bf, 1e-6, false)
		defer exact.MustDrop()
		for _, t := range []*ts.Tensor{xf, wf, bf} {
			t.MustDrop()
		}
		if g, k := maxDiff(got, exact), maxDiff(kernel, exact); g > k {
			t.Errorf("max error %g against float32, libtorch's bfloat16 kernel %g: want no worse", g, k)
		}
	})
}
