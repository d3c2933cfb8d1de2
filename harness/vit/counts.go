package vit

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch/ts"
)

// LayerCount is the analytic cost of one layer for one image.
//
// MACs are multiply-accumulates; FLOPs are 2 x MACs. The ViT literature's
// "GFLOPs" (DeiT, torchvision's tables) are GMACs. Only matrix products
// and the patch convolution are counted, as fvcore and torchvision do:
// LayerNorm, softmax, GELU and additions are left out.
type LayerCount struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"` // "conv", "linear", "attention", "norm", "embedding"
	Params  int64  `json:"params"`
	NonZero int64  `json:"nonzero"`  // parameters that are not zero (pruning)
	MACs    int64  `json:"macs"`     // dense
	EffMACs int64  `json:"eff_macs"` // skipping zero weights
	Tokens  int    `json:"tokens"`   // tokens the layer sees
	// Bits is the width of the layer's quantized weights (Model.Count,
	// from the model's QuantState); 0 for float weights, float16 and
	// bfloat16 casts included, and for layers without weights.
	Bits int `json:"bits,omitempty"`
}

// Counts is a per-layer table with its totals.
type Counts struct {
	Layers  []LayerCount `json:"layers"`
	Params  int64        `json:"params"`
	NonZero int64        `json:"nonzero"`
	MACs    int64        `json:"macs"`
	EffMACs int64        `json:"eff_macs"`
}

// FLOPs is 2 x MACs.
func (c Counts) FLOPs() int64 { return 2 * c.MACs }

// add appends a layer as it is. Analytic counts go through addDense, so a
// zero here is a real zero (a linear layer pruned to nothing), not unset.
func (c *Counts) add(l LayerCount) {
	c.Layers = append(c.Layers, l)
	c.Params += l.Params
	c.NonZero += l.NonZero
	c.MACs += l.MACs
	c.EffMACs += l.EffMACs
}

// TokensAfter returns the token count after a block's token reduction,
// from n tokens of which prefix are class/distillation tokens. EViT runs
// first: ceil(KeepRate x patches) patch tokens are kept, plus one token
// fusing the dropped ones when any are dropped; then ToMe merges MergeR
// tokens away, at most half the patch tokens. The reducers New attaches
// (tokens.go) reduce exactly this many.
func (b BlockConfig) TokensAfter(n, prefix int) int {
	if b.KeepRate > 0 && b.KeepRate < 1 {
		if kept := int(math.Ceil(b.KeepRate * float64(n-prefix))); kept < n-prefix {
			n = prefix + kept + 1
		}
	}
	if b.MergeR > 0 {
		n -= min(b.MergeR, (n-prefix)/2)
	}
	return n
}

func linearCount(name string, in, out, rank int, bias bool, tokens int) LayerCount {
	var params, macs int64
	if rank > 0 {
		params = int64(rank) * int64(in+out)
		macs = int64(tokens) * int64(rank) * int64(in+out)
	} else {
		params = int64(in) * int64(out)
		macs = int64(tokens) * int64(in) * int64(out)
	}
	if bias {
		params += int64(out)
	}
	return LayerCount{Name: name, Kind: "linear", Params: params, MACs: macs, Tokens: tokens}
}

// addDense appends a layer of the architecture with every parameter
// non-zero and every MAC performed.
func (c *Counts) addDense(l LayerCount) {
	l.NonZero, l.EffMACs = l.Params, l.MACs
	c.add(l)
}

// Count returns the analytic per-layer counts of the architecture.
func (c Config) Count() Counts {
	var out Counts
	d := c.EmbedDim
	p := c.PatchSize
	patches := (c.ImgSize / p) * (c.ImgSize / p)
	out.addDense(LayerCount{Name: "patch_embed.proj", Kind: "conv",
		Params: int64(d*c.InChans*p*p + d), MACs: int64(patches) * int64(d*c.InChans*p*p), Tokens: patches})
	prefix := c.NumPrefix()
	n := c.NumTokens()
	out.addDense(LayerCount{Name: "tokens+pos_embed", Kind: "embedding", Params: int64(prefix*d + n*d), Tokens: n})
	for i := 0; i < c.Depth; i++ {
		b := c.Block(i)
		inner := b.Heads * b.HeadDim
		pre := fmt.Sprintf("blocks.%d.", i)
		out.addDense(LayerCount{Name: pre + "norm1", Kind: "norm", Params: int64(2 * d), Tokens: n})
		out.addDense(linearCount(pre+"attn.qkv", d, 3*inner, b.Ranks["qkv"], c.QKVBias, n))
		out.addDense(LayerCount{Name: pre + "attn.matmul", Kind: "attention",
			MACs: 2 * int64(b.Heads) * int64(n) * int64(n) * int64(b.HeadDim), Tokens: n})
		out.addDense(linearCount(pre+"attn.proj", inner, d, b.Ranks["proj"], true, n))
		n = b.TokensAfter(n, prefix)
		out.addDense(LayerCount{Name: pre + "norm2", Kind: "norm", Params: int64(2 * d), Tokens: n})
		out.addDense(linearCount(pre+"mlp.fc1", d, b.MLPHidden, b.Ranks["fc1"], true, n))
		out.addDense(linearCount(pre+"mlp.fc2", b.MLPHidden, d, b.Ranks["fc2"], true, n))
	}
	out.addDense(LayerCount{Name: "norm", Kind: "norm", Params: int64(2 * d), Tokens: n})
	out.addDense(linearCount("head", d, c.NumClasses, 0, true, 1))
	if c.Distilled {
		out.addDense(linearCount("head_dist", d, c.NumClasses, 0, true, 1))
	}
	return out
}

// Count returns the model's per-layer counts: the architecture's analytic
// counts, with non-zero parameters and effective MACs of linear layers
// taken from the actual weights (unstructured sparsity), and the bit width
// of each layer's quantized weights (of the first factor of a factored
// layer, as BitOps counts it).
func (m *Model) Count() Counts {
	arch := m.Cfg.Count()
	density := map[string]float64{}
	nonzero := map[string]int64{}
	for _, l := range m.Linears() {
		var nz, total int64
		for _, t := range l.tensors() {
			nz += countNonZero(t)
			total += int64(t.Numel())
		}
		nonzero[l.Name] = nz
		wz, wt := int64(0), int64(0)
		for _, t := range []*ts.Tensor{l.Weight, l.Down, l.Up} {
			if t != nil {
				wz += countNonZero(t)
				wt += int64(t.Numel())
			}
		}
		if wt > 0 {
			density[l.Name] = float64(wz) / float64(wt)
		}
	}
	var out Counts
	for _, l := range arch.Layers {
		if nz, ok := nonzero[l.Name]; ok {
			l.NonZero = nz
			l.EffMACs = int64(math.Round(float64(l.MACs) * density[l.Name]))
			if l.EffMACs == 0 && l.MACs > 0 && density[l.Name] > 0 {
				l.EffMACs = 1
			}
		}
		l.Bits, _ = m.Cfg.Quant.weightBits(l.Name)
		out.add(l)
	}
	return out
}

func countNonZero(t *ts.Tensor) int64 {
	nz := t.MustCountNonzero([]int64{}, false)
	defer nz.MustDrop()
	return nz.Int64Values()[0]
}

// NumParams counts the elements of every tensor in the model's VarStore.
func (m *Model) NumParams() int64 {
	var n int64
	for _, t := range m.VS.Variables() {
		n += int64(t.Numel())
	}
	return n
}
