package techniques

import (
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// validateCase edits a fresh config; want is a substring of Validate's
// error, or "" for a valid config.
type validateCase[C Config] struct {
	name string
	edit func(c C)
	want string
}

// runValidate checks each case against a fresh config, and that every
// error wraps ErrInvalid and names the technique.
func runValidate[C Config](t *testing.T, technique string, fresh func() C, tests []validateCase[C]) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fresh()
			if tt.edit != nil {
				tt.edit(c)
			}
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want == "":
			case err == nil:
				t.Errorf("no error, want one containing %q", tt.want)
			case !errors.Is(err, ErrInvalid):
				t.Errorf("error %v does not wrap ErrInvalid", err)
			case !strings.HasPrefix(err.Error(), "invalid parameters of "+technique+": "):
				t.Errorf("error %q does not name %s", err, technique)
			case !strings.Contains(err.Error(), tt.want):
				t.Errorf("error %q, want one containing %q", err, tt.want)
			}
		})
	}
}

// tomlKeys returns the keys of a config struct (or pointer to one) by
// their toml tags, embedded structs flattened, as the suite loader reads
// them; it fails on a field without a tag or a key given twice.
func tomlKeys(t *testing.T, typ reflect.Type) map[string]bool {
	t.Helper()
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	keys := map[string]bool{}
	for f := range typ.Fields() {
		if !f.IsExported() {
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			for k := range tomlKeys(t, f.Type) {
				if keys[k] {
					t.Errorf("%s: key %q twice (embedded %s)", typ, k, f.Name)
				}
				keys[k] = true
			}
			continue
		}
		if tag == "" || tag == "-" {
			t.Errorf("%s.%s has no toml key", typ, f.Name)
			continue
		}
		if keys[tag] {
			t.Errorf("%s: key %q twice", typ, tag)
		}
		keys[tag] = true
	}
	return keys
}

func TestRegistered(t *testing.T) {
	tests := []struct {
		name   string
		config any // the type NewConfig returns
	}{
		{Distill, &DistillConfig{}},
		{LowRank, &LowRankConfig{}},
		{Prune, &PruneConfig{}},
		{Quantize, &QuantizeConfig{}},
	}
	var names []string
	for _, tt := range tests {
		names = append(names, tt.name)
		t.Run(tt.name, func(t *testing.T) {
			tech, err := Lookup(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if tech.Name != tt.name || tech.Family != tt.name {
				t.Errorf("name %q, family %q; want %q for both", tech.Name, tech.Family, tt.name)
			}
			a, b := tech.NewConfig(), tech.NewConfig()
			if reflect.TypeOf(a) != reflect.TypeOf(tt.config) {
				t.Errorf("config %T, want %T", a, tt.config)
			}
			if a == b {
				t.Error("NewConfig returns the same config twice")
			}
			// Every config has the fine-tune block, flattened.
			keys := tomlKeys(t, reflect.TypeOf(a))
			for k := range tomlKeys(t, reflect.TypeOf(FineTune{})) {
				if !keys[k] {
					t.Errorf("no fine-tune key %q", k)
				}
			}
			// Distill alone needs its teacher to validate by default.
			if err := a.Validate(); (err != nil) != (tt.name == Distill) {
				t.Errorf("defaults: Validate() = %v", err)
			}
		})
	}
	if got := Names(); !slices.Equal(got, names) {
		t.Errorf("Names() = %v, want %v", got, names)
	}
	if _, err := Lookup("sparsify"); err == nil || !strings.Contains(err.Error(), "registered: distill, lowrank, prune, quantize") {
		t.Errorf("Lookup of an unknown name: %v", err)
	}
}

// TestRenamed: each old key maps to a key of the config, and is not one
// itself any more.
func TestRenamed(t *testing.T) {
	tests := []struct {
		technique string
		renamed   map[string]string
	}{
		{Quantize, map[string]string{"qat_epochs": "finetune_epochs"}},
		{LowRank, map[string]string{"rank_ratio": "params_kept"}},
		{Prune, map[string]string{"temperature": "kd_temperature", "alpha": "kd_alpha"}},
		{Distill, map[string]string{"epochs": "finetune_epochs", "temperature": "kd_temperature", "alpha": "kd_alpha", "kind": "kd_kind"}},
	}
	for _, tt := range tests {
		t.Run(tt.technique, func(t *testing.T) {
			tech, err := Lookup(tt.technique)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(tech.Renamed, tt.renamed) {
				t.Errorf("Renamed %v, want %v", tech.Renamed, tt.renamed)
			}
			keys := tomlKeys(t, reflect.TypeOf(tech.NewConfig()))
			for old, now := range tech.Renamed {
				if keys[old] {
					t.Errorf("old key %q is still a key", old)
				}
				if !keys[now] {
					t.Errorf("old key %q maps to %q, which is not a key (keys: %v)", old, now, slices.Sorted(maps.Keys(keys)))
				}
			}
		})
	}
}

func TestRegisterPanics(t *testing.T) {
	fresh := func() Config { return NewLowRankConfig() }
	tests := []struct {
		name string
		tech Technique
		want string
	}{
		{"no name", Technique{Family: "x", NewConfig: fresh}, "incomplete registration"},
		{"no family", Technique{Name: "x", NewConfig: fresh}, "incomplete registration"},
		{"no config", Technique{Name: "x", Family: "x"}, "incomplete registration"},
		{"duplicate", Technique{Name: LowRank, Family: LowRank, NewConfig: fresh}, "Register called twice for lowrank"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := func() (msg string) {
				defer func() { msg = fmt.Sprint(recover()) }()
				Register(tt.tech)
				return "<no panic>"
			}()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("panic %q, want one containing %q", msg, tt.want)
			}
		})
	}
	if _, err := Lookup("x"); err == nil {
		t.Error("an incomplete technique was registered")
	}
}

// TestNoLibtorch: the schema, its tests included, links no libtorch, so
// a suite can be parsed and planned without it.
func TestNoLibtorch(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	out, err := exec.Command(gobin, "list", "-deps", "-test", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{"github.com/sugarme/gotch", "vitbench/harness/vit", "vitbench/harness/train", "vitbench/internal/torchrt"} {
			if strings.Contains(dep, bad) {
				t.Errorf("package techniques depends on %s", dep)
			}
		}
	}
}
