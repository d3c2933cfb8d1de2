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

// QuantizePTQ4ViT quantizes m in place as PTQ4ViT does (Yuan et al.,
// ECCV 2022; HessianQuantCalibrator with the authors' PTQ4ViT config)
// and records the result with m.SetQuant. Layer by layer in forward
// order (each block's qkv, attention map, proj, fc1, fc2, then the
// head), it collects on the calibration images the layer's input, its
// float output and the gradient at that output of the authors' loss, the
// KL divergence of the model's prediction from the float model's softmax
// (batchmean), then searches the layer's intervals with s (see
// LinearSearch.Search) and quantizes the layer before the next one is
// collected. Collection runs with the layers already calibrated
// quantized, the authors' sequential mode: in their default
// (sequential=False) every layer is float during collection, the two
// predictions are the same and the gradient is zero but for rounding
// noise (their issue #23). A layer whose gradient is still all zero
// (nothing before it quantized) is searched with the squared error
// instead, the authors' L2_norm metric.
//
// Weights have one interval per tensor, qkv's one per q, k and v block
// of rows (their n_V = 3), on the symmetric grid [-2^(b-1), 2^(b-1)-1];
// linear inputs one per tensor on the same grid, fc2's the post-GELU twin
// grid; the attention map the twin-uniform grid of the searched split.
// The patch embedding, factored layers and activation sites outside
// these are calibrated as p's rules ask, first. The batches are not
// freed.
func QuantizePTQ4ViT(ctx context.Context, m *vit.Model, batches []*ts.Tensor, p *Plan, s HessianSearch) (*vit.QuantState, error) {
	if p.corrected() {
		return nil, fmt.Errorf("quantize: method ptq4vit chooses its own weight intervals; rounding %q and bias correction are not combined with it", p.Rounding)
	}
	if len(batches) == 0 {
		return nil, fmt.Errorf("quantize: ptq4vit needs calibration images")
	}
	q := &ptq4vit{m: m, p: p, s: s, ctx: ctx, batches: batches, pts: m.TapPoints(),
		state: &vit.QuantState{Precision: vit.PrecisionInt, Weights: map[string]*vit.QuantSpec{}, Acts: map[string]*vit.QuantSpec{}}}
	q.saved = map[string]vit.Tap{}
	for k, t := range q.pts {
		q.saved[k] = *t
	}
	q.cur = maps.Clone(q.saved)
	defer q.zeroGrads()
	if err := q.run(); err != nil {
		q.dropTargets()
		for k, t := range q.saved {
			*q.pts[k] = t
		}
		return nil, err
	}
	q.dropTargets()
	for k, t := range q.saved {
		*q.pts[k] = t
	}
	if err := m.SetQuant(q.state); err != nil {
		return nil, err
	}
	return q.state, nil
}

// ptq4vit is one run of QuantizePTQ4ViT.
type ptq4vit struct {
	m       *vit.Model
	p       *Plan
	s       HessianSearch
	ctx     context.Context
	batches []*ts.Tensor
	targets []*ts.Tensor // the float model's softmax per batch
	pts     map[string]*vit.Tap
	saved   map[string]vit.Tap // the taps before
	cur     map[string]vit.Tap // with the quantizers attached so far
	state   *vit.QuantState
}

// zeroGrads zeroes the gradients the passes left on the parameters
// (only the layer outputs' are wanted; turning the parameters'
// requires_grad off would replace their handles under the VarStore).
func (q *ptq4vit) zeroGrads() {
	for _, v := range q.m.VS.TrainableVariables() {
		g := v.MustGrad(false)
		if g.MustDefined() {
			torchrt.NoGrad(func() { g.MustZero_() })
		}
		g.MustDrop()
	}
}

func (q *ptq4vit) dropTargets() {
	for _, t := range q.targets {
		t.MustDrop()
	}
	q.targets = nil
}

// searchedLinears are the layers the search calibrates, with their
// input's key and weight intervals: each block's, then the head(s).
func (q *ptq4vit) searchedLinears() (ls []*vit.Linear, keys []string, groups []int) {
	for _, b := range q.m.Blocks {
		for _, g := range []struct {
			l *vit.Linear
			s vit.Site
			n int
		}{{b.QKV, vit.SiteQKVIn, 3}, {b.Proj, vit.SiteProjIn, 1}, {b.FC1, vit.SiteFC1In, 1}, {b.FC2, vit.SiteFC2In, 1}} {
			if g.l.Rank == 0 && g.l.Out%g.n == 0 {
				ls, keys, groups = append(ls, g.l), append(keys, vit.ActKey(b.Index, g.s)), append(groups, g.n)
			}
		}
	}
	heads := []*vit.Linear{q.m.Head}
	hk := []string{vit.ActHead}
	if q.m.HeadDist != nil {
		heads, hk = append(heads, q.m.HeadDist), append(hk, vit.ActHeadDist)
	}
	for i, h := range heads {
		if h.Rank == 0 {
			ls, keys, groups = append(ls, h), append(keys, hk[i]), append(groups, 1)
		}
	}
	return ls, keys, groups
}

func (q *ptq4vit) run() error {
	ls, keys, groups := q.searchedLinears()
	searchedW, searchedA := map[string]bool{}, map[string]bool{}
	for i, l := range ls {
		searchedW[l.Name+".weight"] = true
		searchedA[keys[i]] = true
	}
	for _, b := range q.m.Blocks {
		key := vit.ActKey(b.Index, vit.SiteAttnMap)
		if r, ok := q.p.Acts[key]; ok && r.Shape == ShapeTwinSoftmax {
			searchedA[key] = true
		}
	}
	// The float model's predictions, the loss's target, taken before
	// anything is quantized.
	torchrt.NoGrad(func() {
		for _, x := range q.batches {
			y := q.m.Forward(x)
			q.targets = append(q.targets, y.MustSoftmax(-1, gotch.Float, true))
		}
	})
	// The rest first, as the authors' patch embedding comes first.
	for _, name := range slices.Sorted(maps.Keys(q.p.Weights)) {
		if searchedW[name] {
			continue
		}
		w, err := q.m.VS.Root().Get(name)
		if err != nil {
			return fmt.Errorf("quantize: the model has no parameter %s", name)
		}
		var spec *vit.QuantSpec
		torchrt.NoGrad(func() {
			if spec, err = CalibrateTensor(w, q.p.Weights[name]); err == nil {
				r := spec.Apply(w)
				w.Copy_(r)
				r.MustDrop()
			}
		})
		if err != nil {
			return fmt.Errorf("quantize weight %s: %w", name, err)
		}
		q.state.Weights[name] = spec
	}
	rest := map[string]Rule{}
	for k, r := range q.p.Acts {
		if !searchedA[k] {
			rest[k] = r
		}
	}
	specs, err := CalibrateActivations(q.ctx, q.m, q.batches, rest)
	if err != nil {
		return err
	}
	for k, spec := range specs {
		q.attach(k, spec)
	}
	index := map[*vit.Linear]int{}
	for i, l := range ls {
		index[l] = i
	}
	layer := func(l *vit.Linear) error {
		i, ok := index[l]
		if !ok {
			return nil
		}
		return q.linear(l, keys[i], groups[i])
	}
	for _, b := range q.m.Blocks {
		if err := layer(b.QKV); err != nil {
			return err
		}
		if err := q.attention(b); err != nil {
			return err
		}
		for _, l := range []*vit.Linear{b.Proj, b.FC1, b.FC2} {
			if err := layer(l); err != nil {
				return err
			}
		}
	}
	for _, l := range []*vit.Linear{q.m.Head, q.m.HeadDist} {
		if l == nil {
			continue
		}
		if err := layer(l); err != nil {
			return err
		}
	}
	return nil
}

// attach puts spec at the activation site key for the passes that
// follow and records it.
func (q *ptq4vit) attach(key string, spec *vit.QuantSpec) {
	q.cur[key] = vit.ChainTap(q.saved[key], spec)
	*q.pts[key] = q.cur[key]
	q.state.Acts[key] = spec
}

// passes runs the batches through m with gradients on, backpropagating
// the authors' loss; after each backward pass, read collects what it
// needs.
func (q *ptq4vit) passes(read func()) (err error) {
	torchrt.WithGrad(func() {
		for i, x := range q.batches {
			if err = q.ctx.Err(); err != nil {
				return
			}
			logits := q.m.Forward(x)
			n := logits.MustSize()[0]
			// KL(p‖softmax(z)) with batchmean; Σ p log p has no gradient.
			loss := logits.MustLogSoftmax(-1, gotch.Float, true).MustMul(q.targets[i], true).
				MustSum(gotch.Float, true).MustDivScalar(ts.FloatScalar(-float64(n)), true)
			loss.MustBackward()
			loss.MustDrop()
			read()
		}
	})
	return err
}

// probe is a zero tensor added to an output so that the output's
// gradient can be read off it after the backward pass.
type probe struct {
	raw, grad []*ts.Tensor
	zeros     []*ts.Tensor
}

// add records y (detached) and returns y + zeros, which autograd tracks.
func (p *probe) add(y *ts.Tensor) *ts.Tensor {
	p.raw = append(p.raw, y.MustDetach(false))
	z := y.MustZerosLike(false)
	z.MustRequiresGrad_(true)
	p.zeros = append(p.zeros, z)
	return y.MustAdd(z, false)
}

// read moves the zeros' gradients to grad.
func (p *probe) read() {
	for _, z := range p.zeros {
		p.grad = append(p.grad, z.MustGrad(false))
		z.MustDrop()
	}
	p.zeros = nil
}

// cat concatenates ts along dim 0 and frees them.
func cat(xs []*ts.Tensor) *ts.Tensor {
	out := ts.MustCat(xs, 0)
	for _, x := range xs {
		x.MustDrop()
	}
	return out
}

// linearKernel computes a float layer in place of l during a collection
// pass: its input recorded, its output probed.
type linearKernel struct {
	l  *vit.Linear
	in []*ts.Tensor
	pr *probe
}

func (k *linearKernel) Forward(x *ts.Tensor) *ts.Tensor {
	in := x
	if k.l.Tap != nil {
		in = k.l.Tap.Tap(x)
	}
	b := k.l.Bias
	if b == nil {
		b = ts.None
	}
	y := ts.MustLinear(in, k.l.Weight, b)
	k.in = append(k.in, in.MustDetach(false))
	if in != x {
		in.MustDrop()
	}
	out := k.pr.add(y)
	y.MustDrop()
	return out
}

func (k *linearKernel) GELU() bool { return false }
func (k *linearKernel) Close()     {}

// gradOrOnes returns g, or ones (the squared-error metric) when g is all
// zero, freeing g then.
func gradOrOnes(g *ts.Tensor) *ts.Tensor {
	var zero bool
	torchrt.NoGrad(func() {
		m := g.MustAbs(false).MustMax(true)
		zero = m.Float64Values()[0] == 0
		m.MustDrop()
	})
	if !zero {
		return g
	}
	o := g.MustOnesLike(false)
	g.MustDrop()
	return o
}

// linear collects and searches one linear layer.
func (q *ptq4vit) linear(l *vit.Linear, key string, groups int) error {
	wname := l.Name + ".weight"
	wr, hasW := q.p.Weights[wname]
	ar, hasA := q.p.Acts[key]
	if !hasW && !hasA {
		return nil
	}
	if l.Kernel != nil {
		return fmt.Errorf("quantize: layer %s executes a kernel", l.Name)
	}
	k := &linearKernel{l: l, pr: &probe{}}
	l.Kernel = k
	err := q.passes(k.pr.read)
	l.Kernel = nil
	x, raw := cat(k.in), cat(k.pr.raw)
	grad := gradOrOnes(cat(k.pr.grad))
	defer func() {
		x.MustDrop()
		raw.MustDrop()
		grad.MustDrop()
	}()
	if err != nil {
		return err
	}
	ls := LinearSearch{X: x, Raw: raw, Grad: grad, W: l.Weight, B: l.Bias, WeightGroups: groups, ActShape: ShapeUniform}
	if hasW {
		ls.WeightBits = wr.Bits
	}
	if hasA {
		ls.ActBits = ar.Bits
		if ar.Shape == ShapeTwinGELU {
			ls.ActShape = ShapeTwinGELU
		}
	}
	wspec, aspec, err := ls.Search(q.s)
	if err != nil {
		return fmt.Errorf("quantize %s: %w", l.Name, err)
	}
	if wspec != nil {
		torchrt.NoGrad(func() {
			r := wspec.Apply(l.Weight)
			l.Weight.Copy_(r)
			r.MustDrop()
		})
		q.state.Weights[wname] = wspec
	}
	if aspec != nil {
		q.attach(key, aspec)
	}
	return nil
}

// tapFunc is a vit.Tap from a function.
type tapFunc func(x *ts.Tensor) *ts.Tensor

func (f tapFunc) Tap(x *ts.Tensor) *ts.Tensor { return f(x) }

// qkvKernel computes qkv (already quantized) and records its values.
type qkvKernel struct {
	b *vit.Block
	v []*ts.Tensor
}

func (k *qkvKernel) Forward(x *ts.Tensor) *ts.Tensor {
	l := k.b.QKV
	in := x
	if l.Tap != nil {
		in = l.Tap.Tap(x)
	}
	b := l.Bias
	if b == nil {
		b = ts.None
	}
	y := ts.MustLinear(in, l.Weight, b)
	if in != x {
		in.MustDrop()
	}
	torchrt.NoGrad(func() {
		s := y.MustSize()
		v := y.MustDetach(false).MustReshape([]int64{s[0], s[1], 3, int64(k.b.Heads), int64(k.b.HeadDim)}, true).
			MustSelect(2, 2, true).MustTranspose(1, 2, true).MustContiguous(true) // [B, heads, N, hd]
		k.v = append(k.v, v)
	})
	return y
}

func (k *qkvKernel) GELU() bool { return false }
func (k *qkvKernel) Close()     {}

// attention collects and searches the attention map of block b as the A
// input of attn·v (the authors' SoSPTQSLBatchingQuantMatMul): the map,
// the values, the product's float output and its gradient, read at the
// input of proj. The values stay float, as they are in the model (and in
// the authors' split search, which multiplies by the float B).
func (q *ptq4vit) attention(b *vit.Block) error {
	key := vit.ActKey(b.Index, vit.SiteAttnMap)
	r, ok := q.p.Acts[key]
	if !ok || r.Shape != ShapeTwinSoftmax {
		return nil
	}
	if b.QKV.Kernel != nil {
		return fmt.Errorf("quantize: layer %s executes a kernel", b.QKV.Name)
	}
	var maps_ []*ts.Tensor
	*q.pts[key] = vit.ChainTap(q.cur[key], tapFunc(func(x *ts.Tensor) *ts.Tensor {
		maps_ = append(maps_, x.MustDetach(false))
		return x
	}))
	pr := &probe{}
	projKey := vit.ActKey(b.Index, vit.SiteProjIn)
	*q.pts[projKey] = vit.ChainTap(q.cur[projKey], tapFunc(pr.add))
	qk := &qkvKernel{b: b}
	b.QKV.Kernel = qk
	err := q.passes(pr.read)
	b.QKV.Kernel = nil
	*q.pts[key], *q.pts[projKey] = q.cur[key], q.cur[projKey]
	heads := func(t *ts.Tensor) *ts.Tensor { // [B, N, heads·hd] → [B, heads, N, hd]
		s := t.MustSize()
		return t.MustReshape([]int64{s[0], s[1], int64(b.Heads), int64(b.HeadDim)}, true).MustTranspose(1, 2, true).MustContiguous(true)
	}
	a, v := cat(maps_), cat(qk.v)
	raw, grad := heads(cat(pr.raw)), heads(gradOrOnes(cat(pr.grad)))
	defer func() {
		for _, t := range []*ts.Tensor{a, v, raw, grad} {
			t.MustDrop()
		}
	}()
	if err != nil {
		return err
	}
	c := &consumer{ops: []*operand{softmaxOperand(a, r.Bits), fixed(v, true)}, raw: raw, grad: grad, chunk: q.s.Chunk,
		forward: func(in []*ts.Tensor) *ts.Tensor { return in[0].MustMatmul(in[1], false) }}
	c.search(q.s.Rounds)
	q.attach(key, TwinSoftmaxSpec(r.Bits, c.ops[0].cur[0]))
	return nil
}
