package train

import (
	"context"
	"math"
	"sort"
	"testing"

	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/techtest"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// maxParamDiff is the largest absolute difference between same-named
// tensors of a and b.
func maxParamDiff(t *testing.T, a, b *vit.Model) float64 {
	t.Helper()
	va := a.VS.Variables()
	if len(b.VS.Variables()) != len(va) {
		t.Fatalf("%d and %d tensors", len(va), len(b.VS.Variables()))
	}
	names := make([]string, 0, len(va))
	for n := range va {
		names = append(names, n)
	}
	sort.Strings(names)
	worst := 0.0
	for _, n := range names {
		x, _ := a.VS.Root().Get(n)
		y, err := b.VS.Root().Get(n)
		if err != nil {
			t.Fatalf("%s missing from the second model", n)
		}
		d := x.MustSub(y, false).MustAbs(true).MustMax(true)
		worst = math.Max(worst, d.Float64Values()[0])
		d.MustDrop()
	}
	return worst
}

// Data-parallel training must train the model one worker trains: the
// shares' gradients, weighted by share size, sum to the batch's. Batches
// of 15 split unevenly (5/5/5 and 8/7). Each case also checks that the
// replicas follow AfterStep (which zeroes a weight here, as pruning masks
// do) and a KD teacher.
func TestDataParallelMatchesOneWorker(t *testing.T) {
	cases := []struct {
		name    string
		workers int
		kd      bool
	}{
		{"2 workers", 2, false},
		{"3 workers", 3, false},
		{"2 workers KD", 2, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			one := tinyModel(t)
			defer one.Drop()
			many, err := one.Replicate()
			if err != nil {
				t.Fatal(err)
			}
			defer many.Drop()
			if d := maxParamDiff(t, one, many); d != 0 {
				t.Fatalf("replica differs from its model by %g before training", d)
			}
			var loss Loss = CrossEntropy{Smoothing: 0.1}
			if c.kd {
				teacher := tinyModel(t)
				defer teacher.Drop()
				loss = KD{Teacher: teacher, Temperature: 4, Alpha: 0.5, Smoothing: 0.1}
			}
			r := Recipe{Epochs: 1, LR: 0.1, WeightDecay: 0.05, Optimizer: "sgd", Momentum: 0.9, LabelSmoothing: 0.1, GradClip: 1}
			zeroFirstRow := func(m *vit.Model) func() {
				return func() { m.Blocks[0].FC1.Weight.MustNarrow(0, 0, 1, false).MustFill_(ts.FloatScalar(0)) }
			}
			src := techtest.Quadrants{N: 60, Batch: 15, Seed: 3}
			a, err := Fit(context.Background(), one, src, r, Options{Loss: loss, AfterStep: zeroFirstRow(one)})
			if err != nil {
				t.Fatal(err)
			}
			threads := torchrt.NumThreads()
			b, err := Fit(context.Background(), many, src, r, Options{Loss: loss, AfterStep: zeroFirstRow(many), Workers: c.workers})
			if err != nil {
				t.Fatal(err)
			}
			if b.Workers != c.workers || b.ParallelErr != nil {
				t.Fatalf("trained on %d workers (%v), want %d", b.Workers, b.ParallelErr, c.workers)
			}
			if a.Steps != 4 || b.Steps != 4 {
				t.Fatalf("steps %d and %d, want 4", a.Steps, b.Steps)
			}
			if d := math.Abs(a.LastLoss - b.LastLoss); d > 1e-5 {
				t.Errorf("last loss %.7f with one worker, %.7f with %d: differ by %g", a.LastLoss, b.LastLoss, c.workers, d)
			}
			d := maxParamDiff(t, one, many)
			if d > 1e-5 {
				t.Errorf("weights after 4 steps differ by %g (want <= 1e-5)", d)
			}
			t.Logf("weights after 4 steps differ by at most %.2g", d)
			if got := torchrt.NumThreads(); got != threads {
				t.Errorf("thread count %d after a data-parallel Fit, %d before", got, threads)
			}
		})
	}
}

// A model whose tensors do not fit its configuration cannot be replicated;
// Fit then trains on one worker and says why.
func TestDataParallelFallsBack(t *testing.T) {
	m := tinyModel(t)
	defer m.Drop()
	m.Cfg.NumClasses = 5 // the head stays 4 wide
	res, err := Fit(context.Background(), m, techtest.Quadrants{N: 30, Batch: 15, Seed: 3}, Recipe{Epochs: 1, LR: 1e-3, Optimizer: "adamw"}, Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Workers != 1 || res.ParallelErr == nil {
		t.Fatalf("workers %d, reason %v; want 1 and a reason", res.Workers, res.ParallelErr)
	}
}
