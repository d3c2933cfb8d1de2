package techniques

import "slices"

// Numeric precisions of a quantize stage.
const (
	PrecisionInt  = "int"  // integer grids, simulated in float32 (fake quantization)
	PrecisionFP16 = "fp16" // a real cast of the whole model
	PrecisionBF16 = "bf16" // a real cast of the whole model
)

// Layer groups a quantize stage can select.
const (
	GroupPatchEmbed = "patch_embed" // patch embedding weight and its input (the image)
	GroupQKV        = "qkv"         // qkv weight and its input (norm1 output)
	GroupProj       = "proj"        // proj weight and its input (concatenated heads)
	GroupFC1        = "fc1"         // fc1 weight and its input (norm2 output)
	GroupFC2        = "fc2"         // fc2 weight and its input (GELU output)
	GroupHead       = "head"        // head weight(s) and input (final norm output)
	GroupAttnMap    = "attn_map"    // attention probabilities (softmax output)
	GroupNorm       = "norm"        // LayerNorm input (the residual stream)
)

// Quantization methods.
const (
	MethodPTQ     = "ptq"      // uniform quantizers everywhere
	MethodFQViT   = "fq-vit"   // log2 quantizer for the attention map
	MethodPTQ4ViT = "ptq4vit"  // twin uniform quantizers for softmax and GELU output
	MethodRepQViT = "repq-vit" // per-channel post-LayerNorm scales reparameterized to per-tensor
)

// Calibrators of activation (and weight) ranges.
const (
	CalibMinMax     = "minmax"     // the observed min and max
	CalibEMA        = "ema"        // moving average of per-batch min and max
	CalibPercentile = "percentile" // a percentile of the values (per batch, averaged)
	CalibMSE        = "mse"        // the clipping range with the least squared error
	CalibOMSE       = "omse"       // the same search as mse (OMSE's name for it)
)

// Weight rounding of a quantize stage.
const (
	// RoundNearest rounds every weight to its nearest grid point.
	RoundNearest = "nearest"
	// RoundGPTQ rounds the columns of each linear layer in turn and
	// spreads each column's error over the columns not yet rounded,
	// weighted by the layer's inputs (GPTQ, Frantar et al., ICLR 2023).
	RoundGPTQ = "gptq"
)

// Quantization-aware training of a quantize stage (with finetune_epochs > 0).
const (
	// QATSTE trains float shadow weights through a straight-through
	// estimator on the calibrated grids.
	QATSTE = "ste"
	// QATLSQ also trains the step size of every uniform quantizer (LSQ,
	// Esser et al., ICLR 2020).
	QATLSQ = "lsq"
)

// Quantize defaults.
const (
	DefaultWeightBits  = 8
	DefaultActBits     = 8
	DefaultCalibImages = 128
	DefaultPercentile  = 99.99
	DefaultEMA         = 0.01
	DefaultQATLR       = 1e-4
	// EdgeBits is the width of the patch embedding and head when the
	// layers do not list them.
	EdgeBits = 8
)

// QuantizeGroups are the groups a quantize stage may list.
var QuantizeGroups = []string{GroupPatchEmbed, GroupQKV, GroupProj, GroupFC1, GroupFC2, GroupHead, GroupAttnMap}

// DefaultQuantizeLayers are the groups quantized unless layers says
// otherwise (the attention map only when activations are quantized).
var DefaultQuantizeLayers = []string{GroupQKV, GroupProj, GroupFC1, GroupFC2, GroupAttnMap}

// ErrNoNormSite explains why the LayerNorm input cannot be selected.
const ErrNoNormSite = `layer group "norm" (LayerNorm input) is not available: vit's blocks have no tap on the residual stream before their norms (only qkv_in, attn_map, proj_in, fc1_in, fc2_in)`

// QuantizeConfig is a quantize stage's parameters: post-training
// quantization at 2 to 8 bits, the ViT-specific quantizers, QAT through
// the fine-tune block, or a real float16/bfloat16 cast.
type QuantizeConfig struct {
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
	// Layers are the layer groups to quantize (QuantizeGroups; norm, the
	// LayerNorm input, has no site in vit yet and is rejected). Unlisted,
	// the patch embedding and head are kept at EdgeBits.
	Layers []string `toml:"layers"`
	// Method: "ptq", "fq-vit" (log2 attention map), "ptq4vit" (twin
	// uniform attention map and GELU output) or "repq-vit" (post-LayerNorm
	// reparameterization, log2 attention map).
	Method string `toml:"method"`
	// Precision: "int" (the grids above, simulated), or "fp16"/"bf16" for
	// a real cast of the whole model (then leave the bit widths,
	// calibrator, granularity and method at their defaults).
	Precision string `toml:"precision"`
	// OverflowFix puts 8-bit weights on a 7-bit grid ([-64, 63] when
	// symmetric), NNCF's overflow fix: x86 CPUs without VNNI sum pairs of
	// u8 x s8 products in int16, which saturates for weights beyond 64
	// steps, so executed int8 layers compute exactly there only with it.
	OverflowFix bool `toml:"overflow_fix"`
	// Rounding of the weights to their grids: "nearest" (default) or
	// "gptq", which uses the calibration images' inputs of each linear
	// layer to choose roundings whose errors cancel in its output. The
	// grids (scales and zero points) are the calibrator's either way.
	// gptq and bias_correction cost a forward pass over the calibration
	// images per block (the layers' inputs are collected block by block).
	Rounding string `toml:"rounding"`
	// BiasCorrection adds to each quantized linear layer's bias the mean
	// output error its weight rounding causes on the calibration images
	// (empirical bias correction, Nagel et al. 2019), so that the layer's
	// mean output is unchanged. Layers without a bias are left as they are.
	BiasCorrection bool `toml:"bias_correction"`
	// FineTune > 0 epochs is quantization-aware training with a
	// straight-through estimator (precision int only).
	FineTune
	// QAT is the quantization-aware training: "ste" (default) keeps the
	// calibrated grids; "lsq" learns the uniform quantizers' step sizes
	// too (it needs finetune_epochs > 0 and precision int).
	QAT string `toml:"qat"`
}

// NewQuantizeConfig returns the defaults: W8A8, min/max calibration,
// symmetric per-channel weights, affine activations, no QAT.
func NewQuantizeConfig() *QuantizeConfig {
	c := &QuantizeConfig{
		WeightBits:  DefaultWeightBits,
		ActBits:     DefaultActBits,
		Calibrator:  CalibMinMax,
		Granularity: "per-channel",
		Symmetric:   true,
		Percentile:  DefaultPercentile,
		EMA:         DefaultEMA,
		CalibImages: DefaultCalibImages,
		Layers:      slices.Clone(DefaultQuantizeLayers),
		Method:      MethodPTQ,
		Precision:   PrecisionInt,
		Rounding:    RoundNearest,
		FineTune:    NewFineTune(),
		QAT:         QATSTE,
	}
	c.LR = DefaultQATLR
	return c
}

// Validate checks the ranges and combinations.
func (c *QuantizeConfig) Validate() error {
	var v invalid
	if !(c.WeightBits >= 2 && c.WeightBits <= 8 || c.WeightBits == 16 || c.WeightBits == 32) {
		v.add("weight_bits %d: want 2..8, or 16/32 for float weights", c.WeightBits)
	}
	if !(c.ActBits == 0 || c.ActBits >= 2 && c.ActBits <= 8) {
		v.add("act_bits %d: want 2..8, or 0 for weight-only", c.ActBits)
	}
	if !(c.AttnBits == 0 || c.AttnBits >= 2 && c.AttnBits <= 8) {
		v.add("attn_bits %d: want 2..8, or 0 for act_bits", c.AttnBits)
	}
	v.oneOf("calibrator", c.Calibrator, CalibMinMax, CalibEMA, CalibPercentile, CalibMSE, CalibOMSE)
	v.oneOf("granularity", c.Granularity, "per-channel", "per-tensor")
	if !(c.Percentile > 50 && c.Percentile <= 100) {
		v.add("percentile %g: want (50, 100]", c.Percentile)
	}
	if !(c.EMA > 0 && c.EMA <= 1) {
		v.add("ema_constant %g: want (0, 1]", c.EMA)
	}
	if c.CalibImages < 32 || c.CalibImages > 1024 {
		v.add("calib_images %d: want 32..1024", c.CalibImages)
	}
	seen := v.layers(c.Layers, QuantizeGroups, map[string]string{GroupNorm: ErrNoNormSite})
	switch c.Method {
	case MethodPTQ:
	case MethodFQViT:
		if c.ActBits == 0 || !seen[GroupAttnMap] {
			v.add("method fq-vit quantizes the attention map: it needs act_bits > 0 and attn_map in layers")
		}
	case MethodPTQ4ViT:
		if c.ActBits == 0 || !seen[GroupAttnMap] && !seen[GroupFC2] {
			v.add("method ptq4vit quantizes softmax and GELU output: it needs act_bits > 0 and attn_map or fc2 in layers")
		}
	case MethodRepQViT:
		if c.ActBits == 0 || !seen[GroupQKV] && !seen[GroupFC1] {
			v.add("method repq-vit reparameterizes post-LayerNorm activations: it needs act_bits > 0 and qkv or fc1 in layers")
		}
	default:
		v.add("method %q: want ptq, fq-vit, ptq4vit or repq-vit", c.Method)
	}
	if c.OverflowFix && c.WeightBits != 8 {
		v.add("overflow_fix applies to 8-bit weights (weight_bits = 8), not %d", c.WeightBits)
	}
	v.oneOf("rounding", c.Rounding, RoundNearest, RoundGPTQ)
	// Both need integer weights: they correct the rounding to a grid.
	if (c.Rounding == RoundGPTQ || c.BiasCorrection) && c.Precision == PrecisionInt && c.WeightBits > 8 {
		v.add("rounding gptq and bias_correction correct integer weights: they need weight_bits <= 8, not %d", c.WeightBits)
	}
	switch c.Precision {
	case PrecisionInt:
		if c.WeightBits > 8 && c.ActBits == 0 {
			v.add("weight_bits %d and act_bits 0 quantize nothing", c.WeightBits)
		}
	case PrecisionFP16, PrecisionBF16:
		d := NewQuantizeConfig()
		if c.WeightBits != d.WeightBits || c.ActBits != d.ActBits || c.AttnBits != d.AttnBits ||
			c.Calibrator != d.Calibrator || c.Granularity != d.Granularity || c.Method != d.Method ||
			c.Symmetric != d.Symmetric || c.ActSymmetric != d.ActSymmetric || !slices.Equal(c.Layers, d.Layers) || c.OverflowFix ||
			c.Rounding != d.Rounding || c.BiasCorrection {
			v.add("precision %s casts the whole model: leave weight_bits, act_bits, attn_bits, calibrator, granularity, symmetric, act_symmetric, layers, method, overflow_fix, rounding and bias_correction at their defaults", c.Precision)
		}
		if c.Epochs > 0 {
			v.add("finetune_epochs (QAT) applies to precision int only")
		}
	default:
		v.add("precision %q: want int, fp16 or bf16", c.Precision)
	}
	v.oneOf("qat", c.QAT, QATSTE, QATLSQ)
	if c.QAT == QATLSQ && (c.Epochs <= 0 || c.Precision != PrecisionInt) {
		v.add("qat lsq trains step sizes during quantization-aware training: it needs finetune_epochs > 0 and precision int")
	}
	c.FineTune.check(&v)
	return v.err(Quantize)
}
