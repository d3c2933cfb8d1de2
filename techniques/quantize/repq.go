package quantize

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// RepQ-ViT's calibration (Li et al., ICCV 2023; quant/quantizer.py of the
// authors' code): both of its quantizers choose their parameters among
// three candidates taken from percentiles of the calibration data, by the
// squared error of quantizing that data.
//
//   - UniformQuantizer.init_quantization_scale (the "repq" calibrator):
//     the affine ranges [Q(1-p), Q(p)] for p in RepQPercentiles, min and
//     max paired at the same p, delta = (max - min)/(2^bits - 1),
//     zero point round(-min/delta), on the grid [0, 2^bits - 1]; per row
//     (a weight's output channel, or a post-LayerNorm activation's channel
//     before its reparameterization) or per tensor.
//   - LogSqrt2Quantizer.init_quantization_scale (ShapeLogSqrt2): the step
//     delta = Q(p) of the attention map, for p in RepQPercentiles.
//
// Ties keep the earlier candidate, as their strict "<" does. Their code
// calibrates on one batch (32 images); over several batches the
// percentiles here are the batches' own, averaged weighted by element
// count (as the percentile calibrator does), and the errors are summed
// over all batches in a second pass. On one batch the two agree.

// RepQPercentiles are the quantile fractions RepQ-ViT's searches try, in
// their order.
var RepQPercentiles = []float64{0.999, 0.9999, 0.99999}

// Quantiles returns, for each fraction in ps (outer index), each row's
// quantile (inner index) with torch.quantile's linear interpolation,
// computed in float32 as torch does for a float32 tensor. The rows are
// sorted once.
func Quantiles(rows *ts.Tensor, ps []float64) [][]float64 {
	sorted, idx := rows.MustSort(1, false, false)
	idx.MustDrop()
	defer sorted.MustDrop()
	n := sorted.MustSize()[1]
	// ranks = q * (n - 1), weights = ranks - floor(ranks), in float32;
	// only the columns either side of each rank are read back.
	cols := make([]int64, 0, 2*len(ps))
	weights := make([]float32, len(ps))
	for k, p := range ps {
		rank := float32(float32(p) * float32(n-1))
		below := int64(rank)
		above := min(int64(math.Ceil(float64(rank))), n-1)
		weights[k] = float32(rank - float32(below))
		cols = append(cols, below, above)
	}
	ci := ts.MustOfSlice(cols).MustTo(sorted.MustDevice(), true)
	picked := sorted.MustIndexSelect(1, ci, false)
	ci.MustDrop()
	v := torchrt.Float64s(picked) // [rows, 2 len(ps)]
	picked.MustDrop()
	nrows := len(v) / len(cols)
	out := make([][]float64, len(ps))
	for k, w := range weights {
		out[k] = make([]float64, nrows)
		for r := range out[k] {
			a, b := float32(v[r*len(cols)+2*k]), float32(v[r*len(cols)+2*k+1])
			// at::lerp: a + w(b - a) below one half, b - (b - a)(1 - w) above.
			var q float32
			if w < 0.5 {
				q = a + float32(w*(b-a))
			} else {
				q = b - float32((b-a)*(1-w))
			}
			out[k][r] = float64(q)
		}
	}
	return out
}

// RepQAffine is UniformQuantizer.quantize's grid for the range [lo, hi]
// in float32: delta = (hi - lo)/(2^bits - 1), zero point round(-lo/delta)
// (half to even). The zero point lies outside [0, 2^bits - 1] when the
// range does not contain 0; see executable.
func RepQAffine(lo, hi float64, bits int) (delta float64, zp int64) {
	levels := float32(int64(1)<<bits - 1)
	d := float32(float32(hi)-float32(lo)) / levels
	return float64(d), int64(math.RoundToEven(float64(-float32(lo) / d)))
}

// executable returns an affine grid PyTorch's fake quantization can run
// (a positive step, the zero point inside [0, 2^bits - 1]): the range's
// own grid when it is one, else the grid of the range widened to contain 0
// (PyTorch observers' convention), which their code never needs for data
// that spans 0.
func executable(lo, hi float64, bits int) (delta float64, zp int64) {
	qmax := int64(1)<<bits - 1
	delta, zp = RepQAffine(lo, hi, bits)
	if delta > 0 && !math.IsInf(delta, 0) && zp >= 0 && zp <= qmax {
		return delta, zp
	}
	lo, hi = math.Min(lo, 0), math.Max(hi, 0)
	if hi-lo <= 0 {
		return eps32, 0
	}
	delta, zp = RepQAffine(lo, hi, bits)
	delta = math.Max(delta, eps32)
	return delta, min(max(zp, 0), qmax)
}

// affineErrors returns, per row, the sum of squared errors of quantizing
// the rows with UniformQuantizer.quantize's formula and a step and zero
// point per row: (clamp(round(x/delta) + zp, 0, 2^bits - 1) - zp)·delta.
// Unlike fake_quantize it accepts zero points outside the grid.
func affineErrors(rows *ts.Tensor, delta []float64, zp []int64, bits int) []float64 {
	d32 := make([]float32, len(delta))
	z32 := make([]float32, len(zp))
	for i := range delta {
		d32[i], z32[i] = float32(delta[i]), float32(zp[i])
	}
	d := ts.MustOfSlice(d32).MustView([]int64{-1, 1}, true)
	z := ts.MustOfSlice(z32).MustView([]int64{-1, 1}, true)
	defer d.MustDrop()
	defer z.MustDrop()
	q := rows.MustDiv(d, false).MustRound(true).MustAdd(z, true).
		MustClamp(ts.FloatScalar(0), ts.FloatScalar(float64(int64(1)<<bits-1)), true).
		MustSub(z, true).MustMul(d, true)
	e := q.MustSub(rows, true).MustSquare(true).MustSumDimIntlist([]int64{1}, false, gotch.Double, true)
	out := torchrt.Float64s(e)
	e.MustDrop()
	return out
}

// LogSqrt2Spec is RepQ-ViT's log-sqrt(2) quantizer of bits with step delta.
func LogSqrt2Spec(bits int, delta float64) *vit.QuantSpec {
	return &vit.QuantSpec{Kind: vit.QuantLogSqrt2, Bits: bits, Axis: -1, Scale: []float64{delta}}
}

// repqSearch is an Observer's state for the two RepQ-ViT searches: the
// "repq" calibrator of a uniform rule, or a ShapeLogSqrt2 rule.
type repqSearch struct {
	log  bool
	bits int

	// first pass: per candidate and row, element-weighted sums of the
	// batches' quantiles (lo only for the uniform search)
	lo, hi [][]float64
	n      float64

	// second pass: per candidate and row
	delta [][]float64
	zp    [][]int64
	errs  [][]float64
}

func newRepQSearch(r Rule) *repqSearch {
	return &repqSearch{log: r.Shape == ShapeLogSqrt2, bits: r.Bits}
}

func (s *repqSearch) first(rows *ts.Tensor) {
	ps := RepQPercentiles
	if !s.log {
		// Q(p) and Q(1-p) of every p, one sort.
		ps = append([]float64(nil), RepQPercentiles...)
		for _, p := range RepQPercentiles {
			ps = append(ps, 1-p)
		}
	}
	q := Quantiles(rows, ps)
	k := len(RepQPercentiles)
	w := float64(rows.MustSize()[1])
	if s.hi == nil {
		s.hi, s.lo = make([][]float64, k), make([][]float64, k)
		for c := range k {
			s.hi[c] = make([]float64, len(q[c]))
			s.lo[c] = make([]float64, len(q[c]))
		}
	}
	for c := range k {
		for i := range q[c] {
			s.hi[c][i] += w * q[c][i]
			if !s.log {
				s.lo[c][i] += w * q[k+c][i]
			}
		}
	}
	s.n += w
}

// next fixes the candidates from the first pass's quantiles.
func (s *repqSearch) next() {
	if s.hi == nil || s.delta != nil {
		return
	}
	k := len(RepQPercentiles)
	s.delta, s.zp = make([][]float64, k), make([][]int64, k)
	for c := range k {
		s.delta[c] = make([]float64, len(s.hi[c]))
		s.zp[c] = make([]int64, len(s.hi[c]))
		for i := range s.hi[c] {
			hi := f32(s.hi[c][i] / s.n)
			if s.log {
				s.delta[c][i] = hi
				continue
			}
			s.delta[c][i], s.zp[c][i] = RepQAffine(f32(s.lo[c][i]/s.n), hi, s.bits)
		}
	}
}

func (s *repqSearch) second(rows *ts.Tensor) {
	if s.errs == nil {
		s.errs = make([][]float64, len(s.delta))
	}
	for c := range s.delta {
		var e []float64
		switch {
		case !s.log:
			e = affineErrors(rows, s.delta[c], s.zp[c], s.bits)
		case s.delta[c][0] > 0:
			q := LogSqrt2Spec(s.bits, s.delta[c][0]).Apply(rows)
			d := q.MustSub(rows, true).MustSquare(true).MustSumDimIntlist([]int64{1}, false, gotch.Double, true)
			e = torchrt.Float64s(d)
			d.MustDrop()
		default:
			e = []float64{math.Inf(1)} // no step: never chosen
		}
		if s.errs[c] == nil {
			s.errs[c] = e
			continue
		}
		for i := range e {
			s.errs[c][i] += e[i]
		}
	}
}

// best returns, per row, the index of the candidate with the least error
// (the earlier on ties).
func (s *repqSearch) best() ([]int, error) {
	if s.errs == nil {
		return nil, fmt.Errorf("repq calibration needs a second pass")
	}
	out := make([]int, len(s.errs[0]))
	for i := range out {
		b := 0
		for c := 1; c < len(s.errs); c++ {
			if s.errs[c][i] < s.errs[b][i] {
				b = c
			}
		}
		out[i] = b
	}
	return out, nil
}

// spec returns the chosen quantizer. A uniform rule gives one affine grid
// per row on axis (0 for channels; -1 for one row); raw keeps the search's
// zero points as they are (RepQ-ViT's reparameterization absorbs any), else
// they are made executable.
func (s *repqSearch) spec(axis int, raw bool) (*vit.QuantSpec, error) {
	b, err := s.best()
	if err != nil {
		return nil, err
	}
	if s.log {
		d := s.delta[b[0]][0]
		if !(d > 0) {
			return nil, fmt.Errorf("log-sqrt2 calibration: no positive step among the percentiles of the data")
		}
		return LogSqrt2Spec(s.bits, d), nil
	}
	qmin, qmax := Grid(s.bits, false)
	spec := &vit.QuantSpec{Kind: vit.QuantUniform, Bits: s.bits, Axis: axis, QMin: qmin, QMax: qmax,
		Scale: make([]float64, len(b)), ZeroPoint: make([]int64, len(b))}
	for i, c := range b {
		d, z := s.delta[c][i], s.zp[c][i]
		if !raw || !(d > 0) {
			d, z = executable(f32(s.lo[c][i]/s.n), f32(s.hi[c][i]/s.n), s.bits)
		}
		spec.Scale[i], spec.ZeroPoint[i] = d, z
	}
	return spec, nil
}
