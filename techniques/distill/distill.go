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
// teacher with its distillation head, as in DeiT. Its parameters are
// techniques.DistillConfig, the shared fine-tune block with a teacher
// required; the loss is train.KD, built by compress.FineTuner.
//
// A student pruned without structure keeps its zeros (compress.KeepMasks).
package distill

import (
	"context"

	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/techniques"
	"github.com/vitbench/vitbench/techniques/compress"
)

func init() {
	compress.Register(techniques.Distill, Apply)
}

// Apply distills the teacher into m in place and returns m.
func Apply(ctx context.Context, c *techniques.DistillConfig, m *vit.Model, env compress.Env) (*vit.Model, error) {
	env.Logf("distill from %s: %s, T=%g, alpha=%g, %g epochs", c.Teacher, c.KDKind, c.KDTemperature, c.KDAlpha, c.Epochs)
	return m, compress.FineTune(ctx, env, c.FineTune, m)
}
