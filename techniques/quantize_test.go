package techniques

import (
	"slices"
	"testing"
)

func TestQuantizeDefaults(t *testing.T) {
	c := NewQuantizeConfig()
	if c.WeightBits != 8 || c.ActBits != 8 || c.AttnBits != 0 || c.Calibrator != "" ||
		c.Granularity != "per-channel" || !c.Symmetric || c.ActSymmetric || c.Method != MethodPTQ ||
		c.Precision != PrecisionInt || c.CalibImages != 128 || c.Epochs != 0 {
		t.Errorf("defaults %+v", c)
	}
	if !slices.Equal(c.Layers, DefaultQuantizeLayers) {
		t.Errorf("layers %v, want %v", c.Layers, DefaultQuantizeLayers)
	}
	c.Layers[0] = "head"
	if DefaultQuantizeLayers[0] == "head" {
		t.Error("the default layers are shared with the config")
	}
}

// TestQuantizeResolvesMethodDefaults: Validate stores the coverage and
// fq-vit's attention bits a method implies, and keeps those set.
func TestQuantizeResolvesMethodDefaults(t *testing.T) {
	tests := []struct {
		method, coverage string
		attnBits         int
		wantCov          string
		wantAttn         int
	}{
		{MethodPTQ, "", 0, CoverageLinear, 0},
		{MethodFQViT, "", 0, CoverageFull, FQViTAttnBits},
		{MethodFQViT, CoverageLinear, 6, CoverageLinear, 6},
		{MethodPTQ4ViT, "", 0, CoverageMatmul, 0},
		{MethodRepQViT, "", 0, CoverageMatmul, 0},
		{MethodPTQ, CoverageFull, 0, CoverageFull, 0},
	}
	for _, tt := range tests {
		c := NewQuantizeConfig()
		c.Method, c.Coverage, c.AttnBits = tt.method, tt.coverage, tt.attnBits
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", tt.method, err)
		}
		if c.Coverage != tt.wantCov || c.AttnBits != tt.wantAttn {
			t.Errorf("%s coverage %q attn_bits %d: resolved %q, %d; want %q, %d",
				tt.method, tt.coverage, tt.attnBits, c.Coverage, c.AttnBits, tt.wantCov, tt.wantAttn)
		}
	}
}

func TestQuantizeValidate(t *testing.T) {
	type c = *QuantizeConfig
	runValidate(t, Quantize, NewQuantizeConfig, []validateCase[c]{
		{"defaults", nil, ""},
		{"w4a4 mse", func(c c) { c.WeightBits, c.ActBits, c.Calibrator = 4, 4, CalibMSE }, ""},
		{"weight only", func(c c) { c.ActBits = 0 }, ""},
		{"float weights, 8-bit activations", func(c c) { c.WeightBits = 32 }, ""},
		{"bf16", func(c c) { c.Precision = PrecisionBF16 }, ""},
		{"fq-vit", func(c c) { c.Method = MethodFQViT; c.AttnBits = 4 }, ""},
		{"qat with teacher", func(c c) { c.Epochs, c.Teacher = 1, "big" }, ""},
		{"overflow fix", func(c c) { c.OverflowFix = true }, ""},
		{"overflow fix at 4 bits", func(c c) { c.OverflowFix, c.WeightBits = true, 4 }, "overflow_fix applies to 8-bit weights"},
		{"overflow fix with bf16", func(c c) { c.OverflowFix, c.Precision = true, PrecisionBF16 }, "overflow_fix, rounding"},
		{"gptq", func(c c) { c.Rounding = RoundGPTQ }, ""},
		{"gptq w4 per-tensor affine with bias correction", func(c c) {
			c.Rounding, c.BiasCorrection, c.WeightBits, c.Granularity, c.Symmetric = RoundGPTQ, true, 4, "per-tensor", false
		}, ""},
		{"bias correction", func(c c) { c.BiasCorrection = true }, ""},
		{"lsq", func(c c) { c.QAT, c.Epochs = QATLSQ, 1 }, ""},
		{"ste with qat", func(c c) { c.QAT, c.Epochs = QATSTE, 1 }, ""},
		{"qat unknown", func(c c) { c.QAT = "pact" }, `qat "pact"`},
		{"lsq without finetune", func(c c) { c.QAT = QATLSQ }, "qat lsq trains step sizes"},
		{"lsq with bf16", func(c c) { c.QAT, c.Epochs, c.Precision = QATLSQ, 1, PrecisionBF16 }, "qat lsq trains step sizes"},
		{"rounding", func(c c) { c.Rounding = "stochastic" }, "rounding \"stochastic\""},
		{"gptq with float weights", func(c c) { c.Rounding, c.WeightBits = RoundGPTQ, 32 }, "need weight_bits <= 8"},
		{"bias correction with float weights", func(c c) { c.BiasCorrection, c.WeightBits = true, 16 }, "need weight_bits <= 8"},
		{"gptq with bf16", func(c c) { c.Rounding, c.Precision = RoundGPTQ, PrecisionBF16 }, "rounding and bias_correction at their defaults"},
		{"bias correction with fp16", func(c c) { c.BiasCorrection, c.Precision = true, PrecisionFP16 }, "rounding and bias_correction at their defaults"},
		{"mixed precision", func(c c) { c.MixedPrecision = true }, ""},
		{"mixed precision bitops", func(c c) {
			c.MixedPrecision, c.BitChoices, c.Budget, c.BudgetBits, c.HutchinsonSamples = true, []int{2, 4, 8}, BudgetBitOps, 3, 4
		}, ""},
		{"mixed keys without the switch", func(c c) { c.BudgetBits = 4 }, "apply with mixed_precision = true"},
		{"mixed one choice", func(c c) { c.MixedPrecision, c.BitChoices = true, []int{8} }, "at least two widths"},
		{"mixed choice 16", func(c c) { c.MixedPrecision, c.BitChoices = true, []int{4, 16} }, "width 16 outside 2..8"},
		{"mixed choice twice", func(c c) { c.MixedPrecision, c.BitChoices = true, []int{4, 4, 8} }, "width 4 listed twice"},
		{"mixed budget", func(c c) { c.MixedPrecision, c.Budget = true, "latency" }, "budget \"latency\""},
		{"mixed budget bits", func(c c) { c.MixedPrecision, c.BudgetBits = true, 3 }, "budget_bits 3: want a width between"},
		{"mixed hutchinson", func(c c) { c.MixedPrecision, c.HutchinsonSamples = true, 0 }, "hutchinson_samples 0"},
		{"mixed float weights", func(c c) { c.MixedPrecision, c.WeightBits = true, 32 }, "needs weight_bits <= 8"},
		{"mixed bf16", func(c c) { c.MixedPrecision, c.Precision = true, PrecisionBF16 }, "needs precision int"},
		{"mixed overflow fix", func(c c) { c.MixedPrecision, c.OverflowFix = true, true }, "mixed_precision with overflow_fix"},
		{"weight bits 1", func(c c) { c.WeightBits = 1 }, "weight_bits 1"},
		{"weight bits 12", func(c c) { c.WeightBits = 12 }, "weight_bits 12"},
		{"act bits 16", func(c c) { c.ActBits = 16 }, "act_bits 16"},
		{"nothing", func(c c) { c.WeightBits, c.ActBits = 16, 0 }, "quantize nothing"},
		{"calibrator", func(c c) { c.Calibrator = "kl" }, "calibrator"},
		{"granularity", func(c c) { c.Granularity = "per-group" }, "granularity"},
		{"percentile", func(c c) { c.Percentile = 40 }, "percentile 40"},
		{"calib images", func(c c) { c.CalibImages = 8 }, "calib_images 8"},
		{"unknown layer", func(c c) { c.Layers = []string{"qkv", "mlp"} }, "unknown group"},
		{"duplicate layer", func(c c) { c.Layers = []string{"qkv", "qkv"} }, "twice"},
		{"norm", func(c c) { c.Layers = []string{GroupNorm} }, "LayerNorm input"},
		{"fq-vit without attention", func(c c) { c.Method = MethodFQViT; c.Layers = []string{GroupQKV} }, "fq-vit"},
		{"repq weight-only", func(c c) { c.Method = MethodRepQViT; c.ActBits = 0 }, "repq-vit"},
		{"method", func(c c) { c.Method = "gptq" }, "method"},
		{"coverage matmul", func(c c) { c.Coverage = CoverageMatmul }, ""},
		{"coverage full", func(c c) { c.Coverage = CoverageFull }, ""},
		{"coverage", func(c c) { c.Coverage = "all" }, `coverage "all"`},
		{"coverage full weight-only", func(c c) { c.Coverage, c.ActBits = CoverageFull, 0 }, "coverage full quantizes activations: it needs act_bits > 0"},
		{"coverage with bf16", func(c c) { c.Coverage, c.Precision = CoverageMatmul, PrecisionBF16 }, "leave coverage at its default"},
		{"bf16 with bits", func(c c) { c.Precision = PrecisionBF16; c.WeightBits = 4 }, "casts the whole model"},
		{"bf16 with qat", func(c c) { c.Precision, c.Epochs = PrecisionBF16, 1 }, "finetune_epochs (QAT) applies to precision int only"},
		{"fp8", func(c c) { c.Precision = "fp8" }, "precision"},
		{"teacher without qat", func(c c) { c.Teacher = "big" }, "finetune_epochs"},
		{"kd alpha", func(c c) { c.Epochs = 1; c.KDAlpha = 2 }, "kd_alpha"},
	})
}
