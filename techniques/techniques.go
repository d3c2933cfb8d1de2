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
	"fmt"
	"sort"
	"strings"
	"sync"
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
}

var (
	mu         sync.RWMutex
	registered = map[string]Technique{}
)

// Register makes a technique available by name. It panics on a duplicate
// name or an incomplete entry: both are programming errors.
func Register(t Technique) {
	if t.Name == "" || t.Family == "" || t.NewConfig == nil {
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
