package quantize

import (
	"fmt"
	"math"
	"slices"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// HessianSearch holds the parameters of PTQ4ViT's Hessian-guided scale
// search (Yuan et al., ECCV 2022; configs/PTQ4ViT.py in the authors'
// code).
type HessianSearch struct {
	// Alpha and Beta bound the candidate intervals: the i-th candidate is
	// (Alpha + i·(Beta-Alpha)/N) times the initial (max-based) interval,
	// i = 0 … N-1 (the authors' loop never reaches i = N).
	Alpha, Beta float64
	N           int
	// Rounds alternate the searches of a layer's operands: weight
	// interval given the input's, then input interval given the weight's.
	Rounds int
	// Chunk is the number of calibration images evaluated at once (memory
	// only: the result does not depend on it); 0 means 32.
	Chunk int
}

// DefaultHessianSearch is the authors' configuration: eq_alpha 0.01,
// eq_beta 1.2, eq_n 100, search_round 3.
var DefaultHessianSearch = HessianSearch{Alpha: 0.01, Beta: 1.2, N: 100, Rounds: 3}

// factors are the candidate multiples of the initial interval.
func (s HessianSearch) factors() []float64 {
	f := make([]float64, s.N)
	for i := range f {
		f[i] = s.Alpha + float64(i)*(s.Beta-s.Alpha)/float64(s.N)
	}
	return f
}

// operand is one quantized input of a consumer (a linear layer's input
// or weight, a matrix product's A or B) with its searched intervals.
type operand struct {
	x       *ts.Tensor // the values; along dim 0 the calibration images when batched
	batched bool
	cur     []float64   // current interval per group
	cands   [][]float64 // candidate intervals [K][groups]
	// quant fake-quantizes x with intervals s (one per group).
	quant func(x *ts.Tensor, s []float64) *ts.Tensor
}

// consumer is an operation whose inputs are quantized: PTQ4ViT scores a
// candidate by the Hessian-guided distance of its output from the float
// output, weighted by the loss gradient at that output.
type consumer struct {
	ops []*operand
	// forward computes the output [images, ..., features] from the
	// quantized operands (in ops order), not freeing them.
	forward func(in []*ts.Tensor) *ts.Tensor
	raw     *ts.Tensor // float output [images, ..., features]
	grad    *ts.Tensor // dL/d output, shaped like raw
	chunk   int
}

// Similarity is PTQ4ViT's "hessian" metric of out against raw, summed
// over images: -(grad·(raw - out))², averaged over each of groups equal
// slices of the last dimension, then over the tokens, then summed over
// the images (dim 0). It returns one value per group; none is freed.
func Similarity(raw, out, grad *ts.Tensor, groups int) []float64 {
	var v []float64
	torchrt.NoGrad(func() {
		d := raw.MustSub(out, false).MustMul(grad, true).MustSquare(true).MustNeg(true)
		b := d.MustSize()[0]
		f := d.MustSize()[d.Dim()-1]
		s := d.MustReshape([]int64{b, -1, int64(groups), f / int64(groups)}, true).
			MustMeanDim([]int64{3}, false, gotch.Float, true).
			MustMeanDim([]int64{1}, false, gotch.Float, true).
			MustSumDimIntlist([]int64{0}, false, gotch.Float, true)
		v = s.Float64Values()
		s.MustDrop()
	})
	return v
}

// scores evaluates every candidate of ops[p], the other operands at
// their current intervals: [K][groups].
func (c *consumer) scores(p int) [][]float64 {
	op := c.ops[p]
	out := make([][]float64, len(op.cands))
	for k := range out {
		out[k] = make([]float64, len(op.cur))
	}
	n := c.raw.MustSize()[0]
	step := int64(c.chunk)
	if step <= 0 {
		step = 32
	}
	for st := int64(0); st < n; st += step {
		l := min(step, n-st)
		slice := func(t *ts.Tensor) *ts.Tensor { return t.MustNarrow(0, st, l, false) }
		raw, grad := slice(c.raw), slice(c.grad)
		in := make([]*ts.Tensor, len(c.ops))
		xs := make([]*ts.Tensor, len(c.ops))
		for i, o := range c.ops {
			xs[i] = o.x
			if o.batched {
				xs[i] = slice(o.x)
			}
			if i != p {
				in[i] = o.quant(xs[i], o.cur)
			}
		}
		for k, cand := range op.cands {
			in[p] = op.quant(xs[p], cand)
			y := c.forward(in)
			for g, v := range Similarity(raw, y, grad, len(op.cur)) {
				out[k][g] += v
			}
			y.MustDrop()
			in[p].MustDrop()
		}
		for i, o := range c.ops {
			if i != p {
				in[i].MustDrop()
			}
			if o.batched {
				xs[i].MustDrop()
			}
		}
		raw.MustDrop()
		grad.MustDrop()
	}
	return out
}

// search runs the alternating search: rounds times, each operand in turn
// takes, per group, the candidate of the highest similarity (the first
// on ties, as torch.argmax).
func (c *consumer) search(rounds int) {
	torchrt.NoGrad(func() {
		for r := 0; r < rounds; r++ {
			for p, op := range c.ops {
				if len(op.cands) == 0 {
					continue
				}
				sc := c.scores(p)
				for g := range op.cur {
					best := 0
					for k := range sc {
						if sc[k][g] > sc[best][g] {
							best = k
						}
					}
					op.cur[g] = op.cands[best][g]
				}
			}
		}
	})
}

// candidates returns factors[k]·init[g].
func candidates(factors, init []float64) [][]float64 {
	out := make([][]float64, len(factors))
	for k, f := range factors {
		out[k] = make([]float64, len(init))
		for g, s := range init {
			out[k][g] = f32(f32(f) * s) // float32 factor times float32 interval, as the authors compute it
		}
	}
	return out
}

// symQuant is the authors' uniform quantizer: round(x/s) clamped to
// [-2^(bits-1), 2^(bits-1)-1], times s, with one interval per group of
// rows along dim 0.
func symQuant(bits int) func(x *ts.Tensor, s []float64) *ts.Tensor {
	q := float64(int64(1) << (bits - 1))
	return func(x *ts.Tensor, s []float64) *ts.Tensor {
		if len(s) == 1 {
			sc := ts.FloatScalar(f32(s[0]))
			return x.MustDivScalar(sc, false).MustRound(true).
				MustClamp(ts.FloatScalar(-q), ts.FloatScalar(q-1), true).MustMulScalar(sc, true)
		}
		st := intervals(s, x.MustDevice())
		defer st.MustDrop()
		size := x.MustSize()
		g := x.MustReshape([]int64{int64(len(s)), -1}, false)
		y := g.MustDiv(st, true).MustRound(true).
			MustClamp(ts.FloatScalar(-q), ts.FloatScalar(q-1), true).MustMul(st, true)
		return y.MustReshape(size, true)
	}
}

// intervals is s as a float32 column [len(s), 1].
func intervals(s []float64, dev gotch.Device) *ts.Tensor {
	v := make([]float32, len(s))
	for i, x := range s {
		v[i] = float32(x)
	}
	return ts.MustOfSlice(v).MustView([]int64{int64(len(s)), 1}, true).MustTo(dev, true)
}

// geluNegInterval is the authors' fixed interval of the negative GELU
// grid: GELU's minimum over 2^(bits-1) steps.
func geluNegInterval(bits int) float64 { return f32(geluMin / float64(int64(1)<<(bits-1))) }

// geluQuant is the authors' post-GELU twin quantizer: positive values on
// [0, 2^(bits-1)-1] steps of the searched s, negative ones on
// [-2^(bits-1), 0] steps of geluNegInterval.
func geluQuant(bits int) func(x *ts.Tensor, s []float64) *ts.Tensor {
	q := float64(int64(1) << (bits - 1))
	neg := geluNegInterval(bits)
	return func(x *ts.Tensor, s []float64) *ts.Tensor {
		sp := ts.FloatScalar(f32(s[0]))
		sn := ts.FloatScalar(neg)
		pos := x.MustDivScalar(sp, false).MustRound(true).
			MustClamp(ts.FloatScalar(0), ts.FloatScalar(q-1), true).MustMulScalar(sp, true)
		n := x.MustDivScalar(sn, false).MustRound(true).
			MustClamp(ts.FloatScalar(-q), ts.FloatScalar(0), true).MustMulScalar(sn, true)
		n2 := pos.MustAdd(n, true)
		n.MustDrop()
		return n2
	}
}

// softmaxQuant is the twin-uniform quantizer of the attention map with
// split s[0] (vit.QuantTwin, as the model executes it).
func softmaxQuant(bits int) func(x *ts.Tensor, s []float64) *ts.Tensor {
	return func(x *ts.Tensor, s []float64) *ts.Tensor { return TwinSoftmaxSpec(bits, s[0]).Apply(x) }
}

// absMaxInterval is the authors' initial interval max|x|/(2^(bits-1) -
// 0.5), per group of rows along dim 0 (one group: the whole tensor); with
// positive it is max(x) instead (the post-GELU positive grid).
func absMaxInterval(x *ts.Tensor, bits, groups int, positive bool) []float64 {
	var v []float64
	torchrt.NoGrad(func() {
		g := x.MustReshape([]int64{int64(groups), -1}, false)
		if !positive {
			g = g.MustAbs(true)
		}
		m := g.MustAmax([]int64{1}, false, true)
		v = m.Float64Values()
		m.MustDrop()
	})
	d := float64(int64(1)<<(bits-1)) - 0.5
	for i := range v {
		v[i] = f32(v[i] / d)
	}
	return v
}

// weightOperand is a linear layer's weight [out, in] searched with
// groups intervals (equal blocks of output rows).
func weightOperand(w *ts.Tensor, bits, groups int, s HessianSearch) *operand {
	init := absMaxInterval(w, bits, groups, false)
	return &operand{x: w, cur: slices.Clone(init), cands: candidates(s.factors(), init), quant: symQuant(bits)}
}

// inputOperand is a layer's input over the calibration images [images,
// ..., in], quantized per tensor as shape asks (ShapeUniform: the
// symmetric grid; ShapeTwinGELU: the post-GELU twin grid).
func inputOperand(x *ts.Tensor, bits int, shape string, s HessianSearch) (*operand, error) {
	switch shape {
	case ShapeUniform:
		init := absMaxInterval(x, bits, 1, false)
		return &operand{x: x, batched: true, cur: slices.Clone(init), cands: candidates(s.factors(), init), quant: symQuant(bits)}, nil
	case ShapeTwinGELU:
		init := absMaxInterval(x, bits, 1, true)
		init[0] = math.Max(init[0], eps32)
		return &operand{x: x, batched: true, cur: slices.Clone(init), cands: candidates(s.factors(), init), quant: geluQuant(bits)}, nil
	}
	return nil, fmt.Errorf("ptq4vit searches uniform and post-GELU inputs, not %s", shape)
}

// softmaxOperand is the attention map [images, heads, N, N] searched over
// the authors' split points 2^-i, i < 20, from their initial 0.01.
func softmaxOperand(a *ts.Tensor, bits int) *operand {
	splits := SoftmaxSplits()
	cands := make([][]float64, len(splits))
	for i, s := range splits {
		cands[i] = []float64{s}
	}
	return &operand{x: a, batched: true, cur: []float64{0.01}, cands: cands, quant: softmaxQuant(bits)}
}

// symSpec is the vit.QuantSpec of the authors' uniform grid with
// intervals s: per tensor, or per output row when s has one per group of
// rows (rows in all).
func symSpec(bits int, s []float64, rows int64) *vit.QuantSpec {
	half := int64(1) << (bits - 1)
	spec := &vit.QuantSpec{Kind: vit.QuantUniform, Bits: bits, Symmetric: true, Axis: -1, QMin: -half, QMax: half - 1}
	if len(s) == 1 {
		spec.Scale, spec.ZeroPoint = []float64{f32(s[0])}, []int64{0}
		return spec
	}
	spec.Axis = 0
	per := rows / int64(len(s))
	for r := int64(0); r < rows; r++ {
		spec.Scale = append(spec.Scale, f32(s[r/per]))
		spec.ZeroPoint = append(spec.ZeroPoint, 0)
	}
	return spec
}

// geluSpec is the post-GELU twin grid with positive interval s.
func geluSpec(bits int, s float64) *vit.QuantSpec {
	half := int64(1) << (bits - 1)
	return &vit.QuantSpec{Kind: vit.QuantTwin, Bits: bits, Axis: -1, Split: 0,
		Scale: []float64{geluNegInterval(bits), f32(s)}, QMin: -half, QMax: 0}
}

// LinearSearch is one linear layer's PTQ4ViT calibration data: its
// inputs x [images, ..., in] over the calibration images, its float
// output raw and the loss gradient at that output grad [images, ...,
// out], with the weight w [out, in] and bias b (or nil).
type LinearSearch struct {
	X, Raw, Grad, W, B *ts.Tensor
	WeightBits         int    // 0: the weight stays float
	WeightGroups       int    // intervals of the weight: equal blocks of output rows (qkv: 3)
	ActBits            int    // 0: the input stays float
	ActShape           string // ShapeUniform or ShapeTwinGELU
}

// Search runs PTQ4ViT's alternating Hessian-guided search for the layer
// and returns the weight's and the input's quantizers (nil for one not
// quantized). Nothing is freed.
func (l LinearSearch) Search(s HessianSearch) (weight, act *vit.QuantSpec, err error) {
	if l.WeightBits == 0 && l.ActBits == 0 {
		return nil, nil, nil
	}
	wop := fixed(l.W, false)
	if l.WeightBits > 0 {
		wop = weightOperand(l.W, l.WeightBits, max(l.WeightGroups, 1), s)
	}
	aop := fixed(l.X, true)
	if l.ActBits > 0 {
		if aop, err = inputOperand(l.X, l.ActBits, l.ActShape, s); err != nil {
			return nil, nil, err
		}
	}
	b := l.B
	if b == nil {
		b = ts.None
	}
	// The authors' order: the weight's interval first, then the input's.
	c := &consumer{ops: []*operand{wop, aop}, raw: l.Raw, grad: l.Grad, chunk: s.Chunk,
		forward: func(in []*ts.Tensor) *ts.Tensor { return ts.MustLinear(in[1], in[0], b) }}
	c.search(s.Rounds)
	if l.WeightBits > 0 {
		weight = symSpec(l.WeightBits, wop.cur, l.W.MustSize()[0])
	}
	if l.ActBits > 0 {
		if l.ActShape == ShapeTwinGELU {
			act = geluSpec(l.ActBits, aop.cur[0])
		} else {
			act = symSpec(l.ActBits, aop.cur, 1)
		}
	}
	return weight, act, nil
}

// fixed is an operand that stays float: no candidates, its values as
// they are.
func fixed(x *ts.Tensor, batched bool) *operand {
	return &operand{x: x, batched: batched, quant: func(x *ts.Tensor, _ []float64) *ts.Tensor { return x.MustShallowClone() }}
}
