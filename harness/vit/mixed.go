package vit

// MixedPrecision is the record of a mixed-precision search: each searched
// layer's sensitivity at every candidate width and the width it got.
// It is informational: the widths that execute are the weights'
// QuantSpecs.
type MixedPrecision struct {
	// Method names the sensitivity measure, e.g. "hawq-v3" (average
	// Hessian trace times the squared weight quantization error).
	Method string `json:"method"`
	// Budget is "size" or "bitops"; BudgetBits the uniform width whose
	// cost Limit is; Cost the chosen assignment's, in the same unit
	// (packed weight bits of the searched layers, or their BitOps).
	Budget     string `json:"budget"`
	BudgetBits int    `json:"budget_bits"`
	Limit      int64  `json:"limit"`
	Cost       int64  `json:"cost"`
	// Choices are the candidate widths, ascending.
	Choices []int        `json:"choices"`
	Layers  []MixedLayer `json:"layers"`
}

// MixedLayer is one searched layer.
type MixedLayer struct {
	Name    string   `json:"name"`    // the layer, e.g. "blocks.0.attn.qkv"
	Weights []string `json:"weights"` // its quantized parameters
	// Trace is the average Hessian trace Tr(H)/n of its weights.
	Trace float64 `json:"trace"`
	// Sensitivity holds its sensitivity at each of Choices.
	Sensitivity []float64 `json:"sensitivity"`
	Bits        int       `json:"bits"` // the chosen width
}
