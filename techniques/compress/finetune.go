package compress

import (
	"context"
	"fmt"

	"github.com/vitbench/vitbench/harness/train"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/techniques"
)

// FineTuner runs a stage's fine-tune block (techniques.FineTune),
// possibly several times (an iterative schedule), with its teacher loaded
// once.
type FineTuner struct {
	block   techniques.FineTune
	env     Env
	teacher *vit.Model
}

// NewFineTuner loads the block's teacher, if it names one; Close drops
// it.
func NewFineTuner(ctx context.Context, env Env, block techniques.FineTune) (*FineTuner, error) {
	f := &FineTuner{block: block, env: env}
	if block.Teacher != "" {
		t, err := env.Model(ctx, block.Teacher)
		if err != nil {
			return nil, fmt.Errorf("teacher %s: %w", block.Teacher, err)
		}
		f.teacher = t
	}
	return f, nil
}

// Close drops the teacher.
func (f *FineTuner) Close() {
	if f.teacher != nil {
		f.teacher.Drop()
		f.teacher = nil
	}
}

// Loss is the block's loss: distillation from the teacher, or nil (the
// recipe's cross-entropy) without one.
func (f *FineTuner) Loss() train.Loss {
	if f.teacher == nil {
		return nil
	}
	b := f.block
	return train.KD{Teacher: f.teacher, Temperature: b.KDTemperature, Alpha: b.KDAlpha,
		Hard: b.KDKind == techniques.KDHard, Smoothing: b.LabelSmoothing}
}

// Training is the request for epochs of the block's training on m. It
// keeps m's unstructured-pruning masks (KeepMasks).
func (f *FineTuner) Training(m *vit.Model, epochs float64) (Training, error) {
	t := Training{Epochs: epochs, LR: f.block.LR, AfterStep: KeepMasks(m)}
	if f.teacher != nil {
		if err := fits(f.teacher, m); err != nil {
			return t, fmt.Errorf("teacher %s: %w", f.block.Teacher, err)
		}
		t.Loss = f.Loss()
	}
	return t, nil
}

// Run trains m for epochs (nothing when epochs <= 0).
func (f *FineTuner) Run(ctx context.Context, m *vit.Model, epochs float64) error {
	if epochs <= 0 {
		return nil
	}
	t, err := f.Training(m, epochs)
	if err != nil {
		return err
	}
	return f.env.Train(ctx, m, t)
}

// FineTune runs the whole block once on m: the usual case.
func FineTune(ctx context.Context, env Env, block techniques.FineTune, m *vit.Model) error {
	if block.Epochs <= 0 {
		return nil
	}
	f, err := NewFineTuner(ctx, env, block)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Run(ctx, m, block.Epochs)
}

// fits checks that the teacher takes the student's images and predicts
// its classes.
func fits(teacher, student *vit.Model) error {
	t, s := teacher.Cfg, student.Cfg
	if t.NumClasses != s.NumClasses {
		return fmt.Errorf("it has %d classes, the student %d", t.NumClasses, s.NumClasses)
	}
	if t.ImgSize != s.ImgSize || t.InChans != s.InChans {
		return fmt.Errorf("it takes %dx%dx%d images, the student %dx%dx%d",
			t.InChans, t.ImgSize, t.ImgSize, s.InChans, s.ImgSize, s.ImgSize)
	}
	return nil
}

// KeepMasks returns a function that re-applies m's unstructured-pruning
// masks (zeroing the pruned weights again) after an optimizer step, or
// nil when m has no mask: a pruned model keeps its zeros through every
// fine-tune. It must run under no-grad, as Training.AfterStep does.
func KeepMasks(m *vit.Model) func() {
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
