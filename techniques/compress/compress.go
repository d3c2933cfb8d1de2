// Package compress is the apply half of vitbench's techniques: the
// registry of entries that apply a technique's Config (package
// techniques) to a model, the environment a stage sees of the run, and
// the fine-tune every training technique shares. The algorithms live in
// techniques/quantize, lowrank, prune and distill, which register their
// entries from init; the runner imports them and calls Apply.
package compress

import (
	"context"
	"fmt"
	"sync"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/train"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/techniques"
)

// Entry applies cfg (the technique's own Config type) to m and returns
// the compressed model, which may be m itself (changed in place) or a new
// model (then the caller drops m).
type Entry func(ctx context.Context, cfg techniques.Config, m *vit.Model, env Env) (*vit.Model, error)

// Env is what a technique may use beyond its config and the model.
type Env interface {
	Device() gotch.Device
	Seed() int64
	// Calibration returns up to n normalised images from the validation
	// carve-out of the training split, in batches; the caller frees them.
	Calibration(ctx context.Context, n int) ([]*ts.Tensor, error)
	// Train trains m on the training split with the model's recipe,
	// scaled as t asks.
	Train(ctx context.Context, m *vit.Model, t Training) error
	// Model returns a trained model or experiment output of the suite
	// (a teacher), built or loaded from the cache; the caller drops it.
	Model(ctx context.Context, name string) (*vit.Model, error)
	Logf(format string, args ...any)
}

// Training asks Env.Train for a short training run.
type Training struct {
	Epochs float64
	LR     float64 // 0 keeps the recipe's peak rate
	// Loss, when set, replaces cross-entropy (e.g. a distillation loss).
	Loss train.Loss
	// AfterStep runs after each optimizer step under no-grad.
	AfterStep func()
	// OneWorker trains on the model itself, never on data-parallel
	// replicas: what the loss reads outside the model's tensors (learned
	// masks) exists once.
	OneWorker bool
}

var registry = struct {
	sync.RWMutex
	entries map[string]Entry
}{entries: map[string]Entry{}}

// Register makes the entry of a technique available: apply takes the
// technique's own Config type C, which the registered Entry checks and
// validates before calling it. It panics when the technique has no schema
// (package techniques) or already has an entry: both are programming
// errors.
func Register[C techniques.Config](technique string, apply func(ctx context.Context, c C, m *vit.Model, env Env) (*vit.Model, error)) {
	if _, err := techniques.Lookup(technique); err != nil {
		panic(fmt.Sprintf("compress: cannot register %q: it has no schema: %v", technique, err))
	}
	if apply == nil {
		panic(fmt.Sprintf("compress: cannot register %q: nil entry", technique))
	}
	e := func(ctx context.Context, cfg techniques.Config, m *vit.Model, env Env) (*vit.Model, error) {
		c, ok := cfg.(C)
		if !ok {
			var want C
			return nil, fmt.Errorf("%s: config is %T, not %T", technique, cfg, want)
		}
		if err := c.Validate(); err != nil {
			return nil, err
		}
		return apply(ctx, c, m, env)
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.entries[technique]; dup {
		panic("compress: Register called twice for " + technique)
	}
	registry.entries[technique] = e
}

// Apply runs the entry registered for technique.
func Apply(ctx context.Context, technique string, cfg techniques.Config, m *vit.Model, env Env) (*vit.Model, error) {
	registry.RLock()
	e, ok := registry.entries[technique]
	registry.RUnlock()
	if !ok {
		return nil, fmt.Errorf("technique %q has no apply entry linked into this program", technique)
	}
	return e(ctx, cfg, m, env)
}
