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
	MethodPTQ4ViT = "ptq4vit"  // Hessian-guided alternating interval search, twin uniform grids for softmax and GELU output
	MethodRepQViT = "repq-vit" // post-LayerNorm per-channel scales reparameterized to per-tensor, log-sqrt(2) attention map, calibrator repq unless set
)

// Activation coverages of a quantize stage: which activations besides
// the selected layers' weights are quantized.
const (
	// CoverageLinear quantizes every selected linear layer's input.
	CoverageLinear = "linear"
	// CoverageMatmul adds the operands of the attention products: q, k,
	// v and the attention map, in every block.
	CoverageMatmul = "matmul"
	// CoverageFull adds the softmax input and the LayerNorm inputs (the
	// residual stream before norm1, norm2 and the final norm).
	CoverageFull = "full"
)

// DefaultCoverage is the coverage of each method when the stage leaves
// coverage unset: what the method's paper quantizes.
var DefaultCoverage = map[string]string{
	MethodPTQ:     CoverageLinear,
	MethodFQViT:   CoverageFull,
	MethodPTQ4ViT: CoverageMatmul,
	MethodRepQViT: CoverageMatmul,
}

// FQViTAttnBits is FQ-ViT's attention-map width (its Log-Int-Softmax
// output), used when a fq-vit stage leaves attn_bits unset.
const FQViTAttnBits = 4

// Calibrators of activation (and weight) ranges.
const (
	CalibMinMax     = "minmax"     // the observed min and max
	CalibEMA        = "ema"        // moving average of per-batch min and max
	CalibPercentile = "percentile" // a percentile of the values (per batch, averaged)
	CalibMSE        = "mse"        // the clipping range with the least squared error
	CalibOMSE       = "omse"       // the same search as mse (OMSE's name for it)
	CalibRepQ       = "repq"       // RepQ-ViT's search: the affine range [Q(1-p), Q(p)], p in {0.999, 0.9999, 0.99999}, with the least squared error
)

// MethodCalibrator is the calibrator a method uses when the stage names
// none: its paper's for repq-vit, minmax otherwise.
func MethodCalibrator(method string) string {
	if method == MethodRepQViT {
		return CalibRepQ
	}
	return CalibMinMax
}

// Weight rounding of a quantize stage.
const (
	// RoundNearest rounds every weight to its nearest grid point.
	RoundNearest = "nearest"
	// RoundGPTQ rounds the columns of each linear layer in turn and
	// spreads each column's error over the columns not yet rounded,
	// weighted by the layer's inputs (GPTQ, Frantar et al., ICLR 2023).
	RoundGPTQ = "gptq"
)

// Budgets of a mixed-precision search.
const (
	BudgetSize   = "size"   // packed weight bytes of the searched layers
	BudgetBitOps = "bitops" // bit operations of the searched layers
)

// Mixed-precision defaults.
const (
	DefaultBudgetBits        = 6
	DefaultHutchinsonSamples = 16
)

// DefaultBitChoices are the weight widths a mixed-precision search picks from.
var DefaultBitChoices = []int{4, 6, 8}

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
const ErrNoNormSite = `layer group "norm" (LayerNorm input) is not a layer group: coverage = "full" quantizes the LayerNorm inputs`

// QuantizeConfig is a quantize stage's parameters: post-training
// quantization at 2 to 8 bits, the ViT-specific quantizers, QAT through
// the fine-tune block, or a real float16/bfloat16 cast.
type QuantizeConfig struct {
	// WeightBits is the weights' width, 2 to 8; 16 or 32 leave them in
	// float32.
	WeightBits int `toml:"weight_bits"`
	// ActBits is the activations' width, 2 to 8; 0 quantizes weights only.
	ActBits int `toml:"act_bits"`
	// AttnBits is the attention map's width, 2 to 8; 0 means act_bits
	// (FQViTAttnBits for fq-vit: Validate resolves it).
	AttnBits int `toml:"attn_bits"`
	// Coverage is which activations are quantized: CoverageLinear,
	// CoverageMatmul or CoverageFull; "" is the method's DefaultCoverage
	// (Validate resolves it, so the stored stage says which).
	Coverage string `toml:"coverage"`
	// Calibrator picks activation (and weight) ranges: "minmax", "ema",
	// "percentile", "mse", "omse" (the same search) or "repq" (RepQ-ViT's
	// percentile search, affine grids). Unset (""), Validate resolves it
	// to the method's (MethodCalibrator), so the stored value is explicit.
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
	// Method: "ptq", "fq-vit" (log2 attention map), "ptq4vit" (Hessian-
	// guided interval search, twin uniform attention map and GELU output)
	// or "repq-vit" (post-LayerNorm reparameterization, log-sqrt(2)
	// attention map with a searched step, calibrator "repq" unless set).
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
	// MixedPrecision gives each quantized linear layer a weight width from
	// BitChoices: HAWQ-V2/V3's sensitivity (Hessian trace times weight
	// quantization error) is minimised under Budget, which must not exceed
	// that of every searched layer at BudgetBits. Activations stay at
	// act_bits.
	MixedPrecision bool `toml:"mixed_precision"`
	// BitChoices are the candidate weight widths, 2 to 8, distinct.
	BitChoices []int `toml:"bit_choices"`
	// Budget is "size" (packed weight bytes) or "bitops".
	Budget string `toml:"budget"`
	// BudgetBits is the uniform width whose size or BitOps is the budget.
	BudgetBits int `toml:"budget_bits"`
	// HutchinsonSamples is the number of random vectors of the Hessian
	// trace estimate, 1 to 256.
	HutchinsonSamples int `toml:"hutchinson_samples"`
	// FineTune > 0 epochs is quantization-aware training with a
	// straight-through estimator (precision int only).
	FineTune
	// QAT is the quantization-aware training: "ste" (default) keeps the
	// calibrated grids; "lsq" learns the uniform quantizers' step sizes
	// too (it needs finetune_epochs > 0 and precision int).
	QAT string `toml:"qat"`
}

// NewQuantizeConfig returns the defaults: W8A8, the method's calibration
// (min/max but for repq-vit; Validate resolves it),
// symmetric per-channel weights, affine activations, no QAT.
func NewQuantizeConfig() *QuantizeConfig {
	c := &QuantizeConfig{
		WeightBits:        DefaultWeightBits,
		ActBits:           DefaultActBits,
		Granularity:       "per-channel",
		Symmetric:         true,
		Percentile:        DefaultPercentile,
		EMA:               DefaultEMA,
		CalibImages:       DefaultCalibImages,
		Layers:            slices.Clone(DefaultQuantizeLayers),
		Method:            MethodPTQ,
		Precision:         PrecisionInt,
		Rounding:          RoundNearest,
		BitChoices:        slices.Clone(DefaultBitChoices),
		Budget:            BudgetSize,
		BudgetBits:        DefaultBudgetBits,
		HutchinsonSamples: DefaultHutchinsonSamples,
		QAT:               QATSTE,
		FineTune:          NewFineTune(),
	}
	c.LR = DefaultQATLR
	return c
}

// Validate checks the ranges and combinations. It first resolves the
// defaults that depend on the method: the calibrator, coverage, and
// attn_bits for fq-vit.
func (c *QuantizeConfig) Validate() error {
	if c.Calibrator == "" {
		c.Calibrator = MethodCalibrator(c.Method)
	}
	var v invalid
	if c.Coverage == "" {
		c.Coverage = DefaultCoverage[c.Method]
	}
	if c.Method == MethodFQViT && c.AttnBits == 0 && c.Precision == PrecisionInt {
		c.AttnBits = FQViTAttnBits
	}
	if !(c.WeightBits >= 2 && c.WeightBits <= 8 || c.WeightBits == 16 || c.WeightBits == 32) {
		v.add("weight_bits %d: want 2..8, or 16/32 for float weights", c.WeightBits)
	}
	if !(c.ActBits == 0 || c.ActBits >= 2 && c.ActBits <= 8) {
		v.add("act_bits %d: want 2..8, or 0 for weight-only", c.ActBits)
	}
	if !(c.AttnBits == 0 || c.AttnBits >= 2 && c.AttnBits <= 8) {
		v.add("attn_bits %d: want 2..8, or 0 for act_bits", c.AttnBits)
	}
	v.oneOf("calibrator", c.Calibrator, CalibMinMax, CalibEMA, CalibPercentile, CalibMSE, CalibOMSE, CalibRepQ)
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
	if c.Coverage != "" { // "" only with an unknown method, reported below
		v.oneOf("coverage", c.Coverage, CoverageLinear, CoverageMatmul, CoverageFull)
	}
	if (c.Coverage == CoverageMatmul || c.Coverage == CoverageFull) && c.ActBits == 0 {
		v.add("coverage %s quantizes activations: it needs act_bits > 0", c.Coverage)
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
		if c.Rounding == RoundGPTQ || c.BiasCorrection {
			v.add("method ptq4vit searches its own weight intervals: rounding = \"gptq\" and bias_correction are not combined with it")
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
	c.checkMixed(&v)
	switch c.Precision {
	case PrecisionInt:
		if c.WeightBits > 8 && c.ActBits == 0 {
			v.add("weight_bits %d and act_bits 0 quantize nothing", c.WeightBits)
		}
	case PrecisionFP16, PrecisionBF16:
		d := NewQuantizeConfig()
		if c.WeightBits != d.WeightBits || c.ActBits != d.ActBits || c.AttnBits != d.AttnBits ||
			c.Calibrator != MethodCalibrator(d.Method) || c.Granularity != d.Granularity || c.Method != d.Method ||
			c.Symmetric != d.Symmetric || c.ActSymmetric != d.ActSymmetric || !slices.Equal(c.Layers, d.Layers) || c.OverflowFix ||
			c.Rounding != d.Rounding || c.BiasCorrection {
			v.add("precision %s casts the whole model: leave weight_bits, act_bits, attn_bits, calibrator, granularity, symmetric, act_symmetric, layers, method, overflow_fix, rounding and bias_correction at their defaults", c.Precision)
		}
		if c.Coverage != CoverageLinear && c.Method == MethodPTQ {
			v.add("precision %s casts the whole model: leave coverage at its default (linear)", c.Precision)
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
