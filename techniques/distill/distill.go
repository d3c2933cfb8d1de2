// Package distill is vitbench's knowledge-distillation technique,
// registered as "distill" (family "distill"). A distill stage fine-tunes
// the incoming model, the student (a declared model, or the compressed
// model of the previous stage: KD-assisted recovery after pruning or
// low-rank factorisation), against a teacher that is any model or
// experiment of the suite:
//
//	soft: (1-alpha) CE(student, y) + alpha T^2 KL(softmax(t/T) || softmax(s/T))
//	hard: (1-alpha) CE(student, y) + alpha CE(student, argmax t)   (DeiT's hard distillation)
//
// with KL averaged over the batch. The teacher runs under no-grad, once per
// batch, and receives no gradient. A student with a distillation token
// (vit.Config.Distilled) learns the labels with its class head and the
// teacher with its distillation head, as in DeiT. The loss is train.KD;
// this package joins it to a stage's parameters.
//
// A student pruned without structure keeps its zeros: the pruning masks
// are re-applied after every step, as the prune stage's fine-tuning does.
package distill

import (
	"context"
	"errors"
	"fmt"

	"github.com/vitbench/vitbench/harness/train"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/techniques"
)

// Kinds of distillation.
const (
	KindSoft = "soft"
	KindHard = "hard"
)

// Config is the parameters of a distill stage.
type Config struct {
	// Teacher names a model or experiment of the suite (required).
	Teacher string `toml:"teacher"`
	// Temperature T of the soft targets; default 4.
	Temperature float64 `toml:"temperature"`
	// Alpha weighs the teacher's term against the labels', in [0, 1];
	// default 0.5.
	Alpha float64 `toml:"alpha"`
	// Kind is "soft" (default) or "hard".
	Kind string `toml:"kind"`
	// Epochs of training; default 1.
	Epochs float64 `toml:"epochs"`
	// LR is the peak learning rate; 0 keeps the student's recipe's, which
	// re-warms a converged student: a tenth of it is the usual choice.
	LR float64 `toml:"lr"`
	// LabelSmoothing of the label term; default 0.
	LabelSmoothing float64 `toml:"label_smoothing"`
}

// NewConfig returns a Config holding the defaults.
func NewConfig() *Config {
	return &Config{Temperature: 4, Alpha: 0.5, Kind: KindSoft, Epochs: 1}
}

// Name is the technique's registered name.
func (c *Config) Name() string { return "distill" }

// Validate checks the parameters.
func (c *Config) Validate() error {
	var errs []error
	if c.Teacher == "" {
		errs = append(errs, errors.New("teacher is required: name a model or experiment of the suite"))
	}
	if c.Temperature <= 0 {
		errs = append(errs, fmt.Errorf("temperature must be > 0, got %g", c.Temperature))
	}
	if c.Alpha < 0 || c.Alpha > 1 {
		errs = append(errs, fmt.Errorf("alpha must be in [0, 1], got %g", c.Alpha))
	}
	if c.Kind != KindSoft && c.Kind != KindHard {
		errs = append(errs, fmt.Errorf("kind %q: want soft or hard", c.Kind))
	}
	if c.Epochs <= 0 {
		errs = append(errs, fmt.Errorf("epochs must be > 0, got %g", c.Epochs))
	}
	if c.LR < 0 {
		errs = append(errs, fmt.Errorf("lr must be >= 0, got %g", c.LR))
	}
	if c.LabelSmoothing < 0 || c.LabelSmoothing >= 1 {
		errs = append(errs, fmt.Errorf("label_smoothing must be in [0, 1), got %g", c.LabelSmoothing))
	}
	return errors.Join(errs...)
}

// References names the teacher (config.Referencer): the suite checks it
// is declared, builds it first and hashes it into this stage's artifact.
func (c *Config) References() []string {
	if c.Teacher == "" {
		return nil
	}
	return []string{c.Teacher}
}

// Loss returns the distillation loss for teacher.
func (c *Config) Loss(teacher *vit.Model) train.KD {
	return train.KD{Teacher: teacher, Temperature: c.Temperature, Alpha: c.Alpha,
		Hard: c.Kind == KindHard, Smoothing: c.LabelSmoothing}
}

func init() {
	techniques.Register(techniques.Technique{
		Name:      "distill",
		Family:    "distill",
		NewConfig: func() techniques.Config { return NewConfig() },
		Apply:     Apply,
	})
}

// Apply distills the teacher into m in place and returns m.
func Apply(ctx context.Context, cfg techniques.Config, m *vit.Model, env techniques.Env) (*vit.Model, error) {
	c, ok := cfg.(*Config)
	if !ok {
		return nil, fmt.Errorf("distill: config is %T, not *distill.Config", cfg)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	teacher, err := env.Model(ctx, c.Teacher)
	if err != nil {
		return nil, fmt.Errorf("teacher %s: %w", c.Teacher, err)
	}
	defer teacher.Drop()
	if teacher.Cfg.NumClasses != m.Cfg.NumClasses {
		return nil, fmt.Errorf("teacher %s has %d classes, the student %d", c.Teacher, teacher.Cfg.NumClasses, m.Cfg.NumClasses)
	}
	if teacher.Cfg.ImgSize != m.Cfg.ImgSize || teacher.Cfg.InChans != m.Cfg.InChans {
		return nil, fmt.Errorf("teacher %s takes %dx%dx%d images, the student %dx%dx%d", c.Teacher,
			teacher.Cfg.InChans, teacher.Cfg.ImgSize, teacher.Cfg.ImgSize, m.Cfg.InChans, m.Cfg.ImgSize, m.Cfg.ImgSize)
	}
	env.Logf("distill from %s: %s, T=%g, alpha=%g, %g epochs", c.Teacher, c.Kind, c.Temperature, c.Alpha, c.Epochs)
	ft := techniques.FineTune{Epochs: c.Epochs, LR: c.LR, Loss: c.Loss(teacher), AfterStep: keepMasks(m)}
	if err := env.FineTune(ctx, m, ft); err != nil {
		return nil, err
	}
	return m, nil
}

// keepMasks returns a function re-applying m's unstructured-pruning masks
// (vit.Linear.Mask) after an optimizer step, or nil when m has none.
func keepMasks(m *vit.Model) func() {
	var layers []*vit.Linear
	for _, l := range m.Linears() {
		if l.Mask != nil && l.Weight != nil {
			layers = append(layers, l.Linear)
		}
	}
	if len(layers) == 0 {
		return nil
	}
	return func() {
		for _, l := range layers {
			l.Weight.MustMul_(l.Mask)
		}
	}
}
