// Package train fits and evaluates ViT models: the training loop (AdamW,
// Adam or SGD; cosine, linear or constant schedule with linear warm-up;
// label smoothing; gradient clipping), fine-tuning for compression stages,
// and top-1/top-5 evaluation.
//
// Data arrives through Source, a small interface defined here and
// implemented by harness/data's loaders; the loss is pluggable so that
// knowledge distillation (techniques/distill) reuses the same loop.
package train

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"runtime"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// Source yields batches of images [B,C,H,W] (float, normalised, on the
// model's device) and int64 labels [B]. The consumer owns and frees each
// pair. Epoch e draws its own shuffle and augmentation.
type Source interface {
	Batches(epoch int) iter.Seq2[*ts.Tensor, *ts.Tensor]
	NumBatches() int
}

// Recipe is a training recipe.
type Recipe struct {
	Epochs         float64 // may be fractional
	MaxSteps       int     // caps the steps when > 0
	LR             float64 // peak learning rate
	MinLR          float64
	WeightDecay    float64
	Optimizer      string // "adamw", "adam", "sgd"
	Momentum       float64
	Schedule       string // "cosine", "linear", "constant"
	WarmupEpochs   float64
	LabelSmoothing float64
	GradClip       float64 // max global grad norm; 0 = off
}

// Steps is the number of optimizer steps the recipe takes on src.
func (r Recipe) Steps(batchesPerEpoch int) int {
	s := int(math.Ceil(r.Epochs * float64(batchesPerEpoch)))
	if r.MaxSteps > 0 && s > r.MaxSteps {
		s = r.MaxSteps
	}
	if s < 1 {
		s = 1
	}
	return s
}

// lrAt is the learning rate at step (0-based) of total steps.
func (r Recipe) lrAt(step, total, batchesPerEpoch int) float64 {
	warm := int(math.Round(r.WarmupEpochs * float64(batchesPerEpoch)))
	if warm >= total {
		warm = total / 10
	}
	if warm > 0 && step < warm {
		return r.LR * float64(step+1) / float64(warm)
	}
	t := float64(step-warm) / math.Max(1, float64(total-warm))
	switch r.Schedule {
	case "constant":
		return r.LR
	case "linear":
		return r.MinLR + (r.LR-r.MinLR)*(1-t)
	default: // cosine
		return r.MinLR + (r.LR-r.MinLR)*0.5*(1+math.Cos(math.Pi*t))
	}
}

// Loss computes a scalar training loss for a batch. Implementations may
// run other models (a teacher) under no-grad.
type Loss interface {
	Loss(m *vit.Model, x, y *ts.Tensor) *ts.Tensor
}

// CrossEntropy is the standard loss, with optional label smoothing. For a
// distilled model without a teacher both heads learn the labels.
type CrossEntropy struct{ Smoothing float64 }

// Loss implements Loss.
func (c CrossEntropy) Loss(m *vit.Model, x, y *ts.Tensor) *ts.Tensor {
	cls, dist := m.ForwardHeads(x)
	l := cls.MustCrossEntropyLoss(y, ts.None, 1, -100, c.Smoothing, true)
	if dist == nil {
		return l
	}
	ld := dist.MustCrossEntropyLoss(y, ts.None, 1, -100, c.Smoothing, true)
	sum := l.MustAdd(ld, true)
	ld.MustDrop()
	return sum.MustDivScalar(ts.FloatScalar(2), true)
}

// Point is one logged value of a training curve.
type Point struct {
	Series string
	Step   int
	Value  float64
}

// Options steer a Fit.
type Options struct {
	Loss     Loss // default CrossEntropy{recipe's smoothing}
	Progress func(step, total int, loss float64)
	LogEvery int // steps between curve points; default ~50 points per run
	// AfterStep runs after each optimizer step (e.g. re-applying pruning
	// masks); it runs under no-grad.
	AfterStep func()
	// Workers > 1 trains data-parallel (see parallel.go): the model and
	// Workers-1 replicas each take a share of every batch on their own OS
	// thread, with WorkerThreads intra-op threads each [1]. Fit falls back
	// to one worker when the model cannot be replicated (Result says why).
	Workers       int
	WorkerThreads int
}

// errDiverged reports a NaN or infinite loss.
var errDiverged = errors.New("training diverged: loss is not finite")

// Result summarises a Fit.
type Result struct {
	Steps    int
	Seconds  float64
	Curve    []Point
	LastLoss float64
	// Workers is the number of data-parallel workers that trained;
	// ParallelErr says why it is 1 when Options asked for more.
	Workers     int
	ParallelErr error
}

// Fit trains m on src with recipe r. It stops early, with ctx's error,
// when ctx is done.
func Fit(ctx context.Context, m *vit.Model, src Source, r Recipe, o Options) (*Result, error) {
	// libtorch's grad mode and thread-local state follow the OS thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if o.Loss == nil {
		o.Loss = CrossEntropy{Smoothing: r.LabelSmoothing}
	}
	nb := src.NumBatches()
	if nb == 0 {
		return nil, errors.New("fit: the training source has no batches")
	}
	total := r.Steps(nb)
	if o.LogEvery <= 0 {
		o.LogEvery = max(1, total/50)
	}
	opt, err := newOptimizer(m.VS, r)
	if err != nil {
		return nil, err
	}
	params := m.VS.TrainableVariables()
	res := &Result{Workers: 1}
	var dp *parallel
	if o.Workers > 1 {
		if dp, err = newParallel(m, o.Loss, o.Workers, o.WorkerThreads); err != nil {
			res.ParallelErr = err
		} else {
			defer dp.close()
			res.Workers = len(dp.workers) + 1
			// OpenBLAS's pool is process-wide: each worker's GEMMs run on
			// their caller's thread alone rather than contend for it.
			defer torchrt.UseThreads(dp.threads)()
		}
	}
	start := time.Now()
	var lossSum float64
	var lossN int
	step := 0
	for epoch := 0; step < total; epoch++ {
		for x, y := range src.Batches(epoch) {
			if step >= total {
				x.MustDrop()
				y.MustDrop()
				break
			}
			if err := ctx.Err(); err != nil {
				x.MustDrop()
				y.MustDrop()
				return res, err
			}
			opt.SetLR(r.lrAt(step, total, nb))
			var lv float64
			if dp != nil {
				opt.MustZeroGrad()
				if lv, err = dp.gradients(x, y); err != nil {
					return res, fmt.Errorf("step %d: %w", step, err)
				}
				if math.IsNaN(lv) || math.IsInf(lv, 0) {
					return res, fmt.Errorf("step %d: %w", step, errDiverged)
				}
			} else {
				loss := o.Loss.Loss(m, x, y)
				x.MustDrop()
				y.MustDrop()
				lv = loss.Float64Values()[0]
				if math.IsNaN(lv) || math.IsInf(lv, 0) {
					loss.MustDrop()
					return res, fmt.Errorf("step %d: %w", step, errDiverged)
				}
				opt.MustZeroGrad()
				loss.MustBackward()
				loss.MustDrop()
			}
			if r.GradClip > 0 {
				clipGradNorm(params, r.GradClip)
			}
			if err := opt.Step(); err != nil {
				return res, fmt.Errorf("step %d: %w", step, err)
			}
			if o.AfterStep != nil {
				ts.NoGrad(o.AfterStep)
			}
			if dp != nil {
				dp.broadcast()
			}
			lossSum += lv
			lossN++
			step++
			res.LastLoss = lv
			if step%o.LogEvery == 0 || step == total {
				res.Curve = append(res.Curve, Point{"train_loss", step, lossSum / float64(lossN)})
				lossSum, lossN = 0, 0
			}
			if o.Progress != nil {
				o.Progress(step, total, lv)
			}
		}
	}
	res.Steps = step
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// clipGradNorm scales the gradients of params so that their global L2
// norm is at most maxNorm, as torch.nn.utils.clip_grad_norm_ does. gotch's
// Optimizer.ClipGradNorm deadlocks (it takes the VarStore lock twice) and
// leaks the gradient handles, so this is done here.
func clipGradNorm(params []*ts.Tensor, maxNorm float64) float64 {
	var total float64
	var sq []*ts.Tensor
	grads := make([]*ts.Tensor, 0, len(params))
	ts.NoGrad(func() {
		for _, p := range params {
			g := p.MustGrad(false)
			if !g.MustDefined() {
				g.MustDrop()
				continue
			}
			grads = append(grads, g)
			sq = append(sq, g.MustMul(g, false).MustSum(gotch.Float, true))
		}
		if len(sq) == 0 {
			return
		}
		sum := ts.MustStack(sq, 0).MustSum(gotch.Double, true)
		total = math.Sqrt(sum.Float64Values()[0])
		sum.MustDrop()
		if coef := maxNorm / (total + 1e-6); coef < 1 {
			s := ts.FloatScalar(coef)
			for _, g := range grads {
				g.MustMulScalar_(s)
			}
		}
	})
	for _, t := range append(sq, grads...) {
		t.MustDrop()
	}
	return total
}

func newOptimizer(vs *nn.VarStore, r Recipe) (*nn.Optimizer, error) {
	switch r.Optimizer {
	case "", "adamw":
		return nn.NewAdamWConfig(0.9, 0.999, r.WeightDecay).Build(vs, r.LR)
	case "adam":
		return nn.NewAdamConfig(0.9, 0.999, r.WeightDecay).Build(vs, r.LR)
	case "sgd":
		return nn.NewSGDConfig(r.Momentum, 0, r.WeightDecay, r.Momentum > 0).Build(vs, r.LR)
	}
	return nil, fmt.Errorf("unknown optimizer %q (adamw, adam, sgd)", r.Optimizer)
}

// Accuracy is an evaluation result.
type Accuracy struct {
	Top1, Top5 float64 // percent
	Loss       float64 // mean cross-entropy
	N          int
	Seconds    float64
	// Correct1 and Correct5 hold each image's outcome, in the source's
	// order, for intervals and paired tests (package stats).
	Correct1, Correct5 []bool
}

// Evaluate runs m over src under no-grad and returns top-1/top-5 and
// every image's outcome.
func Evaluate(ctx context.Context, m *vit.Model, src Source) (Accuracy, error) {
	var acc Accuracy
	var c1, c5 int64
	var lossSum float64
	start := time.Now()
	var err error
	torchrt.NoGrad(func() {
		for x, y := range src.Batches(0) {
			if err = ctx.Err(); err != nil {
				x.MustDrop()
				y.MustDrop()
				return
			}
			logits := m.Forward(x)
			x.MustDrop()
			n := logits.MustSize()[0]
			k := min(int64(5), logits.MustSize()[1])
			vals, idx := logits.MustTopk(k, 1, true, true, false)
			vals.MustDrop()
			yy := y.MustUnsqueeze(1, false)
			hit := idx.MustEqTensor(yy, true) // [B,k]
			yy.MustDrop()
			first := hit.MustNarrow(1, 0, 1, false)
			h1 := first.MustTotype(gotch.Int64, true)
			h5 := hit.MustAnyDim(1, false, true).MustTotype(gotch.Int64, true)
			for _, v := range h1.Int64Values() {
				acc.Correct1 = append(acc.Correct1, v != 0)
				c1 += v
			}
			for _, v := range h5.Int64Values() {
				acc.Correct5 = append(acc.Correct5, v != 0)
				c5 += v
			}
			l := logits.MustCrossEntropyLoss(y, ts.None, 2, -100, 0, true) // sum
			lossSum += l.Float64Values()[0]
			for _, t := range []*ts.Tensor{y, h1, h5, l} {
				t.MustDrop()
			}
			acc.N += int(n)
		}
	})
	if err != nil {
		return acc, err
	}
	if acc.N == 0 {
		return acc, errors.New("evaluate: the source has no images")
	}
	acc.Top1 = 100 * float64(c1) / float64(acc.N)
	acc.Top5 = 100 * float64(c5) / float64(acc.N)
	acc.Loss = lossSum / float64(acc.N)
	acc.Seconds = time.Since(start).Seconds()
	return acc, nil
}
