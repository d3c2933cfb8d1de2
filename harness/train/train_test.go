package train

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/techtest"
	"github.com/vitbench/vitbench/internal/torchrt"
)

func tinyModel(t *testing.T) *vit.Model {
	t.Helper()
	torchrt.ManualSeed(0)
	m, err := vit.New(techtest.TinyConfig(), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFitLearns(t *testing.T) {
	m := tinyModel(t)
	defer m.Drop()
	src := techtest.Quadrants{N: 512, Batch: 32, Seed: 1}
	before, err := Evaluate(context.Background(), m, techtest.Quadrants{N: 256, Batch: 64, Seed: 99})
	if err != nil {
		t.Fatal(err)
	}
	r := Recipe{Epochs: 15, LR: 2e-3, WeightDecay: 0.01, Optimizer: "adamw", Schedule: "cosine", WarmupEpochs: 0.5, LabelSmoothing: 0.1, GradClip: 1}
	res, err := Fit(context.Background(), m, src, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != r.Steps(src.NumBatches()) {
		t.Errorf("steps = %d, want %d", res.Steps, r.Steps(src.NumBatches()))
	}
	if len(res.Curve) < 2 || res.Curve[len(res.Curve)-1].Value >= res.Curve[0].Value {
		t.Errorf("loss did not fall: %v", res.Curve)
	}
	after, err := Evaluate(context.Background(), m, techtest.Quadrants{N: 256, Batch: 64, Seed: 99})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("top-1 %.1f%% -> %.1f%%, top-5 %.1f%%", before.Top1, after.Top1, after.Top5)
	if after.Top1 < 80 {
		t.Errorf("top-1 after training = %.1f%%, want >= 80%% (chance is 25%%)", after.Top1)
	}
	if after.Top5 != 100 {
		t.Errorf("top-5 with 4 classes = %.1f%%, want 100%%", after.Top5)
	}
	if after.N != 256 {
		t.Errorf("evaluated %d images, want 256", after.N)
	}
	// Per-image outcomes: one per image, adding up to the totals, top-1
	// hits a subset of top-5 hits.
	if len(after.Correct1) != 256 || len(after.Correct5) != 256 {
		t.Fatalf("outcomes for %d/%d images, want 256", len(after.Correct1), len(after.Correct5))
	}
	k1 := 0
	for i, c := range after.Correct1 {
		if c {
			k1++
			if !after.Correct5[i] {
				t.Errorf("image %d right at top-1 but wrong at top-5", i)
			}
		}
	}
	if got := 100 * float64(k1) / 256; got != after.Top1 {
		t.Errorf("top-1 from outcomes %.2f%%, reported %.2f%%", got, after.Top1)
	}
}

func TestFitDeterministic(t *testing.T) {
	run := func() float64 {
		m := tinyModel(t)
		defer m.Drop()
		r := Recipe{Epochs: 1, LR: 1e-3, Optimizer: "adamw", Schedule: "cosine"}
		res, err := Fit(context.Background(), m, techtest.Quadrants{N: 128, Batch: 32, Seed: 3}, r, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return res.LastLoss
	}
	if a, b := run(), run(); a != b {
		t.Errorf("same seed, different final loss: %v vs %v", a, b)
	}
}

func TestFitDivergenceIsAnError(t *testing.T) {
	m := tinyModel(t)
	defer m.Drop()
	r := Recipe{Epochs: 2, LR: 1e6, Optimizer: "sgd", Schedule: "constant"}
	_, err := Fit(context.Background(), m, techtest.Quadrants{N: 256, Batch: 32, Seed: 3}, r, Options{})
	if err == nil {
		t.Fatal("lr 1e6 with SGD did not diverge")
	}
	if !errors.Is(err, errDiverged) {
		t.Fatalf("error = %v, want errDiverged", err)
	}
}

func TestSchedule(t *testing.T) {
	r := Recipe{LR: 1, MinLR: 0, Schedule: "cosine", WarmupEpochs: 1}
	tests := []struct {
		step float64
		want float64
	}{{0, 0.1}, {9, 1}, {10, 1}, {55, 0.5}, {99, 0.0003}}
	for _, tt := range tests {
		if got := r.lrAt(int(tt.step), 100, 10); math.Abs(got-tt.want) > 0.01 {
			t.Errorf("cosine LR at %v = %v, want %v", tt.step, got, tt.want)
		}
	}
	if got := (Recipe{Epochs: 2.5, MaxSteps: 7}).Steps(4); got != 7 {
		t.Errorf("MaxSteps cap: %d", got)
	}
	if got := (Recipe{Epochs: 2.5}).Steps(4); got != 10 {
		t.Errorf("fractional epochs: %d", got)
	}
}
