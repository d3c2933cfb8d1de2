package quantize

import (
	"fmt"

	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/techniques"
)

// Quantizer shapes a Rule can ask for.
const (
	ShapeUniform     = "uniform"      // affine grid, calibrated
	ShapeLog2        = "log2"         // FQ-ViT's log2 grid for softmax output
	ShapeTwinSoftmax = "twin-softmax" // PTQ4ViT's twin uniform grid for softmax output
	ShapeTwinGELU    = "twin-gelu"    // PTQ4ViT's twin uniform grid for GELU output
	ShapeLogSqrt2    = "log-sqrt2"    // RepQ-ViT's log-sqrt(2) grid for softmax output, step searched
)

// Rule says how to quantize one tensor (a weight or the activation at one
// site) and how to calibrate it.
type Rule struct {
	Shape      string
	Bits       int
	Symmetric  bool
	Calibrator string  // minmax, ema, percentile, mse/omse, repq (uniform shape)
	Percentile float64 // percentile calibrator, in (50, 100]
	EMA        float64 // ema calibrator's averaging constant
	Steps      int     // grid of the mse search and the twin-gelu search
	// Axis is the channel axis for per-channel quantization of a
	// weight (0: output channels), or -1 for one scale per tensor.
	Axis int
	// PerChannelLast calibrates an activation per channel of its last
	// dimension (RepQ-ViT's post-LayerNorm activations).
	PerChannelLast bool
}

// twoPass reports whether calibration needs a second pass over the data
// (an error search over candidates fixed by the first pass).
func (r Rule) twoPass() bool {
	switch r.Shape {
	case ShapeTwinSoftmax, ShapeTwinGELU:
		return true
	case ShapeUniform:
		return r.Calibrator == techniques.CalibMSE || r.Calibrator == techniques.CalibOMSE ||
			r.Calibrator == techniques.CalibRepQ
	case ShapeLogSqrt2:
		return true
	}
	return false
}

// Observer collects the statistics of one tensor over calibration batches
// and turns them into a quantizer. As a vit.Tap it observes the activation
// and passes it on unchanged. Call Observe (or use it as a tap) over every
// batch, then Next, and when Passes says two, over every batch again; then
// Spec.
type Observer struct {
	Rule Rule
	pass int

	// first pass
	lo, hi []float64 // minmax
	ema    EMA
	pctLo  []float64 // percentile: element-weighted sums of per-batch values
	pctHi  []float64
	pctN   float64
	seen   bool
	last   *ts.Tensor // PTF: the last batch's rows

	// second pass
	cands []*vit.QuantSpec
	errs  [][]float64 // [candidate][row]
	rows  int

	repq *repqSearch // RepQ-ViT's searches (repq.go)
}

// NewObserver returns an observer for r.
func NewObserver(r Rule) *Observer {
	if r.Steps <= 0 {
		r.Steps = 100
	}
	if r.Shape == ShapeLogSqrt2 {
		r.Axis, r.PerChannelLast = -1, false // one step for the whole tensor
	}
	o := &Observer{Rule: r}
	o.ema.C = r.EMA
	if r.Shape == ShapeLogSqrt2 || r.Shape == ShapeUniform && r.Calibrator == techniques.CalibRepQ {
		o.repq = newRepQSearch(r)
	}
	return o
}

// Passes is 1 or 2: how many times the calibration data must be seen.
func (o *Observer) Passes() int {
	if o.Rule.twoPass() {
		return 2
	}
	return 1
}

// Tap implements vit.Tap: it observes x and returns it unchanged.
func (o *Observer) Tap(x *ts.Tensor) *ts.Tensor {
	o.Observe(x)
	return x
}

func (o *Observer) rowsOf(x *ts.Tensor) *ts.Tensor {
	if o.Rule.PerChannelLast {
		return Rows(x, len(x.MustSize())-1)
	}
	return Rows(x, o.Rule.Axis)
}

// Observe folds one tensor (a batch of an activation, or a weight) in.
func (o *Observer) Observe(x *ts.Tensor) {
	if o.Rule.Shape == ShapeLog2 || o.Rule.Shape == ShapeLogIntSoftmax || o.pass >= o.Passes() {
		o.seen = true
		return
	}
	r := o.rowsOf(x)
	defer r.MustDrop()
	if o.Rule.Shape == ShapePTF { // PTF's factors are searched on the last batch
		if o.last != nil {
			o.last.MustDrop()
		}
		o.last = r.MustShallowClone()
	}
	switch {
	case o.repq != nil && o.pass == 0:
		o.repq.first(r)
	case o.repq != nil:
		o.repq.second(r)
	case o.pass == 0:
		o.first(r)
	default:
		o.second(r)
	}
	o.seen = true
}

func (o *Observer) first(r *ts.Tensor) {
	rule := o.Rule
	if rule.Shape == ShapeTwinSoftmax {
		return // the split search needs no first-pass statistics
	}
	lo, hi := MinMax(r)
	if o.lo == nil {
		o.lo, o.hi = lo, hi
	} else {
		for i := range lo {
			o.lo[i], o.hi[i] = min(o.lo[i], lo[i]), max(o.hi[i], hi[i])
		}
	}
	if rule.Shape != ShapeUniform {
		return
	}
	switch rule.Calibrator {
	case techniques.CalibEMA:
		o.ema.Update(lo, hi)
	case techniques.CalibPercentile:
		pl, ph := PercentileRange(r, rule.Percentile, rule.Symmetric)
		n := float64(r.MustSize()[1])
		if o.pctLo == nil {
			o.pctLo, o.pctHi = make([]float64, len(pl)), make([]float64, len(ph))
		}
		for i := range pl {
			o.pctLo[i] += n * pl[i]
			o.pctHi[i] += n * ph[i]
		}
		o.pctN += n
	}
}

// Next ends a pass.
func (o *Observer) Next() {
	switch {
	case o.pass == 0 && o.repq != nil:
		o.repq.next()
	case o.pass == 0 && o.Rule.twoPass():
		o.cands = o.candidates()
	}
	o.pass++
}

// candidates lists the quantizers the second pass compares.
func (o *Observer) candidates() []*vit.QuantSpec {
	rule := o.Rule
	var out []*vit.QuantSpec
	switch rule.Shape {
	case ShapeTwinSoftmax:
		for _, s := range SoftmaxSplits() {
			out = append(out, TwinSoftmaxSpec(rule.Bits, s))
		}
	case ShapeTwinGELU:
		if o.hi == nil {
			return nil
		}
		for _, a := range Alphas(rule.Steps) {
			out = append(out, TwinGELUSpec(rule.Bits, a*o.hi[0]))
		}
	case ShapeUniform:
		if o.lo == nil {
			return nil
		}
		for _, a := range Alphas(rule.Steps) {
			l, h := scaled(o.lo, o.hi, a)
			out = append(out, QParams(l, h, rule.Bits, rule.Symmetric, rowsAxis(len(l))))
		}
	}
	return out
}

func (o *Observer) second(r *ts.Tensor) {
	if o.errs == nil {
		o.errs = make([][]float64, len(o.cands))
	}
	for k, c := range o.cands {
		e := SquaredError(r, c)
		if o.errs[k] == nil {
			o.errs[k] = e
			continue
		}
		for i := range e {
			o.errs[k][i] += e[i]
		}
	}
}

// Spec returns the calibrated quantizer. A per-channel activation rule
// (PerChannelLast) gives one scale per channel on axis 0 of its rows: the
// caller folds those into a per-tensor quantizer (RepQ-ViT).
func (o *Observer) Spec() (*vit.QuantSpec, error) {
	rule := o.Rule
	if !o.seen {
		return nil, fmt.Errorf("no data observed")
	}
	if o.repq != nil {
		axis := rule.Axis
		if rule.PerChannelLast {
			axis = 0 // rows; the caller re-labels it
		}
		return o.repq.spec(axis, rule.PerChannelLast)
	}
	switch rule.Shape {
	case ShapeLog2:
		return Log2Spec(rule.Bits), nil
	case ShapeLogIntSoftmax:
		return &vit.QuantSpec{Kind: vit.QuantLogIntSoftmax, Bits: rule.Bits, Axis: -1}, nil
	case ShapePTF:
		if o.last != nil {
			defer func() { o.last.MustDrop(); o.last = nil }()
		}
		return PTFSpec(o.lo, o.hi, o.last, rule.Bits)
	case ShapeTwinSoftmax, ShapeTwinGELU:
		if o.errs == nil {
			return nil, fmt.Errorf("%s calibration needs a second pass", rule.Shape)
		}
		best := 0
		for k := 1; k < len(o.errs); k++ {
			if o.errs[k][0] < o.errs[best][0] {
				best = k
			}
		}
		return o.cands[best], nil
	case ShapeUniform:
	default:
		return nil, fmt.Errorf("unknown quantizer shape %q", rule.Shape)
	}
	axis := rule.Axis
	if rule.PerChannelLast {
		axis = 0 // rows; the caller re-labels it
	}
	var lo, hi []float64
	switch rule.Calibrator {
	case techniques.CalibMinMax:
		lo, hi = o.lo, o.hi
	case techniques.CalibEMA:
		lo, hi = o.ema.Lo, o.ema.Hi
	case techniques.CalibPercentile:
		lo, hi = make([]float64, len(o.pctLo)), make([]float64, len(o.pctHi))
		for i := range lo {
			lo[i], hi[i] = o.pctLo[i]/o.pctN, o.pctHi[i]/o.pctN
		}
	case techniques.CalibMSE, techniques.CalibOMSE:
		if o.errs == nil {
			return nil, fmt.Errorf("%s calibration needs a second pass", rule.Calibrator)
		}
		alphas := Alphas(rule.Steps)
		lo, hi = clipped(o.lo, o.hi, BestClip(o.errs, alphas))
	default:
		return nil, fmt.Errorf("unknown calibrator %q", rule.Calibrator)
	}
	if len(lo) == 1 && !rule.PerChannelLast && rule.Axis < 0 {
		axis = -1
	}
	return QParams(lo, hi, rule.Bits, rule.Symmetric, axis), nil
}

// CalibrateTensor calibrates a quantizer for one tensor seen once (a
// weight), running the second pass when the rule needs it.
func CalibrateTensor(x *ts.Tensor, r Rule) (*vit.QuantSpec, error) {
	o := NewObserver(r)
	for p := 0; p < o.Passes(); p++ {
		o.Observe(x)
		o.Next()
	}
	return o.Spec()
}
