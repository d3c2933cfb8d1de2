package train

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
)

// KD is knowledge distillation from a teacher (Hinton et al.; DeiT for
// students with a distillation token):
//
//	soft: (1-Alpha) * CE(student, y) + Alpha * T^2 * KL(softmax(t/T) || softmax(s/T))
//	hard: (1-Alpha) * CE(student, y) + Alpha * CE(student, argmax t)
//
// KL is averaged over the batch (PyTorch's reduction='batchmean'). For a
// student with a distillation token the class head learns the labels and
// the distillation head the teacher, as in DeiT. The teacher runs under
// no-grad, once per batch.
type KD struct {
	Teacher     *vit.Model
	Temperature float64
	Alpha       float64
	Hard        bool
	Smoothing   float64 // label smoothing of the label term
}

// Loss implements Loss.
func (k KD) Loss(m *vit.Model, x, y *ts.Tensor) *ts.Tensor {
	var t *ts.Tensor
	ts.NoGrad(func() { t = k.Teacher.Forward(x) })
	defer t.MustDrop()
	cls, dist := m.ForwardHeads(x)
	student := cls // the logits that learn from the teacher
	if dist != nil {
		student = dist
	}
	label := cls.MustCrossEntropyLoss(y, ts.None, 1, -100, k.Smoothing, false)
	kd := k.teacherTerm(student, t)
	cls.MustDrop()
	if dist != nil {
		dist.MustDrop()
	}
	a := label.MustMulScalar(ts.FloatScalar(1-k.Alpha), true)
	b := kd.MustMulScalar(ts.FloatScalar(k.Alpha), true)
	out := a.MustAdd(b, true)
	b.MustDrop()
	return out
}

func (k KD) teacherTerm(s, t *ts.Tensor) *ts.Tensor {
	if k.Hard {
		target := t.MustArgmax([]int64{1}, false, false)
		defer target.MustDrop()
		return s.MustCrossEntropyLoss(target, ts.None, 1, -100, 0, false)
	}
	return SoftKL(s, t, k.Temperature)
}

// SoftKL is T^2 * KL(softmax(t/T) || softmax(s/T)), averaged over the
// batch; t is treated as a constant.
func SoftKL(s, t *ts.Tensor, temperature float64) *ts.Tensor {
	inv := ts.FloatScalar(1 / temperature)
	logPs := s.MustMulScalar(inv, false).MustLogSoftmax(1, gotch.Float, true)
	logPt := t.MustMulScalar(inv, false).MustLogSoftmax(1, gotch.Float, true)
	pt := logPt.MustExp(false)
	diff := logPt.MustSub(logPs, true)
	logPs.MustDrop()
	kl := pt.MustMul(diff, true).MustSum(gotch.Float, true)
	diff.MustDrop()
	b := float64(s.MustSize()[0])
	return kl.MustMulScalar(ts.FloatScalar(temperature*temperature/b), true)
}
