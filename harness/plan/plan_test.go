package plan

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vitbench/vitbench/harness/config"
	"github.com/vitbench/vitbench/techniques"
)

// Fake techniques for these tests: a Config with scalar, slice, float,
// string and bool fields, and a distiller that references a teacher.

type quantConfig struct {
	WeightBits int      `toml:"weight_bits"`
	ActBits    int      `toml:"act_bits"`
	Calibrator string   `toml:"calibrator"`
	PerChannel bool     `toml:"per_channel"`
	Groups     []string `toml:"groups"`
}

func (c *quantConfig) Validate() error {
	if c.WeightBits < 2 || c.WeightBits > 8 {
		return fmt.Errorf("weight_bits must be in 2..8, got %d", c.WeightBits)
	}
	return nil
}

type pruneConfig struct {
	Amount float64 `toml:"amount"`
	Kind   string  `toml:"kind"`
	Epochs float64 `toml:"epochs"`
	Steps  int     `toml:"steps"` // like fprune's iterative schedule: a count of pruning steps, not a cap on training
}

func (c *pruneConfig) TrainingEpochs() float64 { return c.Epochs }

func (c *pruneConfig) Validate() error {
	if c.Amount < 0 || c.Amount >= 1 {
		return fmt.Errorf("amount must be in [0, 1)")
	}
	return nil
}

type distillConfig struct {
	Teacher     string  `toml:"teacher"`
	Temperature float64 `toml:"temperature"`
	Alpha       float64 `toml:"alpha"`
	Epochs      float64 `toml:"epochs"`
}

type lowrankConfig struct {
	RankRatio      float64 `toml:"rank_ratio"`
	FinetuneEpochs float64 `toml:"finetune_epochs"`
}

func (c *lowrankConfig) Validate() error {
	if c.RankRatio <= 0 || c.RankRatio > 1 {
		return fmt.Errorf("rank_ratio must be in (0, 1]")
	}
	return nil
}

func (c *distillConfig) Validate() error {
	if c.Teacher == "" {
		return errors.New("teacher is required")
	}
	return nil
}

func (c *distillConfig) References() []string { return []string{c.Teacher} }

func init() {
	techniques.Register(techniques.Technique{Name: "fquantize", Family: "quantize", NewConfig: func() techniques.Config {
		return &quantConfig{WeightBits: 8, ActBits: 8, Calibrator: "minmax"}
	}})
	techniques.Register(techniques.Technique{Name: "fprune", Family: "prune", NewConfig: func() techniques.Config {
		return &pruneConfig{Amount: 0.5, Kind: "heads", Steps: 4}
	}})
	techniques.Register(techniques.Technique{Name: "fdistill", Family: "distill", NewConfig: func() techniques.Config {
		return &distillConfig{Temperature: 4, Alpha: 0.5, Epochs: 1}
	}})
	techniques.Register(techniques.Technique{Name: "flowrank", Family: "lowrank", NewConfig: func() techniques.Config {
		return &lowrankConfig{RankRatio: 0.5}
	}})
}

const header = `[suite]
name = "t"
seed = 1
[models.vit]
arch = { img_size = 32, patch_size = 4, embed_dim = 64, depth = 2, num_heads = 2 }
data = { name = "cifar10", train_size = 1100, val_size = 100 }
train = { epochs = 2, batch_size = 100 }
`

func build(t *testing.T, src string) *Plan {
	t.Helper()
	p, err := tryBuild(t, src, "v1")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func tryBuild(t *testing.T, src, code string) (*Plan, error) {
	t.Helper()
	s, err := config.Parse(strings.NewReader(src), filepath.Join(t.TempDir(), "suite.toml"), config.Options{})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return Build(s, code)
}

func experimentNames(p *Plan) []string {
	var names []string
	for _, e := range p.Experiments {
		names = append(names, e.Name)
	}
	return names
}

func TestBuildGrid(t *testing.T) {
	p := build(t, header+`
[models.small]
arch = { img_size = 32, patch_size = 8, embed_dim = 32, depth = 1, num_heads = 1 }
data = "cifar10"

[[experiment]]
name = "ptq"
model = "vit"
pipeline = [{ technique = "fquantize", weight_bits = [8, 4], act_bits = [8, 4], calibrator = ["minmax", "omse", "percentile"] }]

[[experiment]]
name = "combo"
model = "small"
pipeline = [
  { technique = "fprune", amount = [0.25, 0.5] },
  { technique = "fquantize", weight_bits = 4 },
]

[[experiment]]
name = "same"
model = "vit"
`)
	names := experimentNames(p)
	if len(names) != 2+12+2+1 {
		t.Fatalf("got %d experiments: %v", len(names), names)
	}
	want := []string{"vit", "small", "ptq/w8-a8-minmax", "ptq/w8-a8-omse", "ptq/w8-a8-percentile", "ptq/w8-a4-minmax"}
	if !slices.Equal(names[:len(want)], want) {
		t.Errorf("first experiments %v, want %v", names[:len(want)], want)
	}
	if got := names[len(names)-3:]; !slices.Equal(got, []string{"combo/a0.25", "combo/a0.5", "same"}) {
		t.Errorf("last experiments %v", got)
	}
	base := p.Experiments[0]
	if !base.IsBaseline || base.Baseline != "vit" || base.Pipeline != "baseline" || len(base.Nodes) != 1 {
		t.Errorf("baseline %+v", base)
	}
	e := p.Experiments[5] // ptq/w8-a4-minmax
	if e.Baseline != "vit" || e.Group != "ptq" || e.IsBaseline {
		t.Errorf("experiment %+v", e)
	}
	if want := map[string]string{"weight_bits": "8", "act_bits": "4", "calibrator": "minmax"}; !reflect.DeepEqual(e.Params, want) {
		t.Errorf("Params = %v, want %v", e.Params, want)
	}
	if e.Pipeline != "fquantize(act_bits=4)" {
		t.Errorf("Pipeline = %q (only non-default parameters)", e.Pipeline)
	}
	c := p.Experiments[len(p.Experiments)-2]
	if c.Pipeline != "fprune → fquantize(weight_bits=4)" || !slices.Equal(c.Families, []string{"prune", "quantize"}) {
		t.Errorf("combo: pipeline %q families %v", c.Pipeline, c.Families)
	}
	if got := c.Stages[0].Config.(*pruneConfig).Amount; got != 0.5 {
		t.Errorf("combo/a0.5 fprune amount %g", got)
	}
	if same := p.Experiments[len(p.Experiments)-1]; same.Hash() != base.Hash() {
		t.Error("an experiment with an empty pipeline is not its baseline's artifact")
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		name     string
		pipeline string
		want     []string
	}{
		{"nothing swept", `{ technique = "fquantize", weight_bits = 4 }`, []string{"g"}},
		{"one value swept", `{ technique = "fquantize", weight_bits = [4] }`, []string{"g/w4"}},
		{"initials on a clash", `{ technique = "fquantize", weight_bits = [4, 8], act_bits = 8 }, { technique = "fdistill", teacher = "vit", temperature = [2.0, 0.5] }`,
			[]string{"g/w4-t2", "g/w4-t0.5", "g/w8-t2", "g/w8-t0.5"}},
		{"booleans and lists", `{ technique = "fquantize", per_channel = [true, false], groups = [["qkv", "proj"], ["fc1"]] }`,
			[]string{"g/per_channel-qkv_proj", "g/per_channel-fc1", "g/no-per_channel-qkv_proj", "g/no-per_channel-fc1"}},
		{"same key in two stages", `{ technique = "fprune", epochs = [1, 2] }, { technique = "fdistill", teacher = "vit", epochs = [3] }`,
			[]string{"g/fprune.epochs1-fdistill.epochs3", "g/fprune.epochs2-fdistill.epochs3"}},
		{"same technique twice", `{ technique = "fprune", amount = [0.1] }, { technique = "fprune", amount = [0.2, 0.3] }`,
			[]string{"g/s0.amount0.1-s1.amount0.2", "g/s0.amount0.1-s1.amount0.3"}},
		{"unsafe characters", `{ technique = "fprune", kind = ["a b/c", "ü"] }`, []string{"g/a_b_c", "g/_"}},
		{"collisions get a suffix", `{ technique = "fprune", kind = ["a/b", "a b"] }`, []string{"g/a_b", "g/a_b-2"}},
		{"a suffix never takes another point's name", `{ technique = "fprune", kind = ["a/b", "a b", "a_b-2"] }`, []string{"g/a_b", "g/a_b-3", "g/a_b-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := build(t, header+"[[experiment]]\nname = \"g\"\nmodel = \"vit\"\npipeline = ["+tt.pipeline+"]\n")
			got := experimentNames(p)[1:]
			if !slices.Equal(got, tt.want) {
				t.Errorf("names %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHashSharing(t *testing.T) {
	p := build(t, header+`
[[experiment]]
name = "a"
model = "vit"
pipeline = [{ technique = "fprune", amount = 0.25 }, { technique = "fquantize" }]

[[experiment]]
name = "b"
model = "vit"
pipeline = [{ technique = "fprune", amount = 0.25, kind = "heads" }, { technique = "fquantize", weight_bits = [8, 4] }]

[[experiment]]
name = "c"
model = "vit"
pipeline = [{ technique = "fprune", amount = [0.25, 0.75] }]
`)
	byName := map[string]*Experiment{}
	for _, e := range p.Experiments {
		byName[e.Name] = e
	}
	a, b8, b4, c25, c75 := byName["a"], byName["b/w8"], byName["b/w4"], byName["c/a0.25"], byName["c/a0.75"]
	if a.Hash() != b8.Hash() {
		t.Error("a and b/w8 differ only in how defaults are written, yet their hashes differ")
	}
	if a.Nodes[1] != b4.Nodes[1] || a.Nodes[1] != c25.Hash() {
		t.Error("the shared pruned model has several hashes")
	}
	if b4.Hash() == b8.Hash() || c75.Hash() == c25.Hash() {
		t.Error("different parameters share a hash")
	}
	// vit, fprune 0.25, fquantize 8, fquantize 4, fprune 0.75
	if len(p.Nodes) != 5 {
		t.Errorf("got %d nodes, want 5", len(p.Nodes))
	}
	for _, n := range p.Nodes {
		if n.Hash == a.Nodes[1] && !slices.Equal(n.Experiments, []string{"a", "b/w8", "b/w4", "c/a0.25"}) {
			t.Errorf("shared node used by %v", n.Experiments)
		}
	}
}

func TestOrderAndReferences(t *testing.T) {
	p := build(t, header+`
[models.student]
arch = { img_size = 32, patch_size = 8, embed_dim = 32, depth = 1, num_heads = 1 }
data = "cifar10"
teacher = "tuned"

[[experiment]]
name = "kd"
model = "vit"
pipeline = [{ technique = "fdistill", teacher = "ptq/w4" }]

[[experiment]]
name = "ptq"
model = "vit"
pipeline = [{ technique = "fquantize", weight_bits = [8, 4] }]

[[experiment]]
name = "tuned"
model = "vit"
pipeline = [{ technique = "fprune" }]
`)
	pos := map[string]int{}
	for i, n := range p.Nodes {
		pos[n.Hash] = i
		for _, in := range append(slices.Clone(n.Needs), n.Upstream) {
			if in == "" {
				continue
			}
			if j, ok := pos[in]; !ok || j >= i {
				t.Errorf("node %d (%s) comes before its input %s", i, n.Kind, in[:12])
			}
		}
	}
	names := experimentNames(p)
	want := []string{"vit", "tuned", "student", "ptq/w8", "ptq/w4", "kd"}
	if !slices.Equal(names, want) {
		t.Errorf("experiments %v, want %v (dependencies first)", names, want)
	}
	exps := map[string]*Experiment{}
	for _, e := range p.Experiments {
		exps[e.Name] = e
	}
	kd := exps["kd"].Stages[0]
	if len(kd.References) != 1 || kd.References[0].Hash != exps["ptq/w4"].Hash() {
		t.Errorf("kd references %v, want ptq/w4's artifact", kd.References)
	}
	for _, n := range p.Nodes {
		if n.Model.Name == "student" && (len(n.Needs) != 1 || n.Needs[0] != exps["tuned"].Hash()) {
			t.Errorf("student needs %v, want tuned's artifact", n.Needs)
		}
	}
}

func TestReferenceErrors(t *testing.T) {
	grid := header + "[[experiment]]\nname = \"ptq\"\nmodel = \"vit\"\npipeline = [{ technique = \"fquantize\", weight_bits = [8, 4] }]\n[[experiment]]\nname = \"kd\"\nmodel = \"vit\"\n"
	tests := []struct {
		teacher string
		want    string
	}{
		{"ptq", `suite.toml:15: experiment[1].pipeline[0]: "ptq" expands into 2 experiments; name one of them: ptq/w8, ptq/w4`},
		{"ptq/w2", `suite.toml:15: experiment[1].pipeline[0]: no experiment "ptq/w2": ptq expands to ptq/w8, ptq/w4`},
	}
	for _, tt := range tests {
		_, err := tryBuild(t, grid+"pipeline = [{ technique = \"fdistill\", teacher = \""+tt.teacher+"\" }]\n", "v1")
		var list config.ErrorList
		if !errors.As(err, &list) || len(list) != 1 {
			t.Fatalf("teacher %q: got %v, want one config error", tt.teacher, err)
		}
		if got := filepath.Base(list[0].File) + strings.TrimPrefix(list[0].Error(), list[0].File); got != tt.want {
			t.Errorf("teacher %q:\n got %s\nwant %s", tt.teacher, got, tt.want)
		}
	}
}

func TestMissingWeights(t *testing.T) {
	_, err := tryBuild(t, "[suite]\nname = \"t\"\n[models.m]\narch = \"deit_tiny_patch16_224\"\ndata = \"cifar10\"\nweights = \"none.pth\"\n", "v1")
	var e *config.Error
	if !errors.As(err, &e) || e.Key != "models.m.weights" || !errors.Is(err, os.ErrNotExist) && !strings.Contains(e.Msg, "no such file") {
		t.Errorf("got %v, want a config error at models.m.weights", err)
	}
}

const hashSuite = `[suite]
name = "t"
seed = 1
[models.vit]
arch = { img_size = 32, patch_size = 4, embed_dim = 64, depth = 2, num_heads = 2 }
data = { name = "cifar10", train_size = 1100, val_size = 100 }
train = { epochs = 2, batch_size = 100 }
[models.teach]
arch = "deit_tiny_patch16_224"
data = "cifar10"
weights = "w.pth"
[[experiment]]
name = "e"
model = "vit"
pipeline = [{ technique = "fprune", amount = 0.25 }, { technique = "fdistill", teacher = "teach" }]
`

// hashes builds src (with w.pth written next to it) and returns the hash
// of every node, keyed by the experiment and position that reach it.
func hashes(t *testing.T, src, code string, weightsTime time.Time) map[string]string {
	t.Helper()
	dir := t.TempDir()
	w := filepath.Join(dir, "w.pth")
	if err := os.WriteFile(w, []byte("PK\x03\x04weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(w, weightsTime, weightsTime); err != nil {
		t.Fatal(err)
	}
	s, err := config.Parse(strings.NewReader(src), filepath.Join(dir, "suite.toml"), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Build(s, code)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range p.Experiments {
		for i, h := range e.Nodes {
			out[fmt.Sprintf("%s[%d]", e.Name, i)] = h
		}
	}
	return out
}

func TestHashStable(t *testing.T) {
	when := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	first := hashes(t, hashSuite, "v1", when)
	for range 5 { // map order differs from build to build
		if again := hashes(t, hashSuite, "v1", when); !reflect.DeepEqual(again, first) {
			t.Fatalf("hashes differ between builds:\n%v\n%v", first, again)
		}
	}
	// Pinned: a change here invalidates every user's cache. Update the value
	// only when the change to the hashed spec is intended.
	const want = "f3369264071835b8f2a425ae49f7cbc4dbaa282a2ecd1321e2d20779f43c2c6c"
	if got := first["vit[0]"]; got != want {
		t.Errorf("the baseline's hash is %s, pinned %s", got, want)
	}
}

func TestHashChanges(t *testing.T) {
	when := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	base := hashes(t, hashSuite, "v1", when)
	tests := []struct {
		name    string
		from    string // replaced in hashSuite by to
		to      string
		code    string
		mtime   time.Time
		changed []string // the nodes whose hash must change; the others must not
	}{
		{"seed", "seed = 1", "seed = 2", "v1", when, []string{"vit[0]", "e[0]", "e[1]", "e[2]", "teach[0]"}},
		{"code version", "", "", "v2", when, []string{"vit[0]", "e[0]", "e[1]", "e[2]", "teach[0]"}},
		{"arch", "embed_dim = 64", "embed_dim = 128", "v1", when, []string{"vit[0]", "e[0]", "e[1]", "e[2]"}},
		{"data", "train_size = 1100", "train_size = 1200", "v1", when, []string{"vit[0]", "e[0]", "e[1]", "e[2]"}},
		{"recipe", "epochs = 2,", "epochs = 3,", "v1", when, []string{"vit[0]", "e[0]", "e[1]", "e[2]"}},
		{"stage parameter", "amount = 0.25", "amount = 0.3", "v1", when, []string{"e[1]", "e[2]"}},
		{"teacher", "arch = \"deit_tiny_patch16_224\"", "arch = \"deit_small_patch16_224\"", "v1", when, []string{"teach[0]", "e[2]"}},
		{"weights file", "", "", "v1", when.Add(time.Second), []string{"teach[0]", "e[2]"}},
		{"the test subset does not count: it chooses images, not weights", "train_size = 1100", "train_size = 1100, test_size = 500", "v1", when, nil},
		{"descriptions and measurement do not count", "name = \"t\"", "name = \"t2\"\ndescription = \"x\"\nmeasure = { iters = 3 }", "v1", when, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := hashSuite
			if tt.from != "" {
				if !strings.Contains(src, tt.from) {
					t.Fatalf("%q not in the suite", tt.from)
				}
				src = strings.Replace(src, tt.from, tt.to, 1)
			}
			got := hashes(t, src, tt.code, tt.mtime)
			for k, h := range base {
				if changed := got[k] != h; changed != slices.Contains(tt.changed, k) {
					t.Errorf("%s changed = %t, want %t", k, changed, !changed)
				}
			}
		})
	}
}

func TestCanonicalJSON(t *testing.T) {
	type inner struct {
		Z int `json:"z"`
		A int `json:"a"`
	}
	got, err := canonicalJSON(map[string]any{"b": inner{1, 2}, "a": []any{1.5, "x"}, "c": 1e-5})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":[1.5,"x"],"b":{"a":2,"z":1},"c":0.00001}`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func filterSuite(t *testing.T) *Plan {
	return build(t, header+`
[[experiment]]
name = "ptq"
model = "vit"
pipeline = [{ technique = "fquantize", weight_bits = [8, 6, 4, 3, 2] }]

[[experiment]]
name = "fprune"
model = "vit"
pipeline = [{ technique = "fprune", amount = [0.1, 0.2, 0.3, 0.4] }]

[[experiment]]
name = "kd"
model = "vit"
pipeline = [{ technique = "fdistill", teacher = "ptq/w8" }]
`)
}

func TestFilterOnly(t *testing.T) {
	p := filterSuite(t)
	tests := []struct {
		only  string
		want  []string
		nodes int
	}{
		{"", experimentNames(p), len(p.Nodes)},
		// Each kept experiment brings its baseline, "vit", so that its
		// relative metrics are measured in the same run.
		{"ptq", []string{"vit", "ptq/w8", "ptq/w6", "ptq/w4", "ptq/w3", "ptq/w2"}, 6},
		{"ptq/w[68]", []string{"vit", "ptq/w8", "ptq/w6"}, 3},
		{"fprune/a0.1, vit", []string{"vit", "fprune/a0.1"}, 2},
		{"vit", []string{"vit"}, 1},
		{"kd", []string{"vit", "kd"}, 3}, // ptq/w8 stays as a node
		{"*/*4", []string{"vit", "ptq/w4", "fprune/a0.4"}, 3},
	}
	for _, tt := range tests {
		f, err := p.Filter(tt.only, "")
		if err != nil {
			t.Fatalf("Filter(%q): %v", tt.only, err)
		}
		if got := experimentNames(f); !slices.Equal(got, tt.want) {
			t.Errorf("Filter(%q) = %v, want %v", tt.only, got, tt.want)
		}
		if len(f.Nodes) != tt.nodes {
			t.Errorf("Filter(%q) kept %d nodes, want %d", tt.only, len(f.Nodes), tt.nodes)
		}
	}
	if f, _ := p.Filter("kd", ""); len(f.Nodes) != 3 || !slices.Equal(f.Nodes[0].Experiments, []string{"vit", "kd"}) || len(f.Nodes[1].Experiments) != 0 {
		t.Errorf("kept nodes list experiments %v, %v; want only the selected ones", f.Nodes[0].Experiments, f.Nodes[1].Experiments)
	}
}

func TestFilterShard(t *testing.T) {
	p := filterSuite(t)
	const n = 3
	seen := map[string]int{}
	for i := 1; i <= n; i++ {
		f, err := p.Filter("", fmt.Sprintf("%d/%d", i, n))
		if err != nil {
			t.Fatal(err)
		}
		again, _ := p.Filter("", fmt.Sprintf("%d/%d", i, n))
		if !slices.Equal(experimentNames(f), experimentNames(again)) {
			t.Error("sharding is not deterministic")
		}
		for _, e := range f.Experiments {
			seen[e.Name]++
			for _, h := range e.Nodes {
				if !slices.ContainsFunc(f.Nodes, func(n *Node) bool { return n.Hash == h }) {
					t.Errorf("shard %d/%d lacks node %s of %s", i, n, h[:12], e.Name)
				}
			}
		}
	}
	for _, e := range p.Experiments {
		switch {
		case e.IsBaseline && (seen[e.Name] < 1 || seen[e.Name] > n):
			t.Errorf("baseline %s is in %d shards, want 1 to %d (each shard measures the baselines it needs)", e.Name, seen[e.Name], n)
		case !e.IsBaseline && seen[e.Name] != 1:
			t.Errorf("%s is in %d shards, want 1", e.Name, seen[e.Name])
		}
	}
	f, err := p.Filter("ptq", "1/1")
	if err != nil || len(f.Experiments) != 6 {
		t.Errorf("Filter(ptq, 1/1) = %v, %v", experimentNames(f), err)
	}
}

func TestFilterErrors(t *testing.T) {
	p := filterSuite(t)
	tests := []struct{ only, shard string }{
		{"[", ""},
		{"nothing*", ""},
		{"", "0/3"},
		{"", "4/3"},
		{"", "1/0"},
		{"", "1"},
		{"", "a/b"},
		{"", "1/2/3"},
	}
	for _, tt := range tests {
		if _, err := p.Filter(tt.only, tt.shard); !errors.Is(err, errSelection) {
			t.Errorf("Filter(%q, %q) = %v, want errSelection", tt.only, tt.shard, err)
		}
	}
}

func TestDescribe(t *testing.T) {
	p := build(t, header+`
[[experiment]]
name = "pq"
model = "vit"
pipeline = [{ technique = "fprune", amount = 0.25, epochs = 1.5 }, { technique = "fquantize", weight_bits = [8, 4] }]
`)
	cachedHash := p.Nodes[0].Hash
	var buf bytes.Buffer
	if err := p.Describe(&buf, func(h string) bool { return h == cachedHash }); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		`suite "t" (seed 1, code v1)`,
		"3 experiments; 4 artifacts: 1 cached, 0 to train, 0 to load, 3 to compress",
		"#1        " + cachedHash[:12] + "  cached    ~20",
		"compress  ~15    #1     fprune(amount=0.25, epochs=1.5)",
		"compress  -      #2     fquantize(weight_bits=4)",
		"#3        " + p.Nodes[2].Hash[:12] + "  compress  -      #2     fquantize\n",
		"vit         -         #1         baseline",
		"pq/w4       vit       #1 #2 #4   fprune(amount=0.25, epochs=1.5) → fquantize(weight_bits=4)",
		"~0 training steps for 0 models, ~15 fine-tuning steps in 3 compression stages; 1 artifacts cached (no cost)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	buf.Reset()
	if err := p.Describe(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "~20 training steps for 1 models") {
		t.Errorf("with nothing cached:\n%s", buf.String())
	}
}

func TestSpecJSON(t *testing.T) {
	p := build(t, header+"[[experiment]]\nname = \"q\"\nmodel = \"vit\"\npipeline = [{ technique = \"fquantize\", weight_bits = 4 }]\n")
	js, err := p.Experiments[1].SpecJSON(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"name":"q"`, `"weight_bits":4`, `"embed_dim":64`, `"epochs":2`, `"seed":1`} {
		if !bytes.Contains(js, []byte(want)) {
			t.Errorf("spec lacks %s: %s", want, js)
		}
	}
}

// TestExample plans experiments/example.toml with this file's fake
// techniques, which take the stage parameters the example uses.
func TestExample(t *testing.T) {
	s, err := config.ReadFile("../../experiments/example.toml", config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Build(s, "v1")
	if err != nil {
		t.Fatal(err)
	}
	exps := map[string]*Experiment{}
	for _, e := range p.Experiments {
		exps[e.Name] = e
	}
	groups := map[string]int{}
	for _, e := range p.Experiments {
		groups[e.Group]++
	}
	want := map[string]int{"vit_cifar": 1, "deit_small_cifar": 1, "vit_mini_kd": 3, "vit_fmnist": 1,
		"ptq": 18, "lowrank": 3, "prune-int8": 2, "prune-kd-int8": 1, "kd-from-int8": 3, "kd-student": 3, "fmnist-int4": 1,
		"fmnist-int8-seeds": 3}
	if !reflect.DeepEqual(groups, want) {
		t.Errorf("experiments per group %v, want %v", groups, want)
	}
	for _, name := range []string{"ptq/w8-a8-minmax", "ptq/w4-a4-omse", "lowrank/p0.25", "prune-int8/a0.5"} {
		if exps[name] == nil {
			t.Errorf("no experiment %s (the example's comments name it)", name)
		}
	}
	for _, seed := range []string{"seed0", "seed1", "seed2"} {
		if exps["kd-student/"+seed].Hash() != exps["vit_mini_kd/"+seed].Hash() {
			t.Errorf("kd-student/%s and its baseline should share an artifact", seed)
		}
		if e := exps["fmnist-int8-seeds/"+seed]; e.Nodes[0] != exps["vit_fmnist"].Hash() {
			t.Errorf("%s is not quantized from the one vit_fmnist", e.Name)
		}
	}
	var buf bytes.Buffer
	if err := p.Describe(&buf, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("dry run of the example:\n%s", buf.String())
}

// TestBuildCycleGuard hands Build a suite with a cycle that config would
// have rejected: Build must report it, not recurse forever.
func TestBuildCycleGuard(t *testing.T) {
	s, err := config.Parse(strings.NewReader(header+"[[experiment]]\nname = \"a\"\nmodel = \"vit\"\npipeline = [{ technique = \"fdistill\", teacher = \"vit\" }]\n"), "suite.toml", config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Model("vit").Teacher = "a" // vit -> a -> vit
	_, err = Build(s, "v1")
	if err == nil || !strings.Contains(err.Error(), "reference cycle") {
		t.Errorf("got %v, want a reference cycle", err)
	}
}

// TestSuiteExperimentLimit checks that the experiments of all grids
// together are bounded, with the experiment that crosses the bound named.
func TestSuiteExperimentLimit(t *testing.T) {
	src := header
	for i := range 3 {
		src += fmt.Sprintf("[[experiment]]\nname = \"g%d\"\nmodel = \"vit\"\npipeline = [{ technique = \"fprune\", amount = [0.1, 0.2, 0.3, 0.4] }]\n", i)
	}
	s, err := config.Parse(strings.NewReader(src), filepath.Join(t.TempDir(), "suite.toml"), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := BuildLimit(s, "v1", 12); err != nil {
		t.Errorf("12 experiments under a limit of 12: %v", err)
	}
	_, err = BuildLimit(s, "v1", 11)
	var list config.ErrorList
	if !errors.As(err, &list) || len(list) != 1 || list[0].Key != "experiment[2]" || !strings.Contains(list[0].Msg, "more than 11 experiments (this one adds 4 to the 8 before it)") {
		t.Errorf("limit 11: err = %v, want experiment[2] named", err)
	}
}

// TestTimedOnlyPlan: a timed_only model is an "init" artifact; its stages
// may not train, and nothing may learn from it.
func TestTimedOnlyPlan(t *testing.T) {
	timed := header + "[models.big]\narch = { img_size = 32, patch_size = 4, embed_dim = 64, depth = 2, num_heads = 2 }\ndata = { name = \"cifar10\" }\ntimed_only = true\n"
	p := build(t, timed+"[[experiment]]\nname = \"pruned\"\nmodel = \"big\"\npipeline = [{ technique = \"fprune\", epochs = 0 }]\n")
	var kinds []Kind
	for _, n := range p.Nodes {
		if n.Model.Name == "big" {
			kinds = append(kinds, n.Kind)
		}
	}
	if !slices.Equal(kinds, []Kind{KindInit, KindStage}) {
		t.Errorf("big's artifacts are %v, want [init stage]", kinds)
	}
	var out bytes.Buffer
	if err := p.Describe(&out, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "1 to initialise (timed only)") || !strings.Contains(out.String(), "initialisation only, timed and not evaluated") {
		t.Errorf("describe does not show the initialised model:\n%s", out.String())
	}
	tests := []struct{ name, src, want string }{
		{"fine-tune", "[[experiment]]\nname = \"e\"\nmodel = \"big\"\npipeline = [{ technique = \"fprune\", epochs = 0.5 }]\n",
			"experiment[0].pipeline[0]: model big is timed_only and untrained: this stage trains for 0.5 epochs with nothing to learn from"},
		{"teacher", "[[experiment]]\nname = \"e\"\nmodel = \"vit\"\npipeline = [{ technique = \"fdistill\", teacher = \"big\" }]\n",
			"experiment[0].pipeline[0]: big starts from big, which is timed_only and untrained: it has nothing to teach"},
	}
	for _, tt := range tests {
		_, err := tryBuild(t, timed+tt.src, "v1")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
}
