// Package quantize is the "quantize" technique: post-training quantization
// of a ViT's weights and activations at 2 to 8 bits (per tensor or per
// channel, symmetric or affine; calibrated by min/max, its moving
// average, a percentile or a squared-error search), three ViT-specific
// quantizers from the literature (FQ-ViT's log2 quantizer of attention
// maps, PTQ4ViT's Hessian-guided interval search with twin uniform
// quantizers of softmax and GELU output (QuantizePTQ4ViT), RepQ-ViT's:
// see below),
// quantization-aware fine-tuning with a straight-through estimator or
// with learned step sizes (LSQ, Esser et al., ICLR 2020; qat = "lsq"), and
// real float16/bfloat16 casts.
//
// Weights are rounded to their grids to nearest, or (rounding = "gptq")
// by GPTQ (Frantar et al., ICLR 2023), which rounds each linear layer's
// columns in turn and spreads their errors over the columns not yet
// rounded, weighted by the layer's inputs on the calibration images; the
// grids stay the calibrator's. Bias correction (bias_correction = true,
// Nagel et al. 2019) then adds to each linear layer's bias the mean output
// error of its rounding on those images. Both go through the model block
// by block, so that a block's inputs come from the already rounded ones
// before it.
//
// RepQ-ViT (method "repq-vit", Li et al., ICCV 2023) runs the steps of the
// authors' code (quant/quantizer.py, test_quant.py): the inputs of qkv and
// fc1 (LayerNorm outputs) are calibrated per channel, then the per-tensor
// scale s = mean(s_c) and zero point round(mean(z_c)) are made exact by
// folding the channel factors into the LayerNorm and the linear layer
// after it (Reparameterize); the weights, calibrated per output channel
// after that folding, and the other uniform activations per tensor; the
// attention map gets the log-sqrt(2) quantizer (vit.QuantLogSqrt2) with
// its step searched among percentiles. Unless the stage names a
// calibrator, uniform grids use RepQ-ViT's percentile search ("repq",
// affine grids whatever symmetric says: see repq.go). Two differences from
// their code: each activation is calibrated on the float activations
// before it (theirs sees the quantized ones upstream), and the shared zero
// point is rounded (theirs keeps the mean, which an integer grid cannot).
//
// Its parameters are techniques.QuantizeConfig. Options, Plan, Quantize,
// Observer and the calibrators (MinMax, Percentile, EMA, MSERange,
// QParams) are the algorithm, which sees plain arguments; the entry
// registered with package compress from init joins the two.
//
// Execution: harness/vit executes each quantizer from its data (a
// vit.QuantSpec), so a saved quantized model reloads exactly. The model
// this package returns is simulated (fake-quantized in float32); package
// harness/qexec executes its integer layers on int8 kernels where the
// machine has them, and the runner measures both. The bf16 cast executes
// for real on the CPU; fp16
// matrix products, convolutions, LayerNorm, softmax and GELU have no CPU
// kernels in libtorch 1.13, so an fp16 stage fails there with an error
// that says so (it runs on CUDA).
package quantize

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/techniques"
	"github.com/vitbench/vitbench/techniques/compress"
)

// options translates a stage's parameters into the algorithm's terms.
func options(c *techniques.QuantizeConfig) Options {
	o := Options{
		WeightBits:      c.WeightBits,
		ActBits:         c.ActBits,
		AttnBits:        c.AttnBits,
		EdgeBits:        techniques.EdgeBits,
		Groups:          slices.Clone(c.Layers),
		PerChannel:      c.Granularity == "per-channel",
		WeightSymmetric: c.Symmetric,
		ActSymmetric:    c.ActSymmetric,
		Calibrator:      c.Calibrator,
		Percentile:      c.Percentile,
		EMA:             c.EMA,
		Method:          c.Method,
		Rounding:        c.Rounding,
		BiasCorrection:  c.BiasCorrection,
		Coverage:        c.Coverage,
	}
	if o.Calibrator == "" {
		o.Calibrator = techniques.MethodCalibrator(c.Method) // a Config that skipped Validate
	}
	if o.WeightBits > 8 {
		o.WeightBits = 0
	}
	if c.OverflowFix {
		o.WeightBits, o.EdgeBits = 7, 7
	}
	return o
}

func init() {
	compress.Register(techniques.Quantize, apply)
}

// apply is the registered entry: it translates the Config and runs the
// algorithm on m in place.
func apply(ctx context.Context, c *techniques.QuantizeConfig, m *vit.Model, env compress.Env) (*vit.Model, error) {
	if m.Cfg.Quant != nil {
		return nil, fmt.Errorf("quantize: the model is already quantized (%s); quantize once, last", m.Cfg.Quant.Precision)
	}
	if c.Precision != techniques.PrecisionInt {
		if err := m.Cast(c.Precision); err != nil {
			return nil, fmt.Errorf("quantize: %w", err)
		}
		env.Logf("quantize: cast to %s (executed)", c.Precision)
		return m, nil
	}
	plan, err := NewPlan(m, options(c))
	if err != nil {
		return nil, err
	}
	batches, err := env.Calibration(ctx, c.CalibImages)
	defer func() {
		for _, b := range batches {
			b.MustDrop()
		}
	}()
	if err != nil {
		return nil, fmt.Errorf("quantize: calibration data: %w", err)
	}
	var mixed *vit.MixedPrecision
	if c.MixedPrecision {
		if mixed, err = AssignBits(ctx, m, batches, plan, mixedOptions(c)); err != nil {
			return nil, err
		}
		env.Logf("quantize: mixed precision (%s, %s budget at %d bits): %s", mixed.Method, mixed.Budget, mixed.BudgetBits, mixedSummary(mixed))
	}
	var shadows map[string]*ts.Tensor
	if c.Epochs > 0 {
		shadows = FloatWeights(m, plan)
	}
	state, err := Quantize(ctx, m, batches, plan)
	if err != nil {
		dropAll(shadows)
		return nil, err
	}
	state.Mixed = mixed // m.Cfg.Quant is state: the record is saved with the model
	env.Logf("quantize: %d weights, %d activation quantizers (%s, %s)", len(state.Weights), len(state.Acts), c.Method, c.Calibrator)
	if c.Calibrator == techniques.CalibRepQ && (c.Symmetric || c.ActSymmetric) {
		env.Logf("quantize: calibrator repq chooses affine grids (RepQ-ViT's); symmetric and act_symmetric are not used")
	}
	if c.Rounding == techniques.RoundGPTQ {
		env.Logf("quantize: gptq rounding of the dense linear layers (the patch embedding and factored layers round to nearest)")
	}
	if nb := BiasFree(m, plan); len(nb) > 0 {
		env.Logf("quantize: bias correction skipped for %d layers without a bias: %s", len(nb), strings.Join(nb, ", "))
	}
	if c.Epochs > 0 {
		if err := quantizationAware(ctx, m, shadows, env, c.FineTune, c.QAT); err != nil {
			return nil, fmt.Errorf("quantize: QAT: %w", err)
		}
	}
	m.Cfg.Executed = vit.ExecutedSimulated
	return m, nil
}

// quantizationAware runs QAT (qat "ste") or LSQ (qat "lsq") as the
// stage's fine-tune block asks; it frees shadows.
func quantizationAware(ctx context.Context, m *vit.Model, shadows map[string]*ts.Tensor, env compress.Env, block techniques.FineTune, qat string) error {
	tuner, err := compress.NewFineTuner(ctx, env, block)
	if err != nil {
		dropAll(shadows)
		return err
	}
	defer tuner.Close()
	t, err := tuner.Training(m, block.Epochs)
	if err != nil {
		dropAll(shadows)
		return err
	}
	train := func(t compress.Training) error { return env.Train(ctx, m, t) }
	if qat == techniques.QATLSQ {
		// The step sizes learn at the weights' rate, as in the paper.
		lr := t.LR
		if lr <= 0 {
			lr = techniques.DefaultQATLR
		}
		return LSQ(ctx, m, shadows, train, t, lr)
	}
	return QAT(ctx, m, shadows, train, t)
}

func dropAll(ts map[string]*ts.Tensor) {
	for _, t := range ts {
		t.MustDrop()
	}
}
