// Package techniques is the schema of vitbench's compression techniques:
// each technique's name, family and parameters (a Config decoded from a
// TOML pipeline stage, with its defaults, validation and the models it
// references), and the fine-tune block they share. It links no libtorch,
// so a suite can be parsed, checked and planned without it.
//
// The apply half lives apart, as in Intel Neural Compressor 3.x, where
// configs, the algorithm registry and the algorithms are three layers:
// package techniques/compress registers what applies each technique to a
// model, and techniques/quantize, lowrank, prune and distill hold the
// algorithms, which see plain arguments. Nothing here knows the CLI, the
// database or the report.
package techniques

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Config is the decoded parameters of one pipeline stage. Implementations
// are pointers to structs whose exported fields carry `toml:"key"` tags
// (embedded structs, such as FineTune, are flattened); the suite loader
// uses those tags to reject unknown keys, to type-check values and to
// expand list-valued parameters into a grid. NewConfig fills in the
// defaults; Validate checks ranges after decoding.
type Config interface {
	Validate() error
}

// Trainer is a Config whose stage may train the model: TrainingEpochs is
// how many epochs it trains for with its resolved settings (0: none).
type Trainer interface {
	TrainingEpochs() float64
}

// Technique is the schema of one technique.
type Technique struct {
	Name      string        // the `technique = "..."` of a stage
	Family    string        // "quantize", "lowrank", "distill", "prune"
	NewConfig func() Config // a fresh config holding the defaults
	// Renamed maps keys the technique once had to the keys that replaced
	// them, so that an old suite gets an error naming the new key.
	Renamed map[string]string
}

// registry holds the techniques by name. Go's database/sql keeps its
// drivers the same way; tests register fakes.
var registry = struct {
	sync.RWMutex
	byName map[string]Technique
}{byName: map[string]Technique{}}

// Register makes a technique available by name. It panics on a duplicate
// name or an incomplete entry: both are programming errors.
func Register(t Technique) {
	if t.Name == "" || t.Family == "" || t.NewConfig == nil {
		panic(fmt.Sprintf("techniques: incomplete registration %+v", t))
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.byName[t.Name]; dup {
		panic("techniques: Register called twice for " + t.Name)
	}
	registry.byName[t.Name] = t
}

// Lookup returns the technique registered under name, or an error that
// lists the registered names.
func Lookup(name string) (Technique, error) {
	registry.RLock()
	defer registry.RUnlock()
	t, ok := registry.byName[name]
	if !ok {
		return Technique{}, fmt.Errorf("unknown technique %q (registered: %s)", name, strings.Join(namesLocked(), ", "))
	}
	return t, nil
}

// Names returns the registered technique names, sorted.
func Names() []string {
	registry.RLock()
	defer registry.RUnlock()
	return namesLocked()
}

func namesLocked() []string {
	names := make([]string, 0, len(registry.byName))
	for n := range registry.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func init() {
	Register(Technique{Name: Quantize, Family: Quantize, NewConfig: func() Config { return NewQuantizeConfig() },
		Renamed: map[string]string{"qat_epochs": "finetune_epochs"}})
	Register(Technique{Name: LowRank, Family: LowRank, NewConfig: func() Config { return NewLowRankConfig() },
		Renamed: map[string]string{"rank_ratio": "params_kept"}})
	Register(Technique{Name: Prune, Family: Prune, NewConfig: func() Config { return NewPruneConfig() },
		Renamed: map[string]string{"temperature": "kd_temperature", "alpha": "kd_alpha"}})
	Register(Technique{Name: Distill, Family: Distill, NewConfig: func() Config { return NewDistillConfig() },
		Renamed: map[string]string{"epochs": "finetune_epochs", "temperature": "kd_temperature", "alpha": "kd_alpha", "kind": "kd_kind"}})
}

// The registered technique names (each its own family).
const (
	Quantize = "quantize"
	LowRank  = "lowrank"
	Prune    = "prune"
	Distill  = "distill"
)

// ErrInvalid is wrapped by every Validate error.
var ErrInvalid = errors.New("invalid parameters")

// invalid collects a Validate's complaints.
type invalid []string

func (v *invalid) add(format string, args ...any) { *v = append(*v, fmt.Sprintf(format, args...)) }

// err wraps the complaints in ErrInvalid, naming the technique, or
// returns nil when there are none.
func (v invalid) err(technique string) error {
	if len(v) == 0 {
		return nil
	}
	return &InvalidError{Technique: technique, Problems: slices.Clone(v)}
}

// InvalidError is a Validate error: each problem of a technique's
// parameters on its own, so that callers can group the same problem found
// at many grid points. It wraps ErrInvalid.
type InvalidError struct {
	Technique string
	Problems  []string // "weight_bits 99: want 2..8, ..."
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("%v of %s: %s", ErrInvalid, e.Technique, strings.Join(e.Problems, "; "))
}

func (e *InvalidError) Unwrap() error { return ErrInvalid }

// oneOf complains unless v is one of allowed.
func (v *invalid) oneOf(key, got string, allowed ...string) {
	if slices.Contains(allowed, got) {
		return
	}
	v.add("%s %q: want %s", key, got, strings.Join(allowed, ", "))
}

// layers complains about an empty list, an unknown group or a repeat,
// and returns the set of groups listed. rejected maps groups that exist
// but cannot be chosen to the reason.
func (v *invalid) layers(list, known []string, rejected map[string]string) map[string]bool {
	if len(list) == 0 {
		v.add("layers is empty")
	}
	seen := map[string]bool{}
	for _, l := range list {
		switch {
		case rejected[l] != "":
			v.add("layers: %s", rejected[l])
		case !slices.Contains(known, l):
			v.add("layers: unknown group %q (known: %s)", l, strings.Join(known, ", "))
		case seen[l]:
			v.add("layers: %q listed twice", l)
		}
		seen[l] = true
	}
	return seen
}
