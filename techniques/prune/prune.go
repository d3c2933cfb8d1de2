// Package prune is vitbench's pruning technique, registered as "prune"
// (family "prune"). One stage does one kind of pruning:
//
//   - unstructured: magnitude pruning of the weights of the linear layers
//     (qkv, proj, fc1, fc2 by default), over all of them at once (global)
//     or layer by layer, in one shot or gradually (a cubic schedule with
//     fine-tuning between steps). The achieved sparsity is the requested
//     one, rounded to a whole number of weights. Pruned weights stay zero
//     during fine-tuning: the masks (vit.Linear.Mask) are re-applied after
//     every optimizer step. The model keeps its dense shape: its parameter
//     count is unchanged and only its non-zero count and effective MACs
//     drop.
//   - heads and mlp: structured pruning of attention heads and MLP hidden
//     neurons, ranked by the L1 or L2 norm of their weights, by a
//     first-order Taylor score on calibration images (Molchanov et al.),
//     or by masks learned under an L1 penalty (ViT-Slim's search). The pruned units are
//     physically removed (rows of qkv and fc1, columns of proj and fc2), so
//     parameters, MACs and latency drop; blocks may keep different numbers
//     of heads.
//   - tokens: token reduction, ToMe merging of r tokens per block or EViT
//     keeping of the most attended tokens (see vit.TokenReduction); no
//     weight changes. ToMe trains only when finetune_epochs is set; evit,
//     as the paper, fine-tunes with the reduction in place (Validate
//     requires finetune_epochs > 0); evit-trainfree applies EViT's
//     reduction without training.
//
// Any kind may be followed by fine-tuning (finetune_epochs), optionally
// distilled from a teacher of the suite.
//
// Its parameters are techniques.PruneConfig. The algorithms
// (Unstructured, Score, Select, Shrink, ReduceTokens) take plain
// arguments and the model; Apply joins them to a stage's Config.
package prune

import (
	"context"
	"fmt"
	"math"

	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/techniques"
	"github.com/vitbench/vitbench/techniques/compress"
)

func init() {
	compress.Register(techniques.Prune, Apply)
}

// Apply prunes m as cfg (a *Config) asks. Unstructured pruning changes m in
// place and returns it; structured pruning and token reduction return a
// new model (the caller drops m).
func Apply(ctx context.Context, c *techniques.PruneConfig, m *vit.Model, env compress.Env) (*vit.Model, error) {
	tuner, err := compress.NewFineTuner(ctx, env, c.FineTune)
	if err != nil {
		return nil, err
	}
	defer tuner.Close()
	fineTune := func(m *vit.Model, epochs float64) error {
		return tuner.Run(ctx, m, epochs)
	}
	steps := 1
	if c.Schedule == "iterative" {
		steps = c.Steps
	}
	switch c.Kind {
	case techniques.KindUnstructured:
		for t := 1; t <= steps; t++ {
			amount := Cubic(c.Amount, t, steps)
			got, err := Unstructured(m, UnstructuredOptions{Amount: amount, Global: c.Scope == "global", Groups: c.Layers})
			if err != nil {
				return nil, err
			}
			env.Logf("prune step %d/%d: sparsity %.4f (asked %.4f)", t, steps, got, amount)
			if err := fineTune(m, c.Epochs/float64(steps)); err != nil {
				return nil, err
			}
		}
		return m, nil
	case techniques.KindHeads, techniques.KindMLP:
		return structured(ctx, c, m, env, steps, fineTune)
	case techniques.KindTokens:
		o := TokenOptions{Method: c.Method, MergeR: c.MergeR, KeepRate: c.KeepRate, Blocks: c.Blocks}
		out, err := ReduceTokens(m, o)
		if err != nil {
			return nil, err
		}
		env.Logf("token reduction %s: %d tokens in, %d after the last block", c.Method, m.Cfg.NumTokens(), FinalTokens(out.Cfg))
		if err := fineTune(out, c.Epochs); err != nil {
			out.Drop()
			return nil, err
		}
		return out, nil
	}
	return nil, fmt.Errorf("prune: unknown kind %q", c.Kind)
}

// structured removes heads or MLP neurons in steps, scoring the units of
// the current model at every step.
func structured(ctx context.Context, c *techniques.PruneConfig, m *vit.Model, env compress.Env, steps int, fineTune func(*vit.Model, float64) error) (*vit.Model, error) {
	var calib []*ts.Tensor
	if c.NeedsCalibration() {
		var err error
		if calib, err = env.Calibration(ctx, c.CalibImages); err != nil {
			return nil, fmt.Errorf("calibration images: %w", err)
		}
		defer func() {
			for _, x := range calib {
				x.MustDrop()
			}
		}()
	}
	heads := c.Kind == techniques.KindHeads
	orig := unitCounts(m.Cfg, heads)
	cur := m
	fail := func(err error) (*vit.Model, error) {
		if cur != m {
			cur.Drop()
		}
		return nil, err
	}
	for t := 1; t <= steps; t++ {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		var imp *Importance
		var err error
		if c.Importance == techniques.ImportanceSoftMask {
			imp, err = searchSoftMasks(ctx, env, cur, nil, c.MaskEpochs, c.MaskL1, c.LR)
		} else {
			imp, err = Score(cur, c.Importance, calib)
		}
		if err != nil {
			return fail(err)
		}
		scores := imp.Neurons
		if heads {
			scores = imp.Heads
		}
		amount := Cubic(c.Amount, t, steps)
		var keep [][]int
		if c.Scope == "global" {
			if c.Importance == techniques.ImportanceL1 || c.Importance == techniques.ImportanceL2 {
				scores = normalizeBlocks(scores)
			}
			keep = removeGlobal(scores, max(0, RemovedCount(amount, sum(orig))-(sum(orig)-sum(lens(scores)))))
		} else {
			remove := make([]int, len(scores))
			for i := range scores {
				remove[i] = max(0, RemovedCount(amount, orig[i])-(orig[i]-len(scores[i])))
			}
			keep = removePerBlock(scores, remove)
		}
		var next *vit.Model
		if heads {
			next, err = Shrink(cur, keep, nil)
		} else {
			next, err = Shrink(cur, nil, keep)
		}
		if err != nil {
			return fail(err)
		}
		if cur != m {
			cur.Drop()
		}
		cur = next
		env.Logf("prune step %d/%d: %s kept per block %v", t, steps, c.Kind, lens(keep))
		if err := fineTune(cur, c.Epochs/float64(steps)); err != nil {
			return fail(err)
		}
	}
	return cur, nil
}

// unitCounts is every block's number of heads (or MLP neurons).
func unitCounts(c vit.Config, heads bool) []int {
	out := make([]int, c.Depth)
	for i := range out {
		if b := c.Block(i); heads {
			out[i] = b.Heads
		} else {
			out[i] = b.MLPHidden
		}
	}
	return out
}

func lens[T any](s [][]T) []int {
	out := make([]int, len(s))
	for i := range s {
		out[i] = len(s[i])
	}
	return out
}

func sum(s []int) int {
	n := 0
	for _, v := range s {
		n += v
	}
	return n
}

// Cubic is the sparsity at step t (1-based) of steps under Zhu and Gupta's
// gradual schedule to final: final x (1 - (1 - t/steps)^3). The last step
// reaches final; one step is one-shot.
func Cubic(final float64, t, steps int) float64 {
	if steps <= 1 || t >= steps {
		return final
	}
	f := 1 - float64(t)/float64(steps)
	return final * (1 - f*f*f)
}

// RemovedCount is how many of n units a fraction removes: round(amount x
// n), rounding half away from zero, at most n - 1.
func RemovedCount(amount float64, n int) int {
	k := int(math.Round(amount * float64(n)))
	return max(0, min(k, n-1))
}
