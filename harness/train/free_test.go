package train

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
)

// TestFitFreesTensors checks that a training step frees every tensor it
// creates itself, with the garbage collector off: a tensor left to a
// finalizer keeps its autograd graph (every saved activation of the step)
// alive until a collection happens to run, and the Go heap is too small
// for one to come soon. A suite run grew to 11 GB in a minute that way.
func TestFitFreesTensors(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cfg := vit.Config{ImgSize: 32, PatchSize: 4, InChans: 3, NumClasses: 10, EmbedDim: 32, Depth: 2, NumHeads: 2, MLPRatio: 2, QKVBias: true}
	for _, tt := range []struct {
		name string
		r    Recipe
		o    Options
	}{
		{"adamw+clip+smoothing", Recipe{Epochs: 1, LR: 1e-3, WeightDecay: 0.05, Optimizer: "adamw", LabelSmoothing: 0.1, GradClip: 1}, Options{}},
		{"sgd", Recipe{Epochs: 1, LR: 1e-2, Optimizer: "sgd", Momentum: 0.9}, Options{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := vit.New(cfg, gotch.CPU)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Drop()
			defer debug.SetGCPercent(debug.SetGCPercent(-1))
			live := func() int64 { return atomic.LoadInt64(&ts.LiveTensors) }
			fit := func(steps int) int64 {
				before := live()
				if _, err := Fit(context.Background(), m, fixedBatch{steps}, tt.r, tt.o); err != nil {
					t.Fatal(err)
				}
				return live() - before
			}
			fit(2) // optimizer state and first-step allocations
			few, many := fit(2), fit(12)
			if many != few {
				t.Errorf("Fit left %d tensors alive after 2 steps and %d after 12: %.1f tensors leak per step", few, many, float64(many-few)/10)
			}
		})
	}
}
