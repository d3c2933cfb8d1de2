package vit

import "testing"

func TestGraphKey(t *testing.T) {
	base := Config{Name: "cifar", ImgSize: 32, PatchSize: 4, InChans: 3, NumClasses: 10, EmbedDim: 128,
		Depth: 2, NumHeads: 4, MLPRatio: 2, QKVBias: true, LNEps: 1e-6}
	with := func(edit func(*Config)) Config {
		c := base.WithBlocks()
		c.Blocks = append([]BlockConfig(nil), c.Blocks...)
		edit(&c)
		return c
	}
	int8 := &QuantState{Precision: PrecisionInt, Weights: map[string]*QuantSpec{"blocks.0.attn.qkv.weight": {Bits: 8, Scale: []float64{0.1}}}}
	tests := []struct {
		name string
		cfg  Config
		same bool // runs the baseline's graph
	}{
		{"renamed", with(func(c *Config) { c.Name = "other" }), true},
		{"explicit uniform blocks", base.WithBlocks(), true},
		{"fake-quantized", with(func(c *Config) { c.Executed, c.Quant = ExecutedSimulated, int8 }), true},
		{"fp32 spelled out", with(func(c *Config) { c.Executed = "fp32" }), true},
		{"empty rank map", with(func(c *Config) { c.Blocks[0].Ranks = map[string]int{} }), true},
		{"a head pruned", with(func(c *Config) { c.Blocks[1].Heads = 3 }), false},
		{"MLP pruned", with(func(c *Config) { c.Blocks[0].MLPHidden = 200 }), false},
		{"factored fc1", with(func(c *Config) { c.Blocks[0].Ranks = map[string]int{"fc1": 32} }), false},
		{"tokens merged", with(func(c *Config) { c.Blocks[0].MergeR = 4 }), false},
		{"tokens dropped", with(func(c *Config) { c.Blocks[0].KeepRate = 0.7 }), false},
		{"bf16 cast", with(func(c *Config) { c.Executed, c.Quant = PrecisionBF16, &QuantState{Precision: PrecisionBF16} }), false},
		{"wider", with(func(c *Config) { c.EmbedDim = 192 }), false},
		{"distilled", with(func(c *Config) { c.Distilled = true }), false},
	}
	for _, tt := range tests {
		if got := tt.cfg.GraphKey() == base.GraphKey(); got != tt.same {
			t.Errorf("%s: same graph as the baseline = %v, want %v\n%s\n%s", tt.name, got, tt.same, tt.cfg.GraphKey(), base.GraphKey())
		}
	}
	// Real low-precision kernels: the bit widths are part of the graph,
	// the scales are not.
	a := with(func(c *Config) { c.Executed, c.Quant = "int8", int8 })
	scaled := &QuantState{Precision: PrecisionInt, Weights: map[string]*QuantSpec{"blocks.0.attn.qkv.weight": {Bits: 8, Scale: []float64{0.7}}}}
	b := with(func(c *Config) { c.Executed, c.Quant = "int8", scaled })
	four := &QuantState{Precision: PrecisionInt, Weights: map[string]*QuantSpec{"blocks.0.attn.qkv.weight": {Bits: 4}}}
	c := with(func(c *Config) { c.Executed, c.Quant = "int8", four })
	if a.GraphKey() != b.GraphKey() {
		t.Error("int8 models differing only in scales have different graph keys")
	}
	if a.GraphKey() == c.GraphKey() || a.GraphKey() == base.GraphKey() {
		t.Error("int8 graph key ignores bit widths or equals the float32 graph's")
	}
	// A twin-uniform input quantizer keeps its layer in float32 where a
	// uniform one of the same width executes in int8: different graphs.
	acts := func(kind string) *QuantState {
		return &QuantState{Precision: PrecisionInt, Acts: map[string]*QuantSpec{"blocks.0.fc2_in": {Kind: kind, Bits: 8, Axis: -1}}}
	}
	u := with(func(c *Config) { c.Executed, c.Quant = "int8", acts(QuantUniform) })
	tw := with(func(c *Config) { c.Executed, c.Quant = "int8", acts(QuantTwin) })
	if u.GraphKey() == tw.GraphKey() {
		t.Error("int8 graph key ignores the kind of quantizer")
	}
}
