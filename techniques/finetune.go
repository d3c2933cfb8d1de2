package techniques

import "slices"

// Kinds of distillation loss (FineTune.KDKind).
const (
	KDSoft = "soft" // (1-alpha) CE(s, y) + alpha T^2 KL(softmax(t/T) || softmax(s/T))
	KDHard = "hard" // (1-alpha) CE(s, y) + alpha CE(s, argmax t), DeiT's hard distillation
)

// FineTune is the training every technique that trains shares: the
// fine-tune after pruning or factoring, quantization-aware training, and
// distillation itself. Each such Config embeds it, so a suite spells the
// recipe one way whatever the technique.
type FineTune struct {
	// Epochs of training after the technique; 0 trains nothing (distill
	// requires > 0). For precision int quantization this is QAT, with a
	// straight-through estimator.
	Epochs float64 `toml:"finetune_epochs"`
	// LR is the peak learning rate; 0 keeps the model's recipe's, which
	// re-warms a converged model: a tenth of it is the usual choice.
	LR float64 `toml:"lr"`
	// Teacher names a model or experiment of the suite to distil from;
	// empty trains on the labels alone.
	Teacher string `toml:"teacher"`
	// KDTemperature T of the teacher's soft targets (> 0).
	KDTemperature float64 `toml:"kd_temperature"`
	// KDAlpha weighs the teacher's term against the labels', in [0, 1].
	KDAlpha float64 `toml:"kd_alpha"`
	// KDKind is KDSoft or KDHard.
	KDKind string `toml:"kd_kind"`
	// LabelSmoothing of the label term when distilling, in [0, 1);
	// without a teacher the model's recipe's smoothing applies.
	LabelSmoothing float64 `toml:"label_smoothing"`
}

// Default fine-tune parameters.
const (
	DefaultKDTemperature = 4
	DefaultKDAlpha       = 0.5
)

// NewFineTune returns the defaults: no training, soft distillation at
// T = 4 and alpha = 0.5 when a teacher is named.
func NewFineTune() FineTune {
	return FineTune{KDTemperature: DefaultKDTemperature, KDAlpha: DefaultKDAlpha, KDKind: KDSoft}
}

// Validate checks the block's ranges; a teacher needs epochs to train.
func (f *FineTune) Validate() error {
	var v invalid
	f.check(&v)
	return v.err("the fine-tune")
}

func (f *FineTune) check(v *invalid) {
	if f.Epochs < 0 || f.Epochs > 1000 {
		v.add("finetune_epochs %g: want 0..1000", f.Epochs)
	}
	if f.LR < 0 {
		v.add("lr %g: want >= 0", f.LR)
	}
	if f.Teacher != "" && f.Epochs == 0 {
		v.add("teacher %q is used by fine-tuning only: set finetune_epochs", f.Teacher)
	}
	if !(f.KDTemperature > 0) {
		v.add("kd_temperature %g: want > 0", f.KDTemperature)
	}
	if !(f.KDAlpha >= 0 && f.KDAlpha <= 1) {
		v.add("kd_alpha %g: want [0, 1]", f.KDAlpha)
	}
	if !slices.Contains([]string{KDSoft, KDHard}, f.KDKind) {
		v.add("kd_kind %q: want soft or hard", f.KDKind)
	}
	if !(f.LabelSmoothing >= 0 && f.LabelSmoothing < 1) {
		v.add("label_smoothing %g: want [0, 1)", f.LabelSmoothing)
	}
	if f.LabelSmoothing > 0 && f.Teacher == "" {
		v.add("label_smoothing %g smooths the label term of distillation: set teacher (without one the model's recipe's smoothing applies)", f.LabelSmoothing)
	}
}

// References names the teacher, if any (config.Referencer): the suite
// checks it is declared, builds it first and hashes it into the stage.
func (f *FineTune) References() []string {
	if f.Teacher == "" {
		return nil
	}
	return []string{f.Teacher}
}

// TrainingEpochs is the fine-tune's length (Trainer), for every Config
// that embeds FineTune.
func (f FineTune) TrainingEpochs() float64 { return f.Epochs }
