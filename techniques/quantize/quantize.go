// Package quantize is the "quantize" technique: post-training quantization
// of a ViT's weights and activations at 2 to 8 bits (per tensor or per
// channel, symmetric or affine; calibrated by min/max, its moving
// average, a percentile or a squared-error search), three ViT-specific
// quantizers from the literature (FQ-ViT's log2 quantizer of attention
// maps, PTQ4ViT's twin uniform quantizers of softmax and GELU output,
// RepQ-ViT's reparameterization of post-LayerNorm scales),
// quantization-aware fine-tuning with a straight-through estimator, and
// real float16/bfloat16 casts.
//
// It has the three layers of techniques (see package techniques): Config
// holds a stage's parameters; Options, Plan, Quantize, Observer and the
// calibrators (MinMax, Percentile, EMA, MSERange, QParams) are the
// algorithm, which sees plain arguments; the entry registered from init
// joins the two.
//
// Execution: harness/vit executes each quantizer from its data (a
// vit.QuantSpec), so a saved quantized model reloads exactly. Integer
// quantization is simulated (fake-quantized in float32: the model is
// marked "simulated" and its latency is the float graph's); libtorch 1.13
// as Debian builds it has no FBGEMM, and its quantized linear kernels
// (qnnpack, onednn) are reachable only through torch.ops.quantized, which
// gotch does not wrap. The bf16 cast executes for real on the CPU; fp16
// matrix products, convolutions, LayerNorm, softmax and GELU have no CPU
// kernels in libtorch 1.13, so an fp16 stage fails there with an error
// that says so (it runs on CUDA).
package quantize

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/train"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/techniques"
)

// Name is the technique's name in a suite.
const Name = "quantize"

// Defaults.
const (
	DefaultWeightBits    = 8
	DefaultActBits       = 8
	DefaultCalibrator    = CalibMinMax
	DefaultGranularity   = "per-channel"
	DefaultPercentile    = 99.99
	DefaultEMA           = 0.01
	DefaultCalibImages   = 128
	DefaultMethod        = MethodPTQ
	DefaultPrecision     = vit.PrecisionInt
	DefaultLR            = 1e-4
	DefaultKDTemperature = 4
	DefaultKDAlpha       = 0.5
	// EdgeBits is the width of the patch embedding and head when the
	// layers do not list them.
	EdgeBits = 8
)

// DefaultLayers are the layer groups quantized unless layers says
// otherwise (the attention map only when activations are quantized).
var DefaultLayers = []string{GroupQKV, GroupProj, GroupFC1, GroupFC2, GroupAttnMap}

// Config is a quantize stage's parameters.
type Config struct {
	// WeightBits is the weights' width, 2 to 8; 16 or 32 leave them in
	// float32.
	WeightBits int `toml:"weight_bits"`
	// ActBits is the activations' width, 2 to 8; 0 quantizes weights only.
	ActBits int `toml:"act_bits"`
	// AttnBits is the attention map's width, 2 to 8; 0 means act_bits.
	AttnBits int `toml:"attn_bits"`
	// Calibrator picks activation (and weight) ranges: "minmax", "ema",
	// "percentile", "mse" or "omse" (the same search).
	Calibrator string `toml:"calibrator"`
	// Granularity of weight scales: "per-channel" or "per-tensor".
	// Activations are quantized per tensor.
	Granularity string `toml:"granularity"`
	// Symmetric weight grids (zero point 0); ActSymmetric the same for
	// activations (default affine).
	Symmetric    bool `toml:"symmetric"`
	ActSymmetric bool `toml:"act_symmetric"`
	// Percentile of the percentile calibrator, in (50, 100].
	Percentile float64 `toml:"percentile"`
	// EMA is the ema calibrator's averaging constant, in (0, 1].
	EMA float64 `toml:"ema_constant"`
	// CalibImages is the number of calibration images, 32 to 1024,
	// drawn from the validation carve-out of the training split.
	CalibImages int `toml:"calib_images"`
	// Layers are the layer groups to quantize: patch_embed, qkv, proj,
	// fc1, fc2, head, attn_map (norm, the LayerNorm input, has no site in
	// vit yet and is rejected). Unlisted, the patch embedding and head are
	// kept at 8 bits.
	Layers []string `toml:"layers"`
	// Method: "ptq", "fq-vit" (log2 attention map), "ptq4vit" (twin
	// uniform attention map and GELU output) or "repq-vit" (post-LayerNorm
	// reparameterization, log2 attention map).
	Method string `toml:"method"`
	// Precision: "int" (the grids above, simulated), or "fp16"/"bf16" for
	// a real cast of the whole model (then leave the bit widths,
	// calibrator, granularity and method at their defaults).
	Precision string `toml:"precision"`
	// QATEpochs > 0 fine-tunes the quantized model that long with a
	// straight-through estimator (quantization-aware training).
	QATEpochs float64 `toml:"qat_epochs"`
	// LR is the QAT learning rate; 0 keeps the training recipe's peak rate,
	// which re-warms the converged model: a tenth of it is the usual choice.
	LR float64 `toml:"lr"`
	// Teacher names a model or experiment of the suite to distil from
	// during QAT; KDTemperature and KDAlpha weigh its soft targets.
	Teacher       string  `toml:"teacher"`
	KDTemperature float64 `toml:"kd_temperature"`
	KDAlpha       float64 `toml:"kd_alpha"`
}

// NewConfig returns a Config holding the defaults: W8A8, min/max
// calibration, symmetric per-channel weights, affine activations.
func NewConfig() *Config {
	return &Config{
		WeightBits:    DefaultWeightBits,
		ActBits:       DefaultActBits,
		Calibrator:    DefaultCalibrator,
		Granularity:   DefaultGranularity,
		Symmetric:     true,
		Percentile:    DefaultPercentile,
		EMA:           DefaultEMA,
		CalibImages:   DefaultCalibImages,
		Layers:        slices.Clone(DefaultLayers),
		Method:        DefaultMethod,
		Precision:     DefaultPrecision,
		LR:            DefaultLR,
		KDTemperature: DefaultKDTemperature,
		KDAlpha:       DefaultKDAlpha,
	}
}

// Name is the technique the Config belongs to.
func (c *Config) Name() string { return Name }

// ErrInvalid is wrapped by every Validate error.
var ErrInvalid = errors.New("invalid quantize parameters")

// Validate checks the ranges and combinations.
func (c *Config) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if !(c.WeightBits >= 2 && c.WeightBits <= 8 || c.WeightBits == 16 || c.WeightBits == 32) {
		bad("weight_bits %d: want 2..8, or 16/32 for float weights", c.WeightBits)
	}
	if !(c.ActBits == 0 || c.ActBits >= 2 && c.ActBits <= 8) {
		bad("act_bits %d: want 2..8, or 0 for weight-only", c.ActBits)
	}
	if !(c.AttnBits == 0 || c.AttnBits >= 2 && c.AttnBits <= 8) {
		bad("attn_bits %d: want 2..8, or 0 for act_bits", c.AttnBits)
	}
	switch c.Calibrator {
	case CalibMinMax, CalibEMA, CalibPercentile, CalibMSE, CalibOMSE:
	default:
		bad("calibrator %q: want minmax, ema, percentile, mse or omse", c.Calibrator)
	}
	if c.Granularity != "per-channel" && c.Granularity != "per-tensor" {
		bad("granularity %q: want per-channel or per-tensor", c.Granularity)
	}
	if !(c.Percentile > 50 && c.Percentile <= 100) {
		bad("percentile %g: want (50, 100]", c.Percentile)
	}
	if !(c.EMA > 0 && c.EMA <= 1) {
		bad("ema_constant %g: want (0, 1]", c.EMA)
	}
	if c.CalibImages < 32 || c.CalibImages > 1024 {
		bad("calib_images %d: want 32..1024", c.CalibImages)
	}
	seen := map[string]bool{}
	known := []string{GroupPatchEmbed, GroupQKV, GroupProj, GroupFC1, GroupFC2, GroupHead, GroupAttnMap}
	if len(c.Layers) == 0 {
		bad("layers is empty")
	}
	for _, l := range c.Layers {
		switch {
		case l == GroupNorm:
			bad("%v", errNorm)
		case !slices.Contains(known, l):
			bad("layers: unknown group %q (known: %s)", l, strings.Join(known, ", "))
		case seen[l]:
			bad("layers: %q listed twice", l)
		}
		seen[l] = true
	}
	switch c.Method {
	case MethodPTQ:
	case MethodFQViT:
		if c.ActBits == 0 || !seen[GroupAttnMap] {
			bad("method fq-vit quantizes the attention map: it needs act_bits > 0 and attn_map in layers")
		}
	case MethodPTQ4ViT:
		if c.ActBits == 0 || !seen[GroupAttnMap] && !seen[GroupFC2] {
			bad("method ptq4vit quantizes softmax and GELU output: it needs act_bits > 0 and attn_map or fc2 in layers")
		}
	case MethodRepQViT:
		if c.ActBits == 0 || !seen[GroupQKV] && !seen[GroupFC1] {
			bad("method repq-vit reparameterizes post-LayerNorm activations: it needs act_bits > 0 and qkv or fc1 in layers")
		}
	default:
		bad("method %q: want ptq, fq-vit, ptq4vit or repq-vit", c.Method)
	}
	switch c.Precision {
	case vit.PrecisionInt:
		if c.WeightBits > 8 && c.ActBits == 0 {
			bad("weight_bits %d and act_bits 0 quantize nothing", c.WeightBits)
		}
	case vit.PrecisionFP16, vit.PrecisionBF16:
		d := NewConfig()
		if c.WeightBits != d.WeightBits || c.ActBits != d.ActBits || c.AttnBits != d.AttnBits ||
			c.Calibrator != d.Calibrator || c.Granularity != d.Granularity || c.Method != d.Method ||
			c.Symmetric != d.Symmetric || c.ActSymmetric != d.ActSymmetric || !slices.Equal(c.Layers, d.Layers) {
			bad("precision %s casts the whole model: leave weight_bits, act_bits, attn_bits, calibrator, granularity, symmetric, act_symmetric, layers and method at their defaults", c.Precision)
		}
		if c.QATEpochs > 0 {
			bad("qat_epochs applies to precision int only")
		}
	default:
		bad("precision %q: want int, fp16 or bf16", c.Precision)
	}
	if c.QATEpochs < 0 || c.QATEpochs > 100 {
		bad("qat_epochs %g: want 0..100", c.QATEpochs)
	}
	if c.LR < 0 {
		bad("lr %g: want >= 0", c.LR)
	}
	if c.Teacher != "" && c.QATEpochs == 0 {
		bad("teacher %q is used by QAT only: set qat_epochs", c.Teacher)
	}
	if c.KDTemperature <= 0 {
		bad("kd_temperature %g: want > 0", c.KDTemperature)
	}
	if c.KDAlpha < 0 || c.KDAlpha > 1 {
		bad("kd_alpha %g: want [0, 1]", c.KDAlpha)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

// References names the QAT teacher, if any (config.Referencer).
func (c *Config) References() []string {
	if c.Teacher == "" {
		return nil
	}
	return []string{c.Teacher}
}

// Options translates the Config into the algorithm's terms.
func (c *Config) Options() Options {
	o := Options{
		WeightBits:      c.WeightBits,
		ActBits:         c.ActBits,
		AttnBits:        c.AttnBits,
		EdgeBits:        EdgeBits,
		Groups:          slices.Clone(c.Layers),
		PerChannel:      c.Granularity == "per-channel",
		WeightSymmetric: c.Symmetric,
		ActSymmetric:    c.ActSymmetric,
		Calibrator:      c.Calibrator,
		Percentile:      c.Percentile,
		EMA:             c.EMA,
		Method:          c.Method,
	}
	if o.WeightBits > 8 {
		o.WeightBits = 0
	}
	return o
}

func init() {
	techniques.Register(techniques.Technique{
		Name:      Name,
		Family:    "quantize",
		NewConfig: func() techniques.Config { return NewConfig() },
		Apply:     apply,
	})
}

// apply is the registered entry: it translates the Config and runs the
// algorithm on m in place.
func apply(ctx context.Context, tc techniques.Config, m *vit.Model, env techniques.Env) (*vit.Model, error) {
	c, ok := tc.(*Config)
	if !ok {
		return nil, fmt.Errorf("quantize: config is %T, not *quantize.Config", tc)
	}
	if m.Cfg.Quant != nil {
		return nil, fmt.Errorf("quantize: the model is already quantized (%s); quantize once, last", m.Cfg.Quant.Precision)
	}
	if c.Precision != vit.PrecisionInt {
		if err := Cast(m, c.Precision); err != nil {
			return nil, err
		}
		env.Logf("quantize: cast to %s (executed)", c.Precision)
		return m, nil
	}
	plan, err := NewPlan(m, c.Options())
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
	var shadows map[string]*ts.Tensor
	if c.QATEpochs > 0 {
		shadows = FloatWeights(m, plan)
	}
	state, err := Quantize(ctx, m, batches, plan)
	if err != nil {
		dropAll(shadows)
		return nil, err
	}
	env.Logf("quantize: %d weights, %d activation quantizers (%s, %s)", len(state.Weights), len(state.Acts), c.Method, c.Calibrator)
	if c.QATEpochs > 0 {
		ft := techniques.FineTune{Epochs: c.QATEpochs, LR: c.LR}
		if c.Teacher != "" {
			teacher, err := env.Model(ctx, c.Teacher)
			if err != nil {
				dropAll(shadows)
				return nil, fmt.Errorf("quantize: teacher: %w", err)
			}
			defer teacher.Drop()
			ft.Loss = train.KD{Teacher: teacher, Temperature: c.KDTemperature, Alpha: c.KDAlpha}
		}
		if err := QAT(ctx, m, shadows, func(ft2 techniques.FineTune) error { return env.FineTune(ctx, m, ft2) }, ft); err != nil {
			return nil, fmt.Errorf("quantize: QAT: %w", err)
		}
	}
	m.Cfg.Executed = vit.ExecutedSimulated
	return m, nil
}

// Cast converts the model to float16 or bfloat16 for real and checks that
// this libtorch can run it on the model's device; otherwise it returns an
// error naming the kernel that is missing.
func Cast(m *vit.Model, precision string) (err error) {
	if err := m.SetQuant(&vit.QuantState{Precision: precision}); err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("quantize: precision %s does not execute on %s with this libtorch: %v", precision, deviceName(m), firstLine(fmt.Sprint(p)))
		}
	}()
	c := m.Cfg
	x := ts.MustRandn([]int64{1, int64(c.InChans), int64(c.ImgSize), int64(c.ImgSize)}, gotch.Float, m.VS.Device())
	defer x.MustDrop()
	ts.NoGrad(func() {
		y := m.Forward(x)
		y.MustDrop()
	})
	m.Cfg.Executed = precision
	return nil
}

func deviceName(m *vit.Model) string {
	d := m.VS.Device()
	if d.IsCuda() {
		return "CUDA"
	}
	return "the CPU"
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func dropAll(ts map[string]*ts.Tensor) {
	for _, t := range ts {
		t.MustDrop()
	}
}
