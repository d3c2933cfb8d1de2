// Package vit is vitbench's one Vision Transformer definition, with timm's
// semantics: conv patch embedding, class token (plus DeiT's distillation
// token when configured), learned position embedding, pre-norm blocks
// (LayerNorm, multi-head self-attention with fused qkv, LayerNorm, MLP with
// exact GELU), final LayerNorm and a linear head.
//
// Named configurations follow timm's and torchvision's names; any custom
// shape can be built from a Config. The structure is open to compression
// stages: every block records its own head count and MLP width (they may
// differ after structured pruning), every linear layer may be dense or
// factored into two, carries an optional unstructured mask and weight bit
// width, and taps at named sites let quantizers observe or fake-quantize
// activations.
package vit

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Config describes one ViT architecture.
type Config struct {
	Name       string  `json:"name,omitempty"`
	ImgSize    int     `json:"img_size"`
	PatchSize  int     `json:"patch_size"`
	InChans    int     `json:"in_chans"`
	NumClasses int     `json:"num_classes"`
	EmbedDim   int     `json:"embed_dim"`
	Depth      int     `json:"depth"`
	NumHeads   int     `json:"num_heads"`
	MLPRatio   float64 `json:"mlp_ratio"`
	QKVBias    bool    `json:"qkv_bias"`
	Distilled  bool    `json:"distilled"` // DeiT: distillation token and a second head
	LNEps      float64 `json:"ln_eps"`

	// Blocks overrides the per-block structure after compression; nil
	// means every block is the uniform one the fields above describe.
	Blocks []BlockConfig `json:"blocks,omitempty"`

	// Executed says how the model's forward pass runs: "" or "fp32" for
	// float32, "fp16"/"bf16" for real casts, "int8" for real integer
	// kernels, "simulated" for fake quantization in float32 (whose latency
	// is the float graph's and must never be reported as low precision).
	Executed string `json:"executed,omitempty"`

	// Quant is the model's quantization (bit widths, scales, zero points
	// of its weights and activations, or a float16/bfloat16 cast); nil
	// for a float32 model. New re-attaches it, so a saved model reloads
	// exactly.
	Quant *QuantState `json:"quant,omitempty"`
}

// BlockConfig is the structure of one transformer block.
type BlockConfig struct {
	Heads     int `json:"heads"`      // attention heads kept
	HeadDim   int `json:"head_dim"`   // width of each head
	MLPHidden int `json:"mlp_hidden"` // hidden neurons of the MLP
	// Ranks of factored linear layers by name ("qkv", "proj", "fc1",
	// "fc2"); absent means dense.
	Ranks map[string]int `json:"ranks,omitempty"`
	// Token reduction after this block's attention.
	MergeR   int     `json:"merge_r,omitempty"`   // ToMe: tokens merged
	KeepRate float64 `json:"keep_rate,omitempty"` // EViT: fraction of patch tokens kept (0 = all)
}

// NumTokens is the number of tokens entering the first block.
func (c Config) NumTokens() int {
	n := (c.ImgSize / c.PatchSize) * (c.ImgSize / c.PatchSize)
	return n + c.NumPrefix()
}

// NumPrefix is the number of non-patch tokens (class, distillation).
func (c Config) NumPrefix() int {
	if c.Distilled {
		return 2
	}
	return 1
}

// Block returns the structure of block i.
func (c Config) Block(i int) BlockConfig {
	if c.Blocks != nil {
		return c.Blocks[i]
	}
	return BlockConfig{
		Heads:     c.NumHeads,
		HeadDim:   c.EmbedDim / c.NumHeads,
		MLPHidden: int(float64(c.EmbedDim) * c.MLPRatio),
	}
}

// WithBlocks returns c with an explicit per-block structure, copied so the
// caller may edit it.
func (c Config) WithBlocks() Config {
	bs := make([]BlockConfig, c.Depth)
	for i := range bs {
		b := c.Block(i)
		if b.Ranks != nil {
			r := make(map[string]int, len(b.Ranks))
			for k, v := range b.Ranks {
				r[k] = v
			}
			b.Ranks = r
		}
		bs[i] = b
	}
	c.Blocks = bs
	return c
}

// Validate checks that the shape is buildable.
func (c Config) Validate() error {
	var errs []string
	pos := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Sprintf("%s must be > 0, got %d", name, v))
		}
	}
	pos("img_size", c.ImgSize)
	pos("patch_size", c.PatchSize)
	pos("in_chans", c.InChans)
	pos("num_classes", c.NumClasses)
	pos("embed_dim", c.EmbedDim)
	pos("depth", c.Depth)
	pos("num_heads", c.NumHeads)
	if c.MLPRatio <= 0 {
		errs = append(errs, fmt.Sprintf("mlp_ratio must be > 0, got %g", c.MLPRatio))
	}
	if c.PatchSize > 0 && c.ImgSize%c.PatchSize != 0 {
		errs = append(errs, fmt.Sprintf("img_size %d is not a multiple of patch_size %d", c.ImgSize, c.PatchSize))
	}
	if c.NumHeads > 0 && c.EmbedDim%c.NumHeads != 0 {
		errs = append(errs, fmt.Sprintf("embed_dim %d is not a multiple of num_heads %d", c.EmbedDim, c.NumHeads))
	}
	if c.Blocks != nil && len(c.Blocks) != c.Depth {
		errs = append(errs, fmt.Sprintf("%d block configs for depth %d", len(c.Blocks), c.Depth))
	}
	for i, b := range c.Blocks {
		if b.Heads <= 0 || b.HeadDim <= 0 || b.MLPHidden <= 0 {
			errs = append(errs, fmt.Sprintf("block %d: heads, head_dim and mlp_hidden must be > 0 (%d, %d, %d)", i, b.Heads, b.HeadDim, b.MLPHidden))
		}
		if b.KeepRate < 0 || b.KeepRate > 1 {
			errs = append(errs, fmt.Sprintf("block %d: keep_rate %g outside [0,1]", i, b.KeepRate))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("vit config %q: %s", c.Name, strings.Join(errs, "; "))
	}
	return nil
}

var registry = map[string]Config{}

func register(c Config) {
	if _, dup := registry[c.Name]; dup {
		panic("vit: duplicate config " + c.Name)
	}
	if c.LNEps == 0 {
		c.LNEps = 1e-6
	}
	registry[c.Name] = c
}

func init() {
	type size struct {
		name             string
		dim, depth, head int
	}
	timmSizes := []size{{"tiny", 192, 12, 3}, {"small", 384, 12, 6}, {"base", 768, 12, 12}, {"large", 1024, 24, 16}}
	for _, s := range timmSizes {
		for _, p := range []int{16, 32} {
			for _, res := range []int{224, 384} {
				register(Config{
					Name:    fmt.Sprintf("vit_%s_patch%d_%d", s.name, p, res),
					ImgSize: res, PatchSize: p, InChans: 3, NumClasses: 1000,
					EmbedDim: s.dim, Depth: s.depth, NumHeads: s.head, MLPRatio: 4, QKVBias: true,
				})
			}
		}
	}
	for _, s := range timmSizes[:3] {
		for _, distilled := range []bool{false, true} {
			name := fmt.Sprintf("deit_%s_patch16_224", s.name)
			if distilled {
				name = fmt.Sprintf("deit_%s_distilled_patch16_224", s.name)
			}
			register(Config{
				Name:    name,
				ImgSize: 224, PatchSize: 16, InChans: 3, NumClasses: 1000,
				EmbedDim: s.dim, Depth: s.depth, NumHeads: s.head, MLPRatio: 4, QKVBias: true,
				Distilled: distilled,
			})
		}
	}
	// torchvision's models: same semantics, their own checkpoint naming.
	for _, tv := range []struct {
		name             string
		patch            int
		dim, depth, head int
	}{{"vit_b_16", 16, 768, 12, 12}, {"vit_b_32", 32, 768, 12, 12}, {"vit_l_16", 16, 1024, 24, 16}, {"vit_l_32", 32, 1024, 24, 16}, {"vit_h_14", 14, 1280, 32, 16}} {
		register(Config{
			Name:    tv.name,
			ImgSize: 224, PatchSize: tv.patch, InChans: 3, NumClasses: 1000,
			EmbedDim: tv.dim, Depth: tv.depth, NumHeads: tv.head, MLPRatio: 4, QKVBias: true,
		})
	}
}

// Lookup returns the named configuration, or an error listing the names.
func Lookup(name string) (Config, error) {
	c, ok := registry[name]
	if !ok {
		return Config{}, fmt.Errorf("unknown ViT architecture %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return c, nil
}

// Names lists the registered architecture names, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Custom starts from a base configuration (a registered name, or none for
// a small default) and applies the given overrides; nil pointers keep the
// base's value. The result is validated.
func Custom(base string, o Overrides) (Config, error) {
	c := Config{Name: "custom", ImgSize: 32, PatchSize: 4, InChans: 3, NumClasses: 10,
		EmbedDim: 192, Depth: 6, NumHeads: 3, MLPRatio: 4, QKVBias: true, LNEps: 1e-6}
	if base != "" {
		b, err := Lookup(base)
		if err != nil {
			return Config{}, err
		}
		c = b
	}
	setInt := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	setInt(&c.ImgSize, o.ImgSize)
	setInt(&c.PatchSize, o.PatchSize)
	setInt(&c.InChans, o.InChans)
	setInt(&c.NumClasses, o.NumClasses)
	setInt(&c.EmbedDim, o.EmbedDim)
	setInt(&c.Depth, o.Depth)
	setInt(&c.NumHeads, o.NumHeads)
	if o.MLPRatio != nil {
		c.MLPRatio = *o.MLPRatio
	}
	if o.QKVBias != nil {
		c.QKVBias = *o.QKVBias
	}
	if o.Distilled != nil {
		c.Distilled = *o.Distilled
	}
	return c, c.Validate()
}

// Overrides are optional changes to a base configuration.
type Overrides struct {
	ImgSize, PatchSize, InChans, NumClasses, EmbedDim, Depth, NumHeads *int
	MLPRatio                                                           *float64
	QKVBias, Distilled                                                 *bool
}

// GraphKey identifies the computation a forward pass of a model with this
// config executes: models whose keys are equal run the same kernels on
// tensors of the same shapes and dtypes, so they take the same time
// whatever their weights hold (zeros of unstructured pruning included:
// the kernels are dense). A simulated model's key is its float32
// graph's, the graph its latency is measured on (Float32Graph).
func (c Config) GraphKey() string {
	k := struct {
		Config
		Quant map[string]string `json:"quant,omitempty"` // kind, bits and axis by tensor, executed precisions only
	}{Config: c.WithBlocks()}
	k.Name = ""
	k.Config.Quant = nil
	switch {
	case c.Executed == ExecutedSimulated || c.Executed == "fp32":
		k.Executed = ""
	case c.Quant != nil:
		// Which layers an int8 graph executes in int8, and how, depends
		// on each quantizer's kind and granularity as well as its bits.
		spec := func(q *QuantSpec) string { return fmt.Sprintf("%s/%d/%d", q.Kind, q.Bits, q.Axis) }
		k.Quant = map[string]string{"precision": c.Quant.Precision}
		for name, q := range c.Quant.Weights {
			k.Quant[name] = spec(q)
		}
		for name, q := range c.Quant.Acts {
			k.Quant["act:"+name] = spec(q)
		}
	}
	b, err := json.Marshal(k)
	if err != nil {
		panic("vit: GraphKey: " + err.Error()) // plain data: cannot fail
	}
	return string(b)
}
