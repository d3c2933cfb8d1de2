package quantize

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"

	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques"
)

// Options are the quantization algorithm's parameters, in the
// algorithm's own terms (the technique's Config translates to them).
type Options struct {
	WeightBits int // 0: weights stay float32
	ActBits    int // 0: activations stay float32
	AttnBits   int // bits of the attention map; 0 means ActBits
	// EdgeBits quantize the patch embedding and the head when Groups does
	// not list them (the PTQ literature keeps them at 8 bits); 0 leaves
	// them in float32.
	EdgeBits        int
	Groups          []string
	PerChannel      bool // weights: one scale per output channel
	WeightSymmetric bool
	ActSymmetric    bool
	Calibrator      string
	Percentile      float64
	EMA             float64
	Method          string
	// Rounding of the weights to their grids: techniques.RoundNearest
	// (or "") or techniques.RoundGPTQ.
	Rounding string
	// BiasCorrection corrects the biases of the quantized linear layers
	// for the mean output error of their weights' rounding.
	BiasCorrection bool
	// Coverage is techniques.CoverageLinear (or ""), CoverageMatmul or
	// CoverageFull: the activations quantized besides the linear inputs.
	Coverage string
}

// Plan is what a quantization does to one model: a rule per quantized
// weight (by parameter name) and per activation site (by key), and the
// post-LayerNorm sites RepQ-ViT reparameterizes.
type Plan struct {
	Weights map[string]Rule
	Acts    map[string]Rule
	RepQ    []string // activation keys (qkv_in, fc1_in sites)
	// Rounding and BiasCorrection are Options'.
	Rounding       string
	BiasCorrection bool
	// Method is Options': techniques.MethodPTQ4ViT calibrates by
	// QuantizePTQ4ViT.
	Method string
}

// corrected reports whether the weights need the calibration images'
// layer inputs to be rounded.
func (p *Plan) corrected() bool {
	return p.Rounding == techniques.RoundGPTQ || p.BiasCorrection
}

type groupInfo struct {
	site   vit.Site
	linear func(b *vit.Block) *vit.Linear
}

var blockGroups = map[string]groupInfo{
	techniques.GroupQKV:  {vit.SiteQKVIn, func(b *vit.Block) *vit.Linear { return b.QKV }},
	techniques.GroupProj: {vit.SiteProjIn, func(b *vit.Block) *vit.Linear { return b.Proj }},
	techniques.GroupFC1:  {vit.SiteFC1In, func(b *vit.Block) *vit.Linear { return b.FC1 }},
	techniques.GroupFC2:  {vit.SiteFC2In, func(b *vit.Block) *vit.Linear { return b.FC2 }},
}

// weightNames are a linear layer's matrices in the VarStore.
func weightNames(l *vit.Linear) []string {
	if l.Rank > 0 {
		return []string{l.Name + ".0.weight", l.Name + ".1.weight"}
	}
	return []string{l.Name + ".weight"}
}

// NewPlan decides what to quantize in m.
func NewPlan(m *vit.Model, o Options) (*Plan, error) {
	p := &Plan{Weights: map[string]Rule{}, Acts: map[string]Rule{}, Rounding: o.Rounding, BiasCorrection: o.BiasCorrection, Method: o.Method}
	listed := map[string]bool{}
	for _, g := range o.Groups {
		listed[g] = true
	}
	if listed[techniques.GroupNorm] {
		return nil, errNorm
	}
	attnBits := o.AttnBits
	if attnBits == 0 {
		attnBits = o.ActBits
	}
	wrule := func(bits int) Rule {
		cal := o.Calibrator
		if cal == techniques.CalibEMA {
			cal = techniques.CalibMinMax // one tensor: the moving average is its range
		}
		axis := -1
		if o.PerChannel {
			axis = 0
		}
		return Rule{Shape: ShapeUniform, Bits: bits, Symmetric: o.WeightSymmetric, Calibrator: cal,
			Percentile: o.Percentile, EMA: o.EMA, Axis: axis}
	}
	arule := func(bits int) Rule {
		return Rule{Shape: ShapeUniform, Bits: bits, Symmetric: o.ActSymmetric, Calibrator: o.Calibrator,
			Percentile: o.Percentile, EMA: o.EMA, Axis: -1}
	}
	// bits of a group: its own when listed, EdgeBits for the unlisted
	// patch embedding and head, none otherwise.
	bits := func(group string, b int) int {
		if b == 0 {
			return 0
		}
		if listed[group] {
			return b
		}
		if group == techniques.GroupPatchEmbed || group == techniques.GroupHead {
			return o.EdgeBits
		}
		return 0
	}
	if wb := bits(techniques.GroupPatchEmbed, o.WeightBits); wb > 0 {
		p.Weights["patch_embed.proj.weight"] = wrule(wb)
	}
	if ab := bits(techniques.GroupPatchEmbed, o.ActBits); ab > 0 {
		p.Acts[vit.ActInput] = arule(ab)
	}
	heads := []*vit.Linear{m.Head}
	headKeys := []string{vit.ActHead}
	if m.HeadDist != nil {
		heads = append(heads, m.HeadDist)
		headKeys = append(headKeys, vit.ActHeadDist)
	}
	for i, h := range heads {
		if wb := bits(techniques.GroupHead, o.WeightBits); wb > 0 {
			for _, n := range weightNames(h) {
				p.Weights[n] = wrule(wb)
			}
		}
		if ab := bits(techniques.GroupHead, o.ActBits); ab > 0 {
			p.Acts[headKeys[i]] = arule(ab)
		}
	}
	for _, b := range m.Blocks {
		for g, info := range blockGroups {
			if !listed[g] {
				continue
			}
			if o.WeightBits > 0 {
				for _, n := range weightNames(info.linear(b)) {
					p.Weights[n] = wrule(o.WeightBits)
				}
			}
			if o.ActBits == 0 {
				continue
			}
			key := vit.ActKey(b.Index, info.site)
			r := arule(o.ActBits)
			switch {
			case g == techniques.GroupFC2 && o.Method == techniques.MethodPTQ4ViT:
				r = Rule{Shape: ShapeTwinGELU, Bits: o.ActBits, Axis: -1}
			case (g == techniques.GroupQKV || g == techniques.GroupFC1) && o.Method == techniques.MethodRepQViT:
				p.RepQ = append(p.RepQ, key)
			}
			p.Acts[key] = r
		}
		matmul := o.ActBits > 0 && (o.Coverage == techniques.CoverageMatmul || o.Coverage == techniques.CoverageFull)
		full := o.ActBits > 0 && o.Coverage == techniques.CoverageFull
		if matmul {
			for _, s := range []vit.Site{vit.SiteQ, vit.SiteK, vit.SiteV} {
				p.Acts[vit.ActKey(b.Index, s)] = arule(o.ActBits)
			}
		}
		if full {
			p.Acts[vit.ActKey(b.Index, vit.SiteAttnLogits)] = arule(o.ActBits)
			for _, s := range []vit.Site{vit.SiteNorm1In, vit.SiteNorm2In} {
				p.Acts[vit.ActKey(b.Index, s)] = normRule(o)
			}
		}
		if (listed[techniques.GroupAttnMap] || matmul) && o.ActBits > 0 {
			key := vit.ActKey(b.Index, vit.SiteAttnMap)
			switch o.Method {
			case techniques.MethodFQViT:
				p.Acts[key] = Rule{Shape: ShapeLog2, Bits: attnBits, Axis: -1}
				if full { // the logits are quantized: Log-Int-Softmax
					p.Acts[key] = Rule{Shape: ShapeLogIntSoftmax, Bits: attnBits, Axis: -1}
				}
			case techniques.MethodRepQViT:
				p.Acts[key] = Rule{Shape: ShapeLogSqrt2, Bits: attnBits, Axis: -1}
			case techniques.MethodPTQ4ViT:
				p.Acts[key] = Rule{Shape: ShapeTwinSoftmax, Bits: attnBits, Axis: -1}
			default:
				// Probabilities are non-negative: an affine grid from 0.
				r := arule(attnBits)
				r.Symmetric = false
				p.Acts[key] = r
			}
		}
	}
	if o.ActBits > 0 && o.Coverage == techniques.CoverageFull {
		p.Acts[vit.ActNorm] = normRule(o)
	}
	sort.Strings(p.RepQ)
	if len(p.Weights)+len(p.Acts) == 0 {
		return nil, fmt.Errorf("nothing to quantize: no weight or activation of the layers %v gets a bit width", o.Groups)
	}
	return p, nil
}

// normRule is the rule of a LayerNorm input (coverage full): a uniform
// per-tensor grid with the stage's calibrator, or FQ-ViT's Power-of-Two
// Factor.
func normRule(o Options) Rule {
	if o.Method == techniques.MethodFQViT {
		return Rule{Shape: ShapePTF, Bits: o.ActBits, PerChannelLast: true}
	}
	return Rule{Shape: ShapeUniform, Bits: o.ActBits, Symmetric: o.ActSymmetric, Calibrator: o.Calibrator,
		Percentile: o.Percentile, EMA: o.EMA, Axis: -1}
}

// errNorm explains why the LayerNorm input cannot be selected.
var errNorm = errors.New(techniques.ErrNoNormSite)

// Quantize quantizes m in place (post-training): RepQ-ViT's
// reparameterization first when asked, then the weights, rounded to their
// grids (to nearest, or by GPTQ, with their biases corrected when p
// asks: see roundCorrected), then the activation quantizers calibrated on
// batches with the quantized weights in place. It records the result
// with m.SetQuant and returns it. Method ptq4vit calibrates by
// QuantizePTQ4ViT instead. The batches are not freed.
func Quantize(ctx context.Context, m *vit.Model, batches []*ts.Tensor, p *Plan) (*vit.QuantState, error) {
	if p.Method == techniques.MethodPTQ4ViT {
		return QuantizePTQ4ViT(ctx, m, batches, p, DefaultHessianSearch)
	}
	state := &vit.QuantState{Precision: vit.PrecisionInt, Weights: map[string]*vit.QuantSpec{}, Acts: map[string]*vit.QuantSpec{}}
	fixed := map[string]*vit.QuantSpec{}
	if len(p.RepQ) > 0 {
		var err error
		fixed, err = Reparameterize(ctx, m, batches, p)
		if err != nil {
			return nil, err
		}
	}
	vars := m.VS.Variables()
	for _, name := range slices.Sorted(maps.Keys(p.Weights)) {
		if _, ok := vars[name]; !ok {
			return nil, fmt.Errorf("quantize: the model has no parameter %s", name)
		}
		w, _ := m.VS.Root().Get(name)
		var spec *vit.QuantSpec
		var err error
		torchrt.NoGrad(func() {
			spec, err = CalibrateTensor(w, p.Weights[name])
			// Corrected rounding needs the layers' inputs: it rounds
			// all weights below, on the grids calibrated here.
			if err == nil && !p.corrected() {
				q := spec.Apply(w)
				w.Copy_(q)
				q.MustDrop()
			}
		})
		if err != nil {
			return nil, fmt.Errorf("quantize weight %s: %w", name, err)
		}
		state.Weights[name] = spec
	}
	if p.corrected() {
		if err := roundCorrected(ctx, m, batches, p, state.Weights); err != nil {
			return nil, err
		}
	}
	rules := map[string]Rule{}
	for key, r := range p.Acts {
		if s, ok := fixed[key]; ok {
			state.Acts[key] = s
			continue
		}
		rules[key] = r
	}
	specs, err := CalibrateActivations(ctx, m, batches, rules)
	if err != nil {
		return nil, err
	}
	for k, s := range specs {
		state.Acts[k] = s
	}
	if err := fillLogIntSoftmax(state.Acts); err != nil {
		return nil, err
	}
	if err := m.SetQuant(state); err != nil {
		return nil, err
	}
	return state, nil
}

// CalibrateActivations runs the batches through m with an Observer at
// every site of rules (after any tap already there), as many passes as
// the rules need, and returns the calibrated quantizers. The model's taps
// are restored.
func CalibrateActivations(ctx context.Context, m *vit.Model, batches []*ts.Tensor, rules map[string]Rule) (map[string]*vit.QuantSpec, error) {
	if len(rules) == 0 {
		return map[string]*vit.QuantSpec{}, nil
	}
	if len(batches) == 0 {
		return nil, fmt.Errorf("calibrate: no calibration images")
	}
	pts := m.TapPoints()
	obs := map[string]*Observer{}
	saved := map[string]vit.Tap{}
	passes := 1
	for key, r := range rules {
		pt, ok := pts[key]
		if !ok {
			return nil, fmt.Errorf("calibrate: the model has no activation site %s", key)
		}
		o := NewObserver(r)
		obs[key] = o
		saved[key] = *pt
		*pt = vit.ChainTap(*pt, o)
		passes = max(passes, o.Passes())
	}
	defer func() {
		for key, t := range saved {
			*pts[key] = t
		}
	}()
	for pass := 0; pass < passes; pass++ {
		if err := forwardAll(ctx, m, batches); err != nil {
			return nil, err
		}
		for _, o := range obs {
			o.Next()
		}
	}
	out := map[string]*vit.QuantSpec{}
	for _, key := range slices.Sorted(maps.Keys(obs)) {
		s, err := obs[key].Spec()
		if err != nil {
			return nil, fmt.Errorf("calibrate %s: %w", key, err)
		}
		out[key] = s
	}
	return out, nil
}

// Reparameterize applies RepQ-ViT's scale reparameterization (Li et al.,
// ICCV 2023) to the post-LayerNorm sites p.RepQ: each is calibrated per
// channel (scales s_c, zero points z_c), then the per-tensor quantizer
// s = mean(s_c), z = round(mean(z_c)) is made exact for it by folding
// r1 = s_c/s and r2 = z_c - z into the LayerNorm before and the linear
// layer after:
//
//	γ' = γ/r1, β' = β/r1 + s·r2,   W' = W·diag(r1), b' = b - W·(s_c·r2)
//
// The float model computes the same function; the per-tensor quantizer of
// the new LayerNorm output rounds to the same codes as the per-channel one
// of the old. It returns the per-tensor quantizers by site. A site whose
// linear layer has no bias to absorb a non-zero shift is calibrated per
// tensor instead (it is left out of the result).
func Reparameterize(ctx context.Context, m *vit.Model, batches []*ts.Tensor, p *Plan) (map[string]*vit.QuantSpec, error) {
	rules := map[string]Rule{}
	for _, key := range p.RepQ {
		r := p.Acts[key]
		r.PerChannelLast = true
		rules[key] = r
	}
	per, err := CalibrateActivations(ctx, m, batches, rules)
	if err != nil {
		return nil, err
	}
	out := map[string]*vit.QuantSpec{}
	for _, b := range m.Blocks {
		for _, site := range []struct {
			s     vit.Site
			gamma *ts.Tensor
			beta  *ts.Tensor
			l     *vit.Linear
		}{{vit.SiteQKVIn, b.Norm1W, b.Norm1B, b.QKV}, {vit.SiteFC1In, b.Norm2W, b.Norm2B, b.FC1}} {
			key := vit.ActKey(b.Index, site.s)
			spec, ok := per[key]
			if !ok {
				continue
			}
			n := len(spec.Scale)
			var sMean, zMean float64
			for i := range spec.Scale {
				sMean += spec.Scale[i]
				zMean += float64(spec.ZeroPoint[i])
			}
			sMean = f32(sMean / float64(n))
			// Any integer z keeps the folding exact; RepQ-ViT's code keeps
			// the mean unrounded, which no integer grid can hold.
			z := min(max(int64(math.RoundToEven(zMean/float64(n))), spec.QMin), spec.QMax)
			r1 := make([]float32, n)
			shift := make([]float32, n) // s·r2, added to β/r1
			corr := make([]float32, n)  // s_c·r2, removed through W
			anyShift := false
			for i := range r1 {
				r2 := float64(spec.ZeroPoint[i] - z)
				r1[i] = float32(spec.Scale[i] / sMean)
				shift[i] = float32(sMean * r2)
				corr[i] = float32(spec.Scale[i] * r2)
				anyShift = anyShift || r2 != 0
			}
			if anyShift && site.l.Bias == nil {
				continue
			}
			torchrt.NoGrad(func() {
				reparam(site.gamma, site.beta, site.l, r1, shift, corr)
			})
			out[key] = &vit.QuantSpec{Kind: vit.QuantUniform, Bits: spec.Bits, Symmetric: spec.Symmetric, Axis: -1,
				Scale: []float64{sMean}, ZeroPoint: []int64{z}, QMin: spec.QMin, QMax: spec.QMax}
		}
	}
	return out, nil
}

// reparam folds the channel factors into a LayerNorm and the linear layer
// reading its output (under no-grad).
func reparam(gamma, beta *ts.Tensor, l *vit.Linear, r1, shift, corr []float32) {
	dev := gamma.MustDevice()
	r := ts.MustOfSlice(r1).MustTo(dev, true)
	sh := ts.MustOfSlice(shift).MustTo(dev, true)
	c := ts.MustOfSlice(corr).MustTo(dev, true)
	defer r.MustDrop()
	defer sh.MustDrop()
	defer c.MustDrop()
	g := gamma.MustDiv(r, false)
	gamma.Copy_(g)
	g.MustDrop()
	bt := beta.MustDiv(r, false).MustAdd(sh, true)
	beta.Copy_(bt)
	bt.MustDrop()
	// b' = b - W·corr, with the old W.
	if l.Bias != nil {
		cv := c.MustUnsqueeze(0, false) // [1, in]
		var wc *ts.Tensor
		if l.Rank > 0 {
			h := ts.MustLinear(cv, l.Down, ts.None)
			wc = ts.MustLinear(h, l.Up, ts.None)
			h.MustDrop()
		} else {
			wc = ts.MustLinear(cv, l.Weight, ts.None)
		}
		cv.MustDrop()
		wc = wc.MustSqueeze(true)
		nb := l.Bias.MustSub(wc, false)
		wc.MustDrop()
		l.Bias.Copy_(nb)
		nb.MustDrop()
	}
	// W' = W·diag(r1): scale the input columns.
	w := l.Weight
	if l.Rank > 0 {
		w = l.Down
	}
	nw := w.MustMul(r, false)
	w.Copy_(nw)
	nw.MustDrop()
}

// forwardAll runs m on every batch without autograd, for the taps it
// carries to observe; it stops when ctx is done.
func forwardAll(ctx context.Context, m *vit.Model, batches []*ts.Tensor) error {
	var err error
	torchrt.NoGrad(func() {
		for _, x := range batches {
			if err = ctx.Err(); err != nil {
				return
			}
			m.Forward(x).MustDrop()
		}
	})
	return err
}
