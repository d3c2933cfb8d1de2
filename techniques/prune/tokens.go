package prune

import (
	"fmt"

	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/techniques"
)

// TokenOptions steer ReduceTokens.
type TokenOptions struct {
	Method   string  // "tome", "evit" or "evit-trainfree" (the same reduction)
	MergeR   int     // tome: tokens merged away per reducing block
	KeepRate float64 // evit: fraction of the patch tokens kept per reducing block
	// Blocks reduce tokens; nil means every block for ToMe and EViT's
	// locations (DefaultEViTBlocks) for EViT.
	Blocks []int
}

// DefaultEViTBlocks are the blocks where EViT reduces tokens in a model of
// the given depth: the paper's locations (the 4th, 7th and 10th of DeiT's
// 12 blocks, 0-based 3, 6 and 9: a quarter, half and three quarters of the
// way) scaled to the depth and rounded down, without repeats. Each
// reducing block runs its attention on the tokens it receives and its MLP
// on the kept ones, as in EViT.
func DefaultEViTBlocks(depth int) []int {
	var out []int
	for q := 1; q <= 3; q++ {
		b := depth * q / 4
		if len(out) == 0 || out[len(out)-1] != b {
			out = append(out, b)
		}
	}
	return out
}

// ReduceTokens returns m rebuilt with token reduction in the chosen
// blocks (vit.BlockConfig.MergeR or KeepRate, replacing what those blocks
// had), the weights unchanged. The new model's counts follow the token
// count of every block.
func ReduceTokens(m *vit.Model, o TokenOptions) (*vit.Model, error) {
	evit := techniques.IsEViT(o.Method)
	if o.Method != techniques.MethodToMe && !evit {
		return nil, fmt.Errorf("prune: unknown token reduction method %q (tome, evit, evit-trainfree)", o.Method)
	}
	cfg := m.Cfg.WithBlocks()
	blocks := o.Blocks
	if blocks == nil {
		if evit {
			blocks = DefaultEViTBlocks(cfg.Depth)
		} else {
			for i := range cfg.Blocks {
				blocks = append(blocks, i)
			}
		}
	}
	for _, b := range blocks {
		if b < 0 || b >= cfg.Depth {
			return nil, fmt.Errorf("prune: block %d out of range for depth %d", b, cfg.Depth)
		}
		if evit {
			if o.KeepRate <= 0 || o.KeepRate > 1 {
				return nil, fmt.Errorf("prune: keep_rate %g outside (0, 1]", o.KeepRate)
			}
			cfg.Blocks[b].KeepRate = o.KeepRate
		} else {
			if o.MergeR < 0 {
				return nil, fmt.Errorf("prune: merge_r %d < 0", o.MergeR)
			}
			cfg.Blocks[b].MergeR = o.MergeR
		}
	}
	return Rebuild(m, cfg)
}

// FinalTokens is the number of tokens leaving the last block of c.
func FinalTokens(c vit.Config) int {
	n := c.NumTokens()
	for i := 0; i < c.Depth; i++ {
		n = c.Block(i).TokensAfter(n, c.NumPrefix())
	}
	return n
}
