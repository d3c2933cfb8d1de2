package quantize

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques/compress"
)

// LSQ's optimizer of the step sizes: Adam without weight decay.
const (
	lsqBeta1, lsqBeta2, lsqEps = 0.9, 0.999, 1e-8
	// lsqMinStep keeps a step positive (QuantSpec.Validate's condition)
	// should a gradient step overshoot zero.
	lsqMinStep = 1e-10
)

// LSQ is quantization-aware training with learned step sizes (Esser et
// al., "Learned Step Size Quantization", ICLR 2020): besides the float
// shadow weights that QAT trains, the step size s of every uniform
// quantizer (each weight's, per channel or per tensor as the plan has
// it, and each activation's, per tensor) is trained. A quantizer computes
//
//	x̂ = round(clamp(x/s, Qn, Qp)) * s
//
// (Qn = qmin - zp, Qp = qmax - zp; zero points stay fixed), round passing
// its gradient straight through, so that ∂x̂/∂x is 1 inside the clipping
// range and 0 outside, and ∂x̂/∂s is the paper's eq. 3: round(x/s) - x/s
// inside, Qn below, Qp above. The gradient of s is scaled by
// g = 1/sqrt(N·Qp), N the weight's elements or an activation's features
// per image, Qp the positive levels (qmax when symmetric, qmax - qmin
// when affine, the paper's unsigned case). Steps start from the
// PTQ-calibrated scales rather than the paper's 2<|v|>/sqrt(Qp): the
// calibrated grid is the better start for fine-tuning a trained model.
// Log2 and twin-uniform quantizers keep their calibrated grids.
//
// Activations go through a trainable tap that replaces the spec at its
// site for the training. Weights follow QAT's scheme (the model's weight
// holds the quantized value, its gradient ∂L/∂x̂): after each optimizer
// step the shadow takes the optimizer's step masked to the clipping
// range, the weight's step size takes the eq. 3 gradient computed from
// the weight's gradient, and the shadow is quantized on the new grid.
// Step sizes take Adam steps at rate lr (the stage's, the weights'):
// the paper trains everything with SGD at rate 0.01, but the harness
// fine-tunes with AdamW at about 1e-4, where SGD would leave the steps
// where they are; Adam's normalisation makes the update nearly
// independent of g, which is kept as the paper defines the gradient. The learned steps are written into the QuantSpecs after every
// step, so the trained model's weights lie on the grids its state
// records. With data-parallel training the replicas quantize activations
// with the step sizes of the last step and only the model's own share of
// a batch contributes to activation steps' gradients.
//
// shadows come from FloatWeights and are freed.
func LSQ(ctx context.Context, m *vit.Model, shadows map[string]*ts.Tensor, fineTune func(compress.Training) error, ft compress.Training, lr float64) error {
	s := m.Cfg.Quant
	if s == nil || s.Precision != vit.PrecisionInt {
		dropAll(shadows)
		return fmt.Errorf("LSQ needs an integer-quantized model")
	}
	if !(lr > 0) {
		dropAll(shadows)
		return fmt.Errorf("LSQ: learning rate of the step sizes %g, want > 0", lr)
	}
	var ws []*lsqWeight
	var as []*lsqAct
	pts := m.TapPoints()
	defer func() {
		for _, w := range ws {
			w.drop()
		}
		for _, a := range as {
			// Back to the spec, which holds the learned step.
			*pts[a.key], _ = vit.ReplaceTap(*pts[a.key], a, a.spec)
			a.drop()
		}
	}()
	for _, name := range slices.Sorted(maps.Keys(shadows)) {
		spec, ok := s.Weights[name]
		w, err := m.VS.Root().Get(name)
		if !ok || err != nil {
			shadows[name].MustDrop()
			continue
		}
		ws = append(ws, newLSQWeight(w, shadows[name], spec))
	}
	for _, key := range slices.Sorted(maps.Keys(s.Acts)) {
		spec := s.Acts[key]
		pt, ok := pts[key]
		if !ok || spec.Kind != vit.QuantUniform || spec.Axis >= 0 {
			continue
		}
		a := newLSQAct(key, spec, m.VS.Device())
		t, found := vit.ReplaceTap(*pt, spec, a)
		if !found {
			a.drop()
			continue
		}
		*pt = t
		as = append(as, a)
	}
	prev := ft.AfterStep
	ft.AfterStep = func() {
		for _, w := range ws {
			w.update(lr)
		}
		for _, a := range as {
			a.update(lr)
		}
		if prev != nil {
			prev()
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fineTune(ft)
}

// positiveLevels is LSQ's Qp in the gradient scale: the grid's levels
// above zero, qmax for a symmetric grid, qmax - qmin (the unsigned
// range) for an affine one.
func positiveLevels(spec *vit.QuantSpec) float64 {
	if spec.Symmetric {
		return float64(spec.QMax)
	}
	return float64(spec.QMax - spec.QMin)
}

// lsqStep is a trainable step size (one value, or one per channel) with
// its momentum and its quantizer's fixed zero points, all float32 and
// shaped to broadcast against the quantized tensor.
type lsqStep struct {
	spec       *vit.QuantSpec
	s          *ts.Tensor // step sizes (a leaf that requires grad)
	m1, m2     *ts.Tensor // Adam's moments
	t          int        // Adam's step count
	zp         *ts.Tensor
	shape      []int64 // broadcast shape of s and zp
	qmin, qmax float64
}

// newLSQStep initialises the step from spec's calibrated scales; rank is
// the quantized tensor's rank.
func newLSQStep(spec *vit.QuantSpec, rank int, dev gotch.Device) *lsqStep {
	shape := []int64{1}
	if spec.Axis >= 0 {
		shape = make([]int64, rank)
		for i := range shape {
			shape[i] = 1
		}
		shape[spec.Axis] = int64(len(spec.Scale))
	}
	scales := make([]float32, len(spec.Scale))
	zps := make([]float32, len(spec.ZeroPoint))
	for i := range spec.Scale {
		scales[i] = float32(spec.Scale[i])
		zps[i] = float32(spec.ZeroPoint[i])
	}
	st := &lsqStep{spec: spec, shape: shape, qmin: float64(spec.QMin), qmax: float64(spec.QMax)}
	st.s = ts.MustOfSlice(scales).MustView(shape, true).MustTo(dev, true).MustSetRequiresGrad(true, true)
	st.zp = ts.MustOfSlice(zps).MustView(shape, true).MustTo(dev, true)
	st.m1 = st.s.MustZerosLike(false)
	st.m2 = st.s.MustZerosLike(false)
	return st
}

// step takes an Adam step on the gradient ds (same shape as s) and
// writes the new steps into the spec.
func (st *lsqStep) step(ds *ts.Tensor, lr float64) {
	st.t++
	st.m1.MustMulScalar_(ts.FloatScalar(lsqBeta1))
	g1 := ds.MustMulScalar(ts.FloatScalar(1-lsqBeta1), false)
	st.m1.MustAdd_(g1)
	g1.MustDrop()
	st.m2.MustMulScalar_(ts.FloatScalar(lsqBeta2))
	g2 := ds.MustMul(ds, false).MustMulScalar(ts.FloatScalar(1-lsqBeta2), true)
	st.m2.MustAdd_(g2)
	g2.MustDrop()
	c1 := 1 - math.Pow(lsqBeta1, float64(st.t))
	c2 := 1 - math.Pow(lsqBeta2, float64(st.t))
	den := st.m2.MustDivScalar(ts.FloatScalar(c2), false).MustSqrt(true).MustAddScalar(ts.FloatScalar(lsqEps), true)
	d := st.m1.MustDiv(den, false).MustMulScalar(ts.FloatScalar(lr/c1), true)
	den.MustDrop()
	st.s.MustSub_(d)
	d.MustDrop()
	st.s.MustClampMin_(ts.FloatScalar(lsqMinStep))
	for i, v := range torchrt.Float64s(st.s) {
		st.spec.Scale[i] = float64(float32(v))
	}
}

func (st *lsqStep) drop() {
	st.s.MustDrop()
	st.m1.MustDrop()
	st.m2.MustDrop()
	st.zp.MustDrop()
}

// lsqWeight is a quantized weight under LSQ: the model's tensor w, its
// float shadow, the quantized value last written (to recover the
// optimizer's step) and, for a uniform grid, its trainable step.
type lsqWeight struct {
	w, shadow, last *ts.Tensor
	spec            *vit.QuantSpec
	st              *lsqStep // nil: a fixed grid (log2, twin)
}

func newLSQWeight(w, shadow *ts.Tensor, spec *vit.QuantSpec) *lsqWeight {
	x := &lsqWeight{w: w, shadow: shadow, spec: spec}
	torchrt.NoGrad(func() { x.last = clone(w) })
	if spec.Kind == vit.QuantUniform {
		x.st = newLSQStep(spec, len(w.MustSize()), w.MustDevice())
	}
	return x
}

// update runs under no-grad after an optimizer step (see LSQ).
func (x *lsqWeight) update(lr float64) {
	step := x.w.MustSub(x.last, false)
	if x.st != nil {
		if g := x.w.MustGrad(false); g.MustDefined() {
			gf := 1 / math.Sqrt(float64(x.w.Numel())*positiveLevels(x.spec))
			mask, ds := lsqGrad(x.shadow, g, x.st, gf)
			step.MustMul_(mask)
			mask.MustDrop()
			x.st.step(ds, lr)
			ds.MustDrop()
			g.MustDrop()
		} else {
			g.MustDrop()
		}
	}
	x.shadow.MustAdd_(step)
	step.MustDrop()
	q := x.spec.Apply(x.shadow)
	x.w.Copy_(q)
	x.last.MustDrop()
	x.last = q
}

func (x *lsqWeight) drop() {
	x.shadow.MustDrop()
	x.last.MustDrop()
	if x.st != nil {
		x.st.drop()
	}
}

// lsqGrad computes LSQ's gradients of x̂ = round(clamp(x/s, Qn, Qp))·s
// given the loss's gradient dy with respect to x̂ (eq. 3 of the paper):
// the straight-through gradient of x is dy times the returned mask (1
// inside the clipping range, 0 outside), and ds, shaped as st.s, is
// gf·Σ dy·(round(x/s) - x/s inside, Qn below, Qp above), summed over
// each step's elements. Call under no-grad.
func lsqGrad(x, dy *ts.Tensor, st *lsqStep, gf float64) (mask, ds *ts.Tensor) {
	v := x.MustDiv(st.s, false)
	lo := st.zp.MustNeg(false).MustAddScalar(ts.FloatScalar(st.qmin), true) // Qn = qmin - zp
	hi := st.zp.MustNeg(false).MustAddScalar(ts.FloatScalar(st.qmax), true) // Qp = qmax - zp
	below := v.MustLeTensor(lo, false)
	above := v.MustGeTensor(hi, false)
	inside := below.MustLogicalOr(above, false).MustLogicalNot(true)
	mask = inside.MustTotype(x.DType(), false)
	// d = (round(v) - v) inside, Qn below, Qp above.
	d := v.MustRound(false).MustSub(v, true).MustMul(mask, true)
	b := below.MustTotype(x.DType(), true).MustMul(lo, true)
	a := above.MustTotype(x.DType(), true).MustMul(hi, true)
	d = d.MustAdd(b, true).MustAdd(a, true)
	b.MustDrop()
	a.MustDrop()
	prod := d.MustMul(dy, true)
	var dims []int64
	for i, n := range st.shape {
		if n == 1 {
			dims = append(dims, int64(i))
		}
	}
	if len(st.shape) == 1 && st.shape[0] == 1 {
		ds = prod.MustSum(x.DType(), true).MustView(st.shape, true)
	} else {
		ds = prod.MustSumDimIntlist(dims, true, x.DType(), true)
	}
	ds.MustMulScalar_(ts.FloatScalar(gf))
	for _, t := range []*ts.Tensor{v, lo, hi, inside} {
		t.MustDrop()
	}
	return mask, ds
}

// lsqAct is the trainable tap of an activation quantizer under LSQ.
type lsqAct struct {
	key string
	*lsqStep
}

func newLSQAct(key string, spec *vit.QuantSpec, dev gotch.Device) *lsqAct {
	return &lsqAct{key: key, lsqStep: newLSQStep(spec, 1, dev)}
}

// Tap computes round(clamp(x/s, Qn, Qp))·s with autograd: round passes
// its gradient straight through and s's gradient is scaled by
// g = 1/sqrt(features per image · Qp), written as
// s' = (s - g·s).detach() + g·s, which is s forward and scales the
// gradient by g backward.
func (a *lsqAct) Tap(x *ts.Tensor) *ts.Tensor {
	size := x.MustSize()
	features := float64(x.Numel())
	if len(size) > 1 {
		features /= float64(size[0])
	}
	gf := 1 / math.Sqrt(features*positiveLevels(a.spec))
	s := a.s
	gs := s.MustMulScalar(ts.FloatScalar(gf), false)
	sg := s.MustSub(gs, false).MustDetach(true).MustAdd(gs, true)
	gs.MustDrop()
	lo := a.zp.MustNeg(false).MustAddScalar(ts.FloatScalar(a.qmin), true)
	hi := a.zp.MustNeg(false).MustAddScalar(ts.FloatScalar(a.qmax), true)
	c := x.MustDiv(sg, false).MustClampTensor(lo, hi, true)
	lo.MustDrop()
	hi.MustDrop()
	r := c.MustRound(false).MustSub(c, true).MustDetach(true)
	y := c.MustAdd(r, true).MustMul(sg, true)
	r.MustDrop()
	sg.MustDrop()
	return y
}

// update takes the step's Adam step on the gradient accumulated by the
// last backward pass and clears it (under no-grad).
func (a *lsqAct) update(lr float64) {
	g := a.s.MustGrad(false)
	if g.MustDefined() {
		a.step(g, lr)
		g.MustZero_()
	}
	g.MustDrop()
}
