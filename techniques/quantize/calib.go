package quantize

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// The calibrators below work on a 2-D tensor of rows: one row per channel
// for per-channel quantization (a weight reshaped to [out, in…]), or a
// single row holding the whole tensor. Every result is one value per row.

// eps32 is PyTorch observers' smallest scale, torch.finfo(float32).eps.
const eps32 = 1.1920928955078125e-07

// Rows reshapes x to the rows a calibrator sees: along axis as channels
// ([C, N], the channel axis first), or one row for axis -1. The result is
// contiguous; x is not freed.
func Rows(x *ts.Tensor, axis int) *ts.Tensor {
	if axis < 0 {
		return x.MustReshape([]int64{1, -1}, false).MustContiguous(true)
	}
	size := x.MustSize()
	if axis >= len(size) {
		panic(fmt.Sprintf("quantize: axis %d of a %d-D tensor", axis, len(size)))
	}
	if axis == 0 {
		return x.MustReshape([]int64{size[0], -1}, false).MustContiguous(true)
	}
	return x.MustMovedim([]int64{int64(axis)}, []int64{0}, false).
		MustReshape([]int64{size[axis], -1}, true).MustContiguous(true)
}

// MinMax returns each row's minimum and maximum.
func MinMax(rows *ts.Tensor) (lo, hi []float64) {
	mn := rows.MustAmin([]int64{1}, false, false)
	mx := rows.MustAmax([]int64{1}, false, false)
	lo, hi = torchrt.Float64s(mn), torchrt.Float64s(mx)
	mn.MustDrop()
	mx.MustDrop()
	return lo, hi
}

// Percentile returns each row's p-th percentile (0 <= p <= 100), with
// linear interpolation between the closest ranks as numpy.percentile and
// torch.quantile do by default. With abs it is the percentile of |x|.
func Percentile(rows *ts.Tensor, p float64, abs bool) []float64 {
	src := rows
	if abs {
		src = rows.MustAbs(false)
		defer src.MustDrop()
	}
	sorted, idx := src.MustSort(1, false, false)
	idx.MustDrop()
	defer sorted.MustDrop()
	n := sorted.MustSize()[1]
	pos := p / 100 * float64(n-1)
	k := int64(math.Floor(pos))
	if k > n-2 {
		k = max(n-2, 0)
	}
	frac := pos - float64(k)
	width := min(int64(2), n-k)
	cols := sorted.MustNarrow(1, k, width, false)
	v := torchrt.Float64s(cols)
	cols.MustDrop()
	out := make([]float64, len(v)/int(width))
	for i := range out {
		a := v[i*int(width)]
		if width == 1 {
			out[i] = a
			continue
		}
		b := v[i*int(width)+1]
		out[i] = a + (b-a)*frac
	}
	return out
}

// PercentileRange is the clipping range of the percentile calibrator:
// [-P(|x|), P(|x|)] when symmetric, else [P_(100-p)(x), P_p(x)].
func PercentileRange(rows *ts.Tensor, p float64, symmetric bool) (lo, hi []float64) {
	if symmetric {
		hi = Percentile(rows, p, true)
		lo = make([]float64, len(hi))
		for i, h := range hi {
			lo[i] = -h
		}
		return lo, hi
	}
	return Percentile(rows, 100-p, false), Percentile(rows, p, false)
}

// EMA is the moving-average min/max of PyTorch's
// MovingAverageMinMaxObserver: the first batch sets the range, each later
// one moves it by C times the difference (in float32, as PyTorch does).
type EMA struct {
	C      float64
	Lo, Hi []float64
}

// Update folds one batch's ranges in.
func (e *EMA) Update(lo, hi []float64) {
	if e.Lo == nil {
		e.Lo = append([]float64(nil), lo...)
		e.Hi = append([]float64(nil), hi...)
		return
	}
	c := f32(e.C)
	for i := range lo {
		e.Lo[i] = f32(e.Lo[i] + f32(c*f32(lo[i]-e.Lo[i])))
		e.Hi[i] = f32(e.Hi[i] + f32(c*f32(hi[i]-e.Hi[i])))
	}
}

// f32 rounds to float32, as PyTorch's observers compute their qparams in
// float32 tensors.
func f32(x float64) float64 { return float64(float32(x)) }

// Grid returns the integer range of a uniform quantizer of bits:
// [-2^(bits-1), 2^(bits-1) - 1] when symmetric, [0, 2^bits - 1] otherwise.
func Grid(bits int, symmetric bool) (qmin, qmax int64) {
	if symmetric {
		return -(int64(1) << (bits - 1)), int64(1)<<(bits-1) - 1
	}
	return 0, int64(1)<<bits - 1
}

// QParams returns the uniform quantizer of bits for the per-row ranges
// [lo, hi], with PyTorch's formulas (torch.ao.quantization's
// _calculate_qparams): the range is widened to contain 0;
//
//	symmetric: scale = max(-lo, hi) / ((qmax - qmin) / 2), zero point 0
//	affine:    scale = (hi - lo) / (qmax - qmin), zp = qmin - round(lo / scale)
//
// with scale at least float32's epsilon and every step in float32. axis
// is the channel axis of the tensor the rows came from (-1 for one row).
func QParams(lo, hi []float64, bits int, symmetric bool, axis int) *vit.QuantSpec {
	qmin, qmax := Grid(bits, symmetric)
	spec := &vit.QuantSpec{Kind: vit.QuantUniform, Bits: bits, Symmetric: symmetric, Axis: axis,
		QMin: qmin, QMax: qmax, Scale: make([]float64, len(lo)), ZeroPoint: make([]int64, len(lo))}
	for i := range lo {
		minNeg, maxPos := math.Min(lo[i], 0), math.Max(hi[i], 0)
		var scale float64
		var zp int64
		if symmetric {
			m := math.Max(-minNeg, maxPos)
			scale = f32(m / f32(float64(qmax-qmin)/2))
			scale = math.Max(scale, eps32)
		} else {
			scale = f32(f32(maxPos-minNeg) / float64(qmax-qmin))
			scale = math.Max(scale, eps32)
			zp = qmin - int64(math.RoundToEven(f32(minNeg/scale)))
			zp = min(max(zp, qmin), qmax)
		}
		spec.Scale[i], spec.ZeroPoint[i] = scale, zp
	}
	return spec
}

// Alphas are the clipping fractions the MSE search tries: k/steps for
// k = 1..steps.
func Alphas(steps int) []float64 {
	a := make([]float64, steps)
	for k := range a {
		a[k] = float64(k+1) / float64(steps)
	}
	return a
}

// scaled returns the range [alpha lo, alpha hi] (symmetric: around the
// larger magnitude).
func scaled(lo, hi []float64, alpha float64) (l, h []float64) {
	l, h = make([]float64, len(lo)), make([]float64, len(hi))
	for i := range lo {
		l[i], h[i] = alpha*lo[i], alpha*hi[i]
	}
	return l, h
}

// SquaredError returns, per row, the sum of (spec(x) - x)^2.
func SquaredError(rows *ts.Tensor, spec *vit.QuantSpec) []float64 {
	q := spec.Apply(rows)
	d := q.MustSub(rows, true)
	e := d.MustSquare(true).MustSumDimIntlist([]int64{1}, false, gotch.Double, true)
	out := torchrt.Float64s(e)
	e.MustDrop()
	return out
}

// ClipErrors returns, for each clipping fraction alpha (outer index) and
// row (inner index), the squared error of quantizing the rows with the
// range [alpha lo, alpha hi]. Errors of several batches add up.
func ClipErrors(rows *ts.Tensor, lo, hi []float64, alphas []float64, bits int, symmetric bool) [][]float64 {
	out := make([][]float64, len(alphas))
	for k, a := range alphas {
		l, h := scaled(lo, hi, a)
		spec := QParams(l, h, bits, symmetric, rowsAxis(len(lo)))
		out[k] = SquaredError(rows, spec)
	}
	return out
}

// rowsAxis is the spec axis for quantizing rows directly: channels on
// axis 0, or one row quantized per tensor.
func rowsAxis(n int) int {
	if n == 1 {
		return -1
	}
	return 0
}

// BestClip picks, per row, the clipping fraction with the least error;
// on ties the larger fraction (less clipping) wins.
func BestClip(errs [][]float64, alphas []float64) []float64 {
	if len(errs) == 0 {
		return nil
	}
	best := make([]float64, len(errs[0]))
	for i := range best {
		k := len(alphas) - 1
		for j := len(alphas) - 2; j >= 0; j-- {
			if errs[j][i] < errs[k][i] {
				k = j
			}
		}
		best[i] = alphas[k]
	}
	return best
}

// MSERange returns the range that minimises the squared quantization
// error of the rows among [alpha lo, alpha hi] for alpha in alphas,
// starting from their min/max (OMSE, Choukroun et al. 2019, searched on a
// grid).
func MSERange(rows *ts.Tensor, alphas []float64, bits int, symmetric bool) (lo, hi []float64) {
	lo, hi = MinMax(rows)
	return clipped(lo, hi, BestClip(ClipErrors(rows, lo, hi, alphas, bits, symmetric), alphas))
}

// clipped scales each row's range by its fraction.
func clipped(lo, hi, alpha []float64) (l, h []float64) {
	l, h = make([]float64, len(lo)), make([]float64, len(hi))
	for i := range lo {
		l[i], h[i] = alpha[i]*lo[i], alpha[i]*hi[i]
	}
	return l, h
}

// Log2Spec is FQ-ViT's log2 quantizer of bits for attention
// probabilities (no calibration: the probabilities are at most 1).
func Log2Spec(bits int) *vit.QuantSpec {
	return &vit.QuantSpec{Kind: vit.QuantLog2, Bits: bits, Axis: -1}
}

// TwinSoftmaxSpec is PTQ4ViT's twin uniform quantizer of bits for
// softmax output: below split a grid of step split/(2^(bits-1)-1), above
// it a grid of step 1/(2^(bits-1)-1), each with 2^(bits-1) codes.
func TwinSoftmaxSpec(bits int, split float64) *vit.QuantSpec {
	top := float64(int64(1)<<(bits-1) - 1)
	return &vit.QuantSpec{Kind: vit.QuantTwin, Bits: bits, Axis: -1, Split: split,
		Scale: []float64{f32(split / top), f32(1 / top)}, QMin: 0, QMax: int64(top)}
}

// geluMin is the minimum of GELU, which PTQ4ViT's negative grid covers.
const geluMin = 0.16997124254703522

// TwinGELUSpec is PTQ4ViT's twin uniform quantizer of bits for GELU
// output: negative values on a grid of 2^(bits-1) steps of
// 0.16997/2^(bits-1) (GELU's minimum is -0.16997), positive values on a
// grid of step hi/(2^(bits-1)-1).
func TwinGELUSpec(bits int, hi float64) *vit.QuantSpec {
	half := int64(1) << (bits - 1)
	return &vit.QuantSpec{Kind: vit.QuantTwin, Bits: bits, Axis: -1, Split: 0,
		Scale: []float64{f32(geluMin / float64(half)), math.Max(f32(hi/float64(half-1)), eps32)},
		QMin:  -half, QMax: 0}
}

// SoftmaxSplits are the split points PTQ4ViT searches: 2^-i, i = 0..19.
func SoftmaxSplits() []float64 {
	s := make([]float64, 20)
	for i := range s {
		s[i] = math.Ldexp(1, -i)
	}
	return s
}
