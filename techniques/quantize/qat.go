package quantize

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques/compress"
)

// FloatWeights copies the weights a plan will quantize, before Quantize
// rounds them: QAT keeps training these float "shadow" weights. The
// caller owns the copies (QAT frees them).
func FloatWeights(m *vit.Model, p *Plan) map[string]*ts.Tensor {
	out := map[string]*ts.Tensor{}
	torchrt.NoGrad(func() {
		for name := range p.Weights {
			if w, err := m.VS.Root().Get(name); err == nil {
				out[name] = clone(w)
			}
		}
	})
	return out
}

// QAT is quantization-aware fine-tuning of a model quantized by Quantize,
// with a straight-through estimator: activations are fake-quantized in
// the forward pass by their taps, whose gradient passes straight through
// inside the clipping range; weights keep a float shadow copy (shadows,
// the pre-quantization values from FloatWeights) while the model's weight
// holds its quantized value. The loss's gradient with respect to the
// quantized weight is the straight-through gradient of the shadow; after
// each optimizer step the step the optimizer took on the quantized weight
// is added to the shadow, which is quantized again into the weight:
//
//	shadow += W - Q(shadow_old);  W = Q(shadow)
//
// Weight scales stay those of calibration. fineTune runs the training
// (compress.Env.FineTune) with ft, whose AfterStep QAT sets. shadows
// are freed.
func QAT(ctx context.Context, m *vit.Model, shadows map[string]*ts.Tensor, fineTune func(compress.Training) error, ft compress.Training) error {
	s := m.Cfg.Quant
	if s == nil || s.Precision != vit.PrecisionInt {
		dropAll(shadows)
		return fmt.Errorf("QAT needs an integer-quantized model")
	}
	type weight struct {
		w, shadow, last *ts.Tensor
		spec            *vit.QuantSpec
	}
	var ws []*weight
	defer func() {
		for _, x := range ws {
			x.shadow.MustDrop()
			x.last.MustDrop()
		}
	}()
	for _, name := range slices.Sorted(maps.Keys(shadows)) {
		spec, ok := s.Weights[name]
		w, err := m.VS.Root().Get(name)
		if !ok || err != nil {
			shadows[name].MustDrop()
			continue
		}
		var last *ts.Tensor
		torchrt.NoGrad(func() { last = clone(w) })
		ws = append(ws, &weight{w: w, shadow: shadows[name], last: last, spec: spec})
	}
	prev := ft.AfterStep
	ft.AfterStep = func() {
		for _, x := range ws {
			step := x.w.MustSub(x.last, false)
			x.shadow.MustAdd_(step)
			step.MustDrop()
			q := x.spec.Apply(x.shadow)
			x.w.Copy_(q)
			x.last.MustDrop()
			x.last = q
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

// clone copies t into a new tensor that does not require grad (call under
// no-grad).
func clone(t *ts.Tensor) *ts.Tensor {
	z := t.MustZerosLike(false)
	z.Copy_(t)
	return z
}
