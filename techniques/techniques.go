// Package techniques is the registry of compression techniques.
//
// Each technique lives in its own sub-package (quantize, lowrank, distill,
// prune) and registers itself from init, the way database/sql drivers do;
// cmd/bench imports them for that side effect. A technique has three parts,
// kept apart as in Intel Neural Compressor: a Config decoded from a TOML
// pipeline stage (a plain struct with toml tags, defaults and Validate),
// the algorithm that sees only its own Config and the model, and the entry
// registered here that joins the two. Techniques know nothing of the CLI,
// the database or the report.
package techniques

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
)

// Config is the decoded parameters of one pipeline stage. Implementations
// are pointers to structs whose exported fields carry `toml:"key"` tags;
// the suite loader uses those tags to reject unknown keys, to type-check
// values and to expand list-valued parameters into a grid. NewConfig fills
// in the defaults; Validate checks ranges after decoding.
type Config interface {
	Validate() error
}

// Technique is one registered compression technique.
type Technique struct {
	Name      string        // the `technique = "..."` of a stage
	Family    string        // "quantize", "lowrank", "distill", "prune"
	NewConfig func() Config // a fresh config holding the defaults
	// Apply compresses m according to cfg and returns the compressed
	// model, which may be m itself (changed in place) or a new model (then
	// the caller drops m).
	Apply func(ctx context.Context, cfg Config, m *vit.Model, env Env) (*vit.Model, error)
}

// Env is what a technique may use beyond its config and the model.
type Env interface {
	Device() gotch.Device
	Seed() int64
	// Calibration returns up to n normalised images from the validation
	// carve-out of the training split, in batches; the caller frees them.
	Calibration(ctx context.Context, n int) ([]*ts.Tensor, error)
	// FineTune trains m on the training split with the model's recipe,
	// scaled to the given epochs and learning rate (0 keeps the recipe's).
	FineTune(ctx context.Context, m *vit.Model, ft FineTune) error
	// Model returns a trained model or experiment output of the suite
	// (a teacher), built or loaded from the cache; the caller drops it.
	Model(ctx context.Context, name string) (*vit.Model, error)
	Logf(format string, args ...any)
}

// FineTune asks for a short training run.
type FineTune struct {
	Epochs float64
	LR     float64
	// Loss, when set, replaces cross-entropy (e.g. a distillation loss);
	// it has train.Loss's method.
	Loss interface {
		Loss(m *vit.Model, x, y *ts.Tensor) *ts.Tensor
	}
	// AfterStep runs after each optimizer step under no-grad.
	AfterStep func()
}

var (
	mu         sync.RWMutex
	registered = map[string]Technique{}
)

// Register makes a technique available by name. It panics on a duplicate
// name or an incomplete entry: both are programming errors.
func Register(t Technique) {
	if t.Name == "" || t.Family == "" || t.NewConfig == nil || t.Apply == nil {
		panic(fmt.Sprintf("techniques: incomplete registration %+v", t))
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registered[t.Name]; dup {
		panic("techniques: Register called twice for " + t.Name)
	}
	registered[t.Name] = t
}

// Lookup returns the technique registered under name, or an error that
// lists the registered names.
func Lookup(name string) (Technique, error) {
	mu.RLock()
	defer mu.RUnlock()
	t, ok := registered[name]
	if !ok {
		return Technique{}, fmt.Errorf("unknown technique %q (registered: %s)", name, strings.Join(namesLocked(), ", "))
	}
	return t, nil
}

// Names returns the registered technique names, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	return namesLocked()
}

func namesLocked() []string {
	names := make([]string, 0, len(registered))
	for n := range registered {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
