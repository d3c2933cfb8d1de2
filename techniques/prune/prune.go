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
//     neurons, ranked by the L1 or L2 norm of their weights or by a
//     first-order Taylor score on calibration images. The pruned units are
//     physically removed (rows of qkv and fc1, columns of proj and fc2), so
//     parameters, MACs and latency drop; blocks may keep different numbers
//     of heads.
//   - tokens: token reduction, ToMe merging of r tokens per block or EViT
//     keeping of the most attended tokens (see vit.TokenReduction); no
//     weight changes and no training unless fine-tuning is asked for.
//
// Any kind may be followed by fine-tuning (finetune_epochs), optionally
// distilled from a teacher of the suite.
//
// The algorithms (Unstructured, Score, Select, Shrink, ReduceTokens) take
// plain arguments and the model; Apply joins them to a stage's Config.
package prune

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/train"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/techniques"
)

// Kinds of pruning.
const (
	KindUnstructured = "unstructured"
	KindHeads        = "heads"
	KindMLP          = "mlp"
	KindTokens       = "tokens"
)

// Token reduction methods.
const (
	MethodToMe = "tome"
	MethodEViT = "evit"
)

// Importance criteria of structured pruning.
const (
	ImportanceL1     = "l1"
	ImportanceL2     = "l2"
	ImportanceTaylor = "taylor"
)

// Config is the parameters of a prune stage.
type Config struct {
	// Kind is "unstructured", "heads", "mlp" or "tokens".
	Kind string `toml:"kind"`
	// Amount is the fraction pruned: the sparsity of the pruned weights
	// (unstructured), or the fraction of each block's heads or MLP neurons
	// removed (heads, mlp), round(amount x count) of them, rounding half
	// away from zero, at most count - 1 so that one always remains. Unused
	// by tokens. In [0, 1); default 0.5.
	Amount float64 `toml:"amount"`
	// Scope is "layer" (default: every layer, or every block, loses the
	// same fraction) or "global" (the weights, or units, of all layers
	// compete; per-block counts then differ). For global structured
	// pruning by l1 or l2, each block's scores are divided by their mean
	// first, so that blocks of different scales compare.
	Scope string `toml:"scope"`
	// Layers lists the layer groups unstructured pruning touches among
	// "qkv", "proj", "fc1", "fc2" and "head"; default the first four.
	// Factored (low-rank) layers are left alone.
	Layers []string `toml:"layers"`
	// Schedule is "one-shot" (default) or "iterative": Steps steps, step
	// t of S pruning to amount x (1 - (1 - t/S)^3) (Zhu and Gupta's cubic
	// schedule), each followed by finetune_epochs / S epochs of
	// fine-tuning.
	Schedule string `toml:"schedule"`
	Steps    int    `toml:"steps"` // iterative: default 4
	// Importance ranks heads and neurons: "l1" (default), "l2" (norms of
	// their weights: the q, k, v rows and proj columns of a head; the fc1
	// row, bias and fc2 column of a neuron) or "taylor" (sum of |w x dL/dw|
	// over the same weights, with the gradient of the cross-entropy against
	// the model's own predictions, summed over calib_images images of the
	// calibration split).
	Importance  string `toml:"importance"`
	CalibImages int    `toml:"calib_images"` // taylor: default 256
	// Method of token reduction: "tome" (default) or "evit".
	Method string `toml:"method"`
	// MergeR is ToMe's r, the tokens merged away in each reducing block
	// (0 merges nothing); default 8.
	MergeR int `toml:"merge_r"`
	// KeepRate is EViT's fraction of the patch tokens kept in each
	// reducing block, in (0, 1]; default 0.7.
	KeepRate float64 `toml:"keep_rate"`
	// Blocks are the (0-based) blocks that reduce tokens; default all of
	// them for ToMe and, as EViT does (blocks 3, 6 and 9 of 12), the blocks
	// at a quarter, half and three quarters of the depth for EViT.
	Blocks []int `toml:"blocks"`
	// FinetuneEpochs of training after pruning (0, the default, for none).
	FinetuneEpochs float64 `toml:"finetune_epochs"`
	// LR of the fine-tuning; 0 keeps the model's recipe's peak rate, which
	// re-warms a converged model: a tenth of it is the usual choice.
	LR float64 `toml:"lr"`
	// Teacher, when set, names a model or experiment of the suite that the
	// fine-tuning distills from (soft targets at Temperature, weight
	// Alpha; defaults 4 and 0.5).
	Teacher     string  `toml:"teacher"`
	Temperature float64 `toml:"temperature"`
	Alpha       float64 `toml:"alpha"`
}

// NewConfig returns a Config holding the defaults.
func NewConfig() *Config {
	return &Config{
		Kind:        KindUnstructured,
		Amount:      0.5,
		Scope:       "layer",
		Layers:      []string{"qkv", "proj", "fc1", "fc2"},
		Schedule:    "one-shot",
		Steps:       4,
		Importance:  ImportanceL1,
		CalibImages: 256,
		Method:      MethodToMe,
		MergeR:      8,
		KeepRate:    0.7,
		Temperature: 4,
		Alpha:       0.5,
	}
}

// Name is the technique's registered name.
func (c *Config) Name() string { return "prune" }

// Validate checks the parameters.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	oneOf := func(key, v string, allowed ...string) {
		if !slices.Contains(allowed, v) {
			bad("%s %q: want one of %s", key, v, strings.Join(allowed, ", "))
		}
	}
	oneOf("kind", c.Kind, KindUnstructured, KindHeads, KindMLP, KindTokens)
	if c.Amount < 0 || c.Amount >= 1 {
		bad("amount must be in [0, 1), got %g", c.Amount)
	}
	oneOf("scope", c.Scope, "layer", "global")
	for _, l := range c.Layers {
		oneOf("layers element", l, "qkv", "proj", "fc1", "fc2", "head")
	}
	if c.Kind == KindUnstructured && len(c.Layers) == 0 {
		bad("layers is empty: nothing to prune")
	}
	oneOf("schedule", c.Schedule, "one-shot", "iterative")
	if c.Schedule == "iterative" {
		if c.Kind == KindTokens {
			bad("schedule iterative applies to unstructured, heads and mlp, not tokens")
		}
		if c.Steps < 1 {
			bad("steps must be >= 1, got %d", c.Steps)
		}
		if c.FinetuneEpochs <= 0 {
			bad("schedule iterative needs finetune_epochs > 0 (without training between steps it is one-shot)")
		}
	}
	oneOf("importance", c.Importance, ImportanceL1, ImportanceL2, ImportanceTaylor)
	if c.Importance == ImportanceTaylor && c.CalibImages < 1 {
		bad("calib_images must be >= 1 for taylor importance, got %d", c.CalibImages)
	}
	oneOf("method", c.Method, MethodToMe, MethodEViT)
	if c.MergeR < 0 {
		bad("merge_r must be >= 0, got %d", c.MergeR)
	}
	if c.KeepRate <= 0 || c.KeepRate > 1 {
		bad("keep_rate must be in (0, 1], got %g", c.KeepRate)
	}
	for _, b := range c.Blocks {
		if b < 0 {
			bad("blocks: negative block index %d", b)
		}
	}
	if c.FinetuneEpochs < 0 {
		bad("finetune_epochs must be >= 0, got %g", c.FinetuneEpochs)
	}
	if c.LR < 0 {
		bad("lr must be >= 0, got %g", c.LR)
	}
	if c.Teacher != "" && c.FinetuneEpochs <= 0 {
		bad("teacher %q is used only by fine-tuning: set finetune_epochs > 0", c.Teacher)
	}
	if c.Temperature <= 0 {
		bad("temperature must be > 0, got %g", c.Temperature)
	}
	if c.Alpha < 0 || c.Alpha > 1 {
		bad("alpha must be in [0, 1], got %g", c.Alpha)
	}
	return errors.Join(errs...)
}

// References names the teacher, when there is one (config.Referencer).
func (c *Config) References() []string {
	if c.Teacher == "" {
		return nil
	}
	return []string{c.Teacher}
}

func init() {
	techniques.Register(techniques.Technique{
		Name:      "prune",
		Family:    "prune",
		NewConfig: func() techniques.Config { return NewConfig() },
		Apply:     Apply,
	})
}

// Apply prunes m as cfg (a *Config) asks. Unstructured pruning changes m in
// place and returns it; structured pruning and token reduction return a
// new model (the caller drops m).
func Apply(ctx context.Context, cfg techniques.Config, m *vit.Model, env techniques.Env) (*vit.Model, error) {
	c, ok := cfg.(*Config)
	if !ok {
		return nil, fmt.Errorf("prune: config is %T, not *prune.Config", cfg)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var teacher *vit.Model
	if c.Teacher != "" {
		t, err := env.Model(ctx, c.Teacher)
		if err != nil {
			return nil, fmt.Errorf("teacher: %w", err)
		}
		defer t.Drop()
		teacher = t
	}
	fineTune := func(m *vit.Model, epochs float64) error {
		if epochs <= 0 {
			return nil
		}
		ft := techniques.FineTune{Epochs: epochs, LR: c.LR, AfterStep: KeepMasks(m)}
		if teacher != nil {
			ft.Loss = train.KD{Teacher: teacher, Temperature: c.Temperature, Alpha: c.Alpha}
		}
		return env.FineTune(ctx, m, ft)
	}
	steps := 1
	if c.Schedule == "iterative" {
		steps = c.Steps
	}
	switch c.Kind {
	case KindUnstructured:
		for t := 1; t <= steps; t++ {
			amount := Cubic(c.Amount, t, steps)
			got, err := Unstructured(m, UnstructuredOptions{Amount: amount, Global: c.Scope == "global", Groups: c.Layers})
			if err != nil {
				return nil, err
			}
			env.Logf("prune step %d/%d: sparsity %.4f (asked %.4f)", t, steps, got, amount)
			if err := fineTune(m, c.FinetuneEpochs/float64(steps)); err != nil {
				return nil, err
			}
		}
		return m, nil
	case KindHeads, KindMLP:
		return structured(ctx, c, m, env, steps, fineTune)
	case KindTokens:
		o := TokenOptions{Method: c.Method, MergeR: c.MergeR, KeepRate: c.KeepRate, Blocks: c.Blocks}
		out, err := ReduceTokens(m, o)
		if err != nil {
			return nil, err
		}
		env.Logf("token reduction %s: %d tokens in, %d after the last block", c.Method, m.Cfg.NumTokens(), FinalTokens(out.Cfg))
		if err := fineTune(out, c.FinetuneEpochs); err != nil {
			out.Drop()
			return nil, err
		}
		return out, nil
	}
	return nil, fmt.Errorf("prune: unknown kind %q", c.Kind)
}

// structured removes heads or MLP neurons in steps, scoring the units of
// the current model at every step.
func structured(ctx context.Context, c *Config, m *vit.Model, env techniques.Env, steps int, fineTune func(*vit.Model, float64) error) (*vit.Model, error) {
	var calib []*ts.Tensor
	if c.Importance == ImportanceTaylor {
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
	heads := c.Kind == KindHeads
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
		imp, err := Score(cur, c.Importance, calib)
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
			if c.Importance != ImportanceTaylor {
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
		if err := fineTune(cur, c.FinetuneEpochs/float64(steps)); err != nil {
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
