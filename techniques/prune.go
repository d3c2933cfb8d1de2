package techniques

// Kinds of pruning.
const (
	KindUnstructured = "unstructured"
	KindHeads        = "heads"
	KindMLP          = "mlp"
	KindTokens       = "tokens"
)

// Token reduction methods. EViT keeps the most attended tokens at the
// paper's relative depths; "evit" is the paper's recipe, which trains the
// model with the reduction in place (here: fine-tuning after the keep rate
// is applied, finetune_epochs > 0), and "evit-trainfree" applies the same
// reduction to the trained model without training (finetune_epochs 0).
const (
	MethodToMe          = "tome"
	MethodEViT          = "evit"
	MethodEViTTrainFree = "evit-trainfree"
)

// IsEViT reports whether a token reduction method is EViT's, fine-tuned
// or training-free.
func IsEViT(method string) bool {
	return method == MethodEViT || method == MethodEViTTrainFree
}

// Importance criteria of structured pruning.
const (
	ImportanceL1        = "l1"
	ImportanceL2        = "l2"
	ImportanceTaylor    = "taylor"     // Molchanov et al. 2019: (sum of g·w over the group)², summed over batches
	ImportanceTaylorAbs = "taylor-abs" // sum of |g·w| over the group's weights
	ImportanceSoftMask  = "soft-mask"  // ViT-Slim: learned masks under an L1 penalty
)

// needsCalibration reports whether an importance criterion needs
// calibration images (a gradient).
func needsCalibration(importance string) bool {
	return importance == ImportanceTaylor || importance == ImportanceTaylorAbs
}

// NeedsCalibration: see needsCalibration.
func (c *PruneConfig) NeedsCalibration() bool { return needsCalibration(c.Importance) }

// PruneGroups are the layer groups unstructured pruning can touch.
var PruneGroups = []string{"qkv", "proj", "fc1", "fc2", "head"}

// PruneConfig is the parameters of a prune stage: one kind of pruning,
// then the fine-tune block.
type PruneConfig struct {
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
	// PruneGroups; default all but the head. Factored (low-rank) layers
	// are left alone.
	Layers []string `toml:"layers"`
	// Schedule is "one-shot" (default) or "iterative": Steps steps, step
	// t of S pruning to amount x (1 - (1 - t/S)^3) (Zhu and Gupta's cubic
	// schedule), each followed by finetune_epochs / S epochs of
	// fine-tuning.
	Schedule string `toml:"schedule"`
	Steps    int    `toml:"steps"` // iterative: default 4
	// Importance ranks heads and neurons: "l1" (default), "l2" (norms of
	// their weights: the q, k, v rows and proj columns of a head; the fc1
	// row, bias and fc2 column of a neuron), "taylor" (Molchanov et al.
	// 2019, which NViT builds on: the square of the sum of w x dL/dw over
	// the same weights, per calibration batch, summed over the batches) or
	// "taylor-abs" (the sum of |w x dL/dw| over them); the gradient is that
	// of the cross-entropy against the model's own predictions over
	// calib_images images of the calibration split.
	Importance  string `toml:"importance"`
	CalibImages int    `toml:"calib_images"` // taylor: default 256
	// MaskEpochs and MaskL1 drive importance "soft-mask" (ViT-Slim): a
	// mask of one per head and per MLP neuron, multiplying its output, is
	// trained with the model for mask_epochs under the loss plus mask_l1
	// x the sum of |mask|; the units whose masks end smallest are removed
	// after the masks are folded into the weights. Defaults 0.2 and 1e-4.
	MaskEpochs float64 `toml:"mask_epochs"`
	MaskL1     float64 `toml:"mask_l1"`
	// Method of token reduction: "tome" (default, training-free unless
	// finetune_epochs is set), "evit" (EViT as the paper runs it: the
	// reduction, then fine-tuning; finetune_epochs must be > 0) or
	// "evit-trainfree" (the same reduction without training;
	// finetune_epochs must be 0).
	Method string `toml:"method"`
	// MergeR is ToMe's r, the tokens merged away in each reducing block
	// (0 merges nothing); default 8.
	MergeR int `toml:"merge_r"`
	// KeepRate is EViT's fraction of the patch tokens kept in each
	// reducing block, in (0, 1]; default 0.7.
	KeepRate float64 `toml:"keep_rate"`
	// Blocks are the (0-based) blocks that reduce tokens; default all of
	// them for ToMe and, for EViT, the paper's relative depths (the 4th,
	// 7th and 10th of DeiT's 12 blocks, 0-based 3, 6 and 9) scaled to the
	// model's depth: blocks depth/4, depth/2 and 3*depth/4, rounded down
	// (1, 2 and 3 of 4).
	Blocks []int `toml:"blocks"`
	FineTune
}

// NewPruneConfig returns the defaults: one-shot unstructured pruning of
// half the weights of qkv, proj, fc1 and fc2, layer by layer.
func NewPruneConfig() *PruneConfig {
	return &PruneConfig{
		Kind:        KindUnstructured,
		Amount:      0.5,
		Scope:       "layer",
		Layers:      []string{"qkv", "proj", "fc1", "fc2"},
		Schedule:    "one-shot",
		Steps:       4,
		Importance:  ImportanceL1,
		CalibImages: 256,
		Method:      MethodToMe,
		MaskEpochs:  0.2,
		MaskL1:      1e-4,
		MergeR:      8,
		KeepRate:    0.7,
		FineTune:    NewFineTune(),
	}
}

// Validate checks the parameters.
func (c *PruneConfig) Validate() error {
	var v invalid
	v.oneOf("kind", c.Kind, KindUnstructured, KindHeads, KindMLP, KindTokens)
	if c.Amount < 0 || c.Amount >= 1 {
		v.add("amount %g: want [0, 1)", c.Amount)
	}
	v.oneOf("scope", c.Scope, "layer", "global")
	for _, l := range c.Layers {
		v.oneOf("layers element", l, PruneGroups...)
	}
	if c.Kind == KindUnstructured && len(c.Layers) == 0 {
		v.add("layers is empty: nothing to prune")
	}
	v.oneOf("schedule", c.Schedule, "one-shot", "iterative")
	if c.Schedule == "iterative" {
		if c.Kind == KindTokens {
			v.add("schedule iterative applies to unstructured, heads and mlp, not tokens")
		}
		if c.Steps < 1 {
			v.add("steps %d: want >= 1", c.Steps)
		}
		if c.Epochs <= 0 {
			v.add("schedule iterative needs finetune_epochs > 0 (without training between steps it is one-shot)")
		}
	}
	v.oneOf("importance", c.Importance, ImportanceL1, ImportanceL2, ImportanceTaylor, ImportanceTaylorAbs, ImportanceSoftMask)
	if c.Importance == ImportanceSoftMask {
		if !(c.MaskEpochs > 0) {
			v.add("mask_epochs %g: want > 0 for soft-mask importance (the masks are learned)", c.MaskEpochs)
		}
		if !(c.MaskL1 > 0) {
			v.add("mask_l1 %g: want > 0", c.MaskL1)
		}
		if c.Schedule == "iterative" {
			v.add("soft-mask importance is learned once: schedule one-shot")
		}
	}
	if needsCalibration(c.Importance) && c.CalibImages < 1 {
		v.add("calib_images %d: want >= 1 for %s importance", c.CalibImages, c.Importance)
	}
	v.oneOf("method", c.Method, MethodToMe, MethodEViT, MethodEViTTrainFree)
	if c.Kind == KindTokens {
		switch {
		case c.Method == MethodEViT && c.Epochs == 0:
			v.add("method evit fine-tunes after the keep rate is applied, as the paper trains with it: set finetune_epochs > 0, or use method evit-trainfree")
		case c.Method == MethodEViTTrainFree && c.Epochs > 0:
			v.add("method evit-trainfree trains nothing, but finetune_epochs is %g: use method evit", c.Epochs)
		}
	}
	if c.MergeR < 0 {
		v.add("merge_r %d: want >= 0", c.MergeR)
	}
	if c.KeepRate <= 0 || c.KeepRate > 1 {
		v.add("keep_rate %g: want (0, 1]", c.KeepRate)
	}
	for _, b := range c.Blocks {
		if b < 0 {
			v.add("blocks: negative block index %d", b)
		}
	}
	c.FineTune.check(&v)
	return v.err(Prune)
}

// TrainingEpochs counts the soft-mask search's epochs beside the
// fine-tune's (Trainer); the search runs only for that importance.
func (c *PruneConfig) TrainingEpochs() float64 {
	e := c.FineTune.Epochs
	if c.Importance == ImportanceSoftMask {
		e += c.MaskEpochs
	}
	return e
}
