package quantize

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques"
)

// MixedOptions are a mixed-precision search's parameters.
type MixedOptions struct {
	Choices    []int    // candidate weight widths
	Budget     string   // techniques.BudgetSize or techniques.BudgetBitOps
	BudgetBits int      // the uniform width whose cost is the budget
	Samples    int      // Hutchinson samples of each Hessian trace
	Groups     []string // the listed layer groups: their linear layers are searched
}

// mixedOptions translates a stage's parameters.
func mixedOptions(c *techniques.QuantizeConfig) MixedOptions {
	return MixedOptions{Choices: slices.Clone(c.BitChoices), Budget: c.Budget, BudgetBits: c.BudgetBits,
		Samples: c.HutchinsonSamples, Groups: slices.Clone(c.Layers)}
}

// MethodHAWQ names the sensitivity measure in vit.MixedPrecision.
const MethodHAWQ = "hawq-v3"

// hutchinsonSeed fixes the Rademacher vectors, so a search is repeatable.
const hutchinsonSeed = 0x4841575133 // "HAWQ3"

// maxFrontier bounds the search's states; real models stay far below.
const maxFrontier = 1 << 20

// searchLayer is one linear layer whose weight width is searched.
type searchLayer struct {
	name    string
	weights []string
	act     string // the activation key of its input
	numel   int64
	macs    int64
}

// AssignBits chooses a weight width from o.Choices for each linear layer
// of o.Groups that p quantizes, as HAWQ-V3 does (Yao et al., ICML 2021,
// eq. 12; the sensitivity of HAWQ-V2, Dong et al., NeurIPS 2020, eq. 5):
// layer i at width b has sensitivity
//
//	Ω_i(b) = Tr(H_i)/n_i · ||Q_b(W_i) - W_i||²
//
// where Tr(H_i) is the trace of the loss Hessian's block of the layer's
// n_i weights, estimated by Hutchinson's method with Rademacher vectors
// (E[vᵀHv] = Tr(H), as PyHessian computes it: one Hessian-vector product
// of all layers per vector, each layer's trace read from its block), and
// Q_b is the layer's weight quantizer (p's rule: calibrator, granularity,
// symmetry) at b bits. The loss is the cross-entropy on the calibration
// images against the float model's own top-1 predictions (the images
// carry no labels). The widths minimise ΣΩ_i(b_i) subject to the budget:
// the searched layers' packed weight bytes (size) or BitOps (bitops, at
// their input activations' widths, 32 when float) at most those at
// o.BudgetBits everywhere. HAWQ-V3 solves this with an integer linear
// program; chooseBits solves it exactly by dynamic programming. The
// chosen widths are written into p's weight rules; the record returned
// keeps the traces, every Ω_i(b) and the choice. m must be float.
func AssignBits(ctx context.Context, m *vit.Model, batches []*ts.Tensor, p *Plan, o MixedOptions) (*vit.MixedPrecision, error) {
	layers, err := searchLayers(m, p, o.Groups)
	if err != nil {
		return nil, err
	}
	if len(layers) == 0 {
		return nil, fmt.Errorf("mixed precision: no quantized linear layer in layers %v", o.Groups)
	}
	choices := slices.Sorted(slices.Values(o.Choices))
	traces, err := hessianTraces(ctx, m, batches, layers, o.Samples)
	if err != nil {
		return nil, err
	}
	sens := make([][]float64, len(layers))
	cost := make([][]int64, len(layers))
	var limit int64
	for i, l := range layers {
		sens[i] = make([]float64, len(choices))
		cost[i] = make([]int64, len(choices))
		for j, b := range choices {
			e, err := weightError(m, p, l, b)
			if err != nil {
				return nil, err
			}
			sens[i][j] = traces[i] * e
			if math.IsNaN(sens[i][j]) || math.IsInf(sens[i][j], 0) {
				return nil, fmt.Errorf("mixed precision: %s at %d bits: sensitivity %g (Hessian trace %g, error %g)", l.name, b, sens[i][j], traces[i], e)
			}
			cost[i][j] = layerCost(l, b, o.Budget, p)
		}
		limit += layerCost(l, o.BudgetBits, o.Budget, p)
	}
	pick, err := chooseBits(sens, cost, limit)
	if err != nil {
		return nil, fmt.Errorf("mixed precision: %w", err)
	}
	rec := &vit.MixedPrecision{Method: MethodHAWQ, Budget: o.Budget, BudgetBits: o.BudgetBits, Limit: limit, Choices: choices}
	for i, l := range layers {
		b := choices[pick[i]]
		for _, n := range l.weights {
			r := p.Weights[n]
			r.Bits = b
			p.Weights[n] = r
		}
		rec.Cost += cost[i][pick[i]]
		rec.Layers = append(rec.Layers, vit.MixedLayer{Name: l.name, Weights: l.weights, Trace: traces[i], Sensitivity: sens[i], Bits: b})
	}
	return rec, nil
}

// searchLayers lists the linear layers of the groups whose weights p
// quantizes, in the model's order.
func searchLayers(m *vit.Model, p *Plan, groups []string) ([]searchLayer, error) {
	listed := map[string]bool{}
	for _, g := range groups {
		listed[g] = true
	}
	macs := map[string]int64{}
	for _, l := range m.Cfg.Count().Layers {
		macs[l.Name] = l.MACs
	}
	var out []searchLayer
	add := func(name string, weights []string, act string) error {
		for _, n := range weights {
			if _, ok := p.Weights[n]; !ok {
				return nil // weights left in float
			}
		}
		mc, ok := macs[name]
		if !ok {
			return fmt.Errorf("mixed precision: the model counts no layer %s", name)
		}
		l := searchLayer{name: name, weights: weights, act: act, macs: mc}
		vars := m.VS.Variables()
		for _, n := range weights {
			t, ok := vars[n]
			if !ok {
				return fmt.Errorf("mixed precision: the model has no parameter %s", n)
			}
			l.numel += int64(t.Numel())
		}
		out = append(out, l)
		return nil
	}
	if listed[techniques.GroupPatchEmbed] {
		if err := add("patch_embed.proj", []string{"patch_embed.proj.weight"}, vit.ActInput); err != nil {
			return nil, err
		}
	}
	for _, b := range m.Blocks {
		for _, g := range []string{techniques.GroupQKV, techniques.GroupProj, techniques.GroupFC1, techniques.GroupFC2} {
			if !listed[g] {
				continue
			}
			info := blockGroups[g]
			l := info.linear(b)
			if err := add(l.Name, weightNames(l), vit.ActKey(b.Index, info.site)); err != nil {
				return nil, err
			}
		}
	}
	if listed[techniques.GroupHead] {
		if err := add(m.Head.Name, weightNames(m.Head), vit.ActHead); err != nil {
			return nil, err
		}
		if m.HeadDist != nil {
			if err := add(m.HeadDist.Name, weightNames(m.HeadDist), vit.ActHeadDist); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// layerCost is a layer's cost at b-bit weights: its packed weight bytes,
// or its BitOps with its input at the width p gives it.
func layerCost(l searchLayer, b int, budget string, p *Plan) int64 {
	if budget == techniques.BudgetBitOps {
		abits := int64(32)
		if r, ok := p.Acts[l.act]; ok && r.Bits > 0 {
			abits = int64(r.Bits)
		}
		return l.macs * int64(b) * abits
	}
	return (l.numel*int64(b) + 7) / 8
}

// weightError is ||Q_b(W) - W||² over the layer's weights, with p's rule
// at b bits.
func weightError(m *vit.Model, p *Plan, l searchLayer, b int) (float64, error) {
	var sum float64
	for _, n := range l.weights {
		w, err := m.VS.Root().Get(n)
		if err != nil {
			return 0, fmt.Errorf("mixed precision: %w", err)
		}
		r := p.Weights[n]
		r.Bits = b
		torchrt.NoGrad(func() {
			var spec *vit.QuantSpec
			spec, err = CalibrateTensor(w, r)
			if err != nil {
				return
			}
			q := spec.Apply(w)
			d := q.MustSub(w, true).MustSquare(true).MustSum(w.DType(), true)
			sum += d.Float64Values()[0]
			d.MustDrop()
		})
		if err != nil {
			return 0, fmt.Errorf("mixed precision: weight %s at %d bits: %w", n, b, err)
		}
	}
	return sum, nil
}

// hessianTraces estimates each layer's average Hessian trace Tr(H_i)/n_i
// of the cross-entropy against the float model's predictions, averaged
// over the batches (weighted by their images) and over samples Rademacher
// vectors v: Tr(H_i) ≈ mean vᵢᵀ(Hv)ᵢ, Hv by differentiating gᵀv, g the
// gradient computed with its graph.
func hessianTraces(ctx context.Context, m *vit.Model, batches []*ts.Tensor, layers []searchLayer, samples int) ([]float64, error) {
	if len(batches) == 0 {
		return nil, fmt.Errorf("mixed precision: no calibration images")
	}
	if samples < 1 {
		return nil, fmt.Errorf("mixed precision: %d Hutchinson samples", samples)
	}
	var params []*ts.Tensor
	var owner []int // layer of each parameter
	for i, l := range layers {
		for _, n := range l.weights {
			w, err := m.VS.Root().Get(n)
			if err != nil {
				return nil, fmt.Errorf("mixed precision: %w", err)
			}
			if !w.MustRequiresGrad() {
				return nil, fmt.Errorf("mixed precision: parameter %s does not require a gradient", n)
			}
			params = append(params, w)
			owner = append(owner, i)
		}
	}
	sums := make([]float64, len(layers))
	var images int64
	for _, x := range batches {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := x.MustSize()[0]
		var vhv []float64
		var err error
		torchrt.WithGrad(func() { vhv, err = batchTraces(x, m, params, samples) })
		if err != nil {
			return nil, err
		}
		for k, v := range vhv {
			sums[owner[k]] += float64(n) * v
		}
		images += n
	}
	out := make([]float64, len(layers))
	for i, l := range layers {
		out[i] = sums[i] / float64(images) / float64(samples) / float64(l.numel)
	}
	return out, nil
}

// batchTraces returns, for each parameter, the sum over samples of
// vᵀ(Hv) restricted to it, on one batch (mean loss over its images).
func batchTraces(x *ts.Tensor, m *vit.Model, params []*ts.Tensor, samples int) (out []float64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("mixed precision: Hessian-vector product: %v", r)
		}
	}()
	logits := m.Forward(x)
	defer logits.MustDrop()
	var labels *ts.Tensor
	torchrt.NoGrad(func() { labels = logits.MustArgmax([]int64{-1}, false, false) })
	defer labels.MustDrop()
	loss := logits.MustCrossEntropyLoss(labels, ts.None, 1, -100, 0, false)
	defer loss.MustDrop()
	grads, err := torchrt.Grad(loss, params, true)
	if err != nil {
		return nil, fmt.Errorf("mixed precision: gradient: %w", err)
	}
	defer func() {
		for _, g := range grads {
			g.MustDrop()
		}
	}()
	out = make([]float64, len(params))
	dev := x.MustDevice()
	for s := range samples {
		// The same vectors for every batch: the batches average one Hv.
		rng := rand.New(rand.NewPCG(hutchinsonSeed, uint64(s)))
		vs := make([]*ts.Tensor, len(params))
		var gv *ts.Tensor
		for k, w := range params {
			v := make([]float32, w.Numel())
			for i := range v {
				v[i] = float32(2*rng.IntN(2) - 1)
			}
			vs[k] = ts.MustOfSlice(v).MustView(w.MustSize(), true).MustTo(dev, true)
			term := grads[k].MustMul(vs[k], false).MustSum(w.DType(), true)
			if gv == nil {
				gv = term
			} else {
				gv = gv.MustAdd(term, true)
				term.MustDrop()
			}
		}
		hv, err := torchrt.Grad(gv, params, false)
		gv.MustDrop()
		if err != nil {
			for _, v := range vs {
				v.MustDrop()
			}
			return nil, fmt.Errorf("mixed precision: Hessian-vector product: %w", err)
		}
		for k := range params {
			d := hv[k].MustMul(vs[k], true).MustSum(params[k].DType(), true)
			out[k] += d.Float64Values()[0]
			d.MustDrop()
			vs[k].MustDrop()
		}
	}
	return out, nil
}

// state is a partial assignment of the search.
type state struct {
	cost   int64
	sens   float64
	choice []int // index into the choices, per layer so far
}

// chooseBits returns for each layer i the index j of its choice that
// minimises Σ sens[i][j] subject to Σ cost[i][j] <= limit, exactly: a
// dynamic program over the layers that keeps, for every reachable cost,
// the least sensitivity (a Pareto frontier of cost against sensitivity,
// dropping states that cost more and are no less sensitive than another).
// Ties go to the lower cost, then to the larger choice indices of the
// earlier layers. It fails when even the cheapest choices exceed limit.
func chooseBits(sens [][]float64, cost [][]int64, limit int64) ([]int, error) {
	front := []state{{}}
	for i := range sens {
		var next []state
		for _, s := range front {
			for j := range sens[i] {
				c := s.cost + cost[i][j]
				if c > limit {
					continue
				}
				ch := make([]int, len(s.choice)+1)
				copy(ch, s.choice)
				ch[len(s.choice)] = j
				next = append(next, state{c, s.sens + sens[i][j], ch})
			}
		}
		if len(next) == 0 {
			return nil, fmt.Errorf("no assignment within the budget %d (layer %d)", limit, i)
		}
		slices.SortFunc(next, func(a, b state) int {
			return cmp.Or(cmp.Compare(a.cost, b.cost), cmp.Compare(a.sens, b.sens), -slices.Compare(a.choice, b.choice))
		})
		front = front[:0]
		best := math.Inf(1)
		for _, s := range next {
			if s.sens < best {
				front = append(front, s)
				best = s.sens
			}
		}
		if len(front) > maxFrontier {
			return nil, fmt.Errorf("the search has %d states (at most %d)", len(front), maxFrontier)
		}
	}
	// Sensitivity strictly falls along the frontier: the last is least.
	return front[len(front)-1].choice, nil
}

// mixedSummary lists the widths chosen, e.g. "4: 3 layers, 8: 5 layers".
func mixedSummary(r *vit.MixedPrecision) string {
	n := map[int]int{}
	for _, l := range r.Layers {
		n[l.Bits]++
	}
	var parts []string
	for _, b := range r.Choices {
		if n[b] > 0 {
			parts = append(parts, fmt.Sprintf("%d bits: %d layers", b, n[b]))
		}
	}
	return fmt.Sprintf("%s; cost %d of %d", strings.Join(parts, ", "), r.Cost, r.Limit)
}
