package lowrank

import (
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
)

func TestScratch(t *testing.T) {
	a := ts.MustRandn([]int64{6, 4}, gotch.Float, gotch.CPU)
	func() {
		defer func() { t.Log("linalg svd recover:", recover()) }()
		u, s, vh := ts.MustLinalgSvd(a, false, "")
		t.Log(u.MustSize(), s.MustSize(), vh.MustSize())
	}()
	u, s, v := a.MustSvd(true, true, false)
	t.Log(u.MustSize(), s.MustSize(), v.MustSize())
	x := ts.MustRandn([]int64{3, 5}, gotch.Float, gotch.CPU).MustSetRequiresGrad(true, true)
	y := x.MustFakeQuantizePerTensorAffine(0.1, 0, -8, 7, false)
	l := y.MustSum(gotch.Float, false)
	l.MustBackward()
	g := x.MustGrad(false)
	t.Log(g.Float64Values())
	cfg, _ := vit.Custom("", vit.Overrides{})
	m, _ := vit.New(cfg, gotch.CPU)
	img := ts.MustRandn([]int64{2, 3, 32, 32}, gotch.Float, gotch.CPU)
	ts.NoGrad(func() {
		bf := img.MustTotype(gotch.BFloat16, false)
		w := m.Blocks[0].QKV.Weight.MustTotype(gotch.BFloat16, false)
		o := ts.MustLinear(bf.MustReshape([]int64{-1, 32}, false).MustNarrow(1, 0, 32, true), w.MustNarrow(1, 0, 32, false), ts.None)
		t.Log(o.DType(), o.Float64Values()[:3])
		lg := o.MustLogSoftmax(1, gotch.BFloat16, false)
		t.Log(lg.DType())
		tk, _ := o.MustTopk(3, 1, true, true, false)
		t.Log(tk.DType())
	})
}
