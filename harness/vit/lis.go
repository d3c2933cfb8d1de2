package vit

import (
	"strings"

	"github.com/sugarme/gotch/ts"
)

// QuantLogIntSoftmax is FQ-ViT's Log-Int-Softmax (Lin et al., IJCAI
// 2022) at an attention-map site: it replaces softmax. The logits,
// already on the uniform grid of step Scale[0] (the attn_logits
// quantizer), are turned into integers, exponentiated by I-BERT's integer
// polynomial, and the probabilities come out log2-quantized at Bits:
// 2^-q with q = clamp(round_log2(Σexp/exp), 0, 2^Bits - 1), and 0 where q
// reaches 2^Bits.
const QuantLogIntSoftmax = "log-int-softmax"

// isAttnMapKey reports whether key names a block's attention map.
func isAttnMapKey(key string) bool {
	return strings.HasPrefix(key, "blocks.") && strings.HasSuffix(key, "."+SiteAttnMap.String())
}

// Constants of FQ-ViT's int_softmax (models/ptq/layers.py): the second
// order polynomial a(x+b)^2+c of exp on [-ln2, 0] (I-BERT), -ln2 as they
// round it, and the range of the shift, n.
const (
	lisA  = 0.35815147
	lisB  = 0.96963238 / lisA
	lisC  = 1.0 / lisA
	lisX0 = -0.6931
	lisN  = 30
)

// logIntSoftmax computes Log-Int-Softmax of the logits x [..., N] over
// the last axis (no gradient). It repeats FQ-ViT's float32 operations one
// by one, so that it reproduces their rounding.
func (q *QuantSpec) logIntSoftmax(x *ts.Tensor) *ts.Tensor {
	var out *ts.Tensor
	ts.NoGrad(func() {
		dev := x.MustDevice()
		s := ts.MustOfSlice([]float32{float32(q.Scale[0])}).MustTo(dev, true)
		defer s.MustDrop()
		// Python's scalar / tensor is tensor.reciprocal() * scalar.
		rs := s.MustReciprocal(false)
		defer rs.MustDrop()
		s2 := s.MustPowTensorScalar(ts.IntScalar(2), false)
		defer s2.MustDrop()
		rs2 := s2.MustReciprocal(false)
		defer rs2.MustDrop()
		bInt := rs.MustMulScalar(ts.FloatScalar(lisB), false).MustFloor(true)
		defer bInt.MustDrop()
		cInt := rs2.MustMulScalar(ts.FloatScalar(lisC), false).MustFloor(true)
		defer cInt.MustDrop()
		x0Int := rs.MustMulScalar(ts.FloatScalar(lisX0), false).MustFloor(true)
		defer x0Int.MustDrop()
		lower := x0Int.MustMulScalar(ts.IntScalar(lisN), false)
		defer lower.MustDrop()

		xi := x.MustDiv(s, false)
		mx := xi.MustAmax([]int64{-1}, true, false)
		xi = xi.MustSub(mx, true)
		mx.MustDrop()
		xi = xi.MustMaximum(lower, true)
		qq := xi.MustDiv(x0Int, false).MustFloor(true)
		xq := x0Int.MustMul(qq, false)
		r := xi.MustSub(xq, true) // x_int - x0_int*q
		xq.MustDrop()
		// int_polynomial: (r + b_int) * r + c_int
		z := r.MustAdd(bInt, false).MustMul(r, true).MustAdd(cInt, true)
		r.MustDrop()
		// exp_int = clamp(floor(z * 2^(n-q)), min=0)
		two := qq.MustNeg(false).MustAddScalar(ts.IntScalar(lisN), true)
		qq.MustDrop()
		p := two.MustExp2(true)
		e := z.MustMul(p, true).MustFloor(true).MustClampMin(ts.IntScalar(0), true)
		p.MustDrop()
		sum := e.MustSumDimIntlist([]int64{-1}, true, e.DType(), false)
		soft := sum.MustDiv(e, true).MustRound(true) // round(Σexp / exp)
		sum.MustDrop()
		e.MustDrop()
		// log_round: floor(log2 v), plus 1 where v - 2^f >= 2^(f-1).
		f := soft.MustLog2(false).MustFloor(true)
		pf := f.MustExp2(false)
		ph := f.MustSubScalar(ts.IntScalar(1), false).MustExp2(true)
		extra := soft.MustSub(pf, true).MustGeTensor(ph, true)
		pf.MustDrop()
		ph.MustDrop()
		rounds := f.MustAdd(extra, true)
		extra.MustDrop()
		levels := float64(int64(1) << q.Bits)
		keep := rounds.MustLt(ts.FloatScalar(levels), false) // false for +inf and NaN
		ql := rounds.MustClamp(ts.FloatScalar(0), ts.FloatScalar(levels-1), true)
		out = ql.MustNeg(true).MustExp2(true).MustMul(keep, true)
		keep.MustDrop()
	})
	return out
}
