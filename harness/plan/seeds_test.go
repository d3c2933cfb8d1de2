package plan

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vitbench/vitbench/harness/config"
)

// A suite without seeds, or with one seed equal to the suite's, must keep
// the hashes that users' caches hold; another seed changes exactly the
// artifacts it makes.
func TestSeedHashes(t *testing.T) {
	when := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	base := hashes(t, hashSuite, "v1", when)
	tests := []struct {
		name    string
		from    string // replaced in hashSuite by to
		to      string
		changed []string // the nodes whose hash must change; the others must not
	}{
		{"the suite's seed on the model", "train = { epochs = 2, batch_size = 100 }", "train = { epochs = 2, batch_size = 100 }\nseeds = [1]", nil},
		{"the suite's seed on the experiment", "model = \"vit\"", "model = \"vit\"\nseeds = [1]", nil},
		{"another seed on the experiment", "model = \"vit\"", "model = \"vit\"\nseeds = [2]", []string{"e[1]", "e[2]"}},
		{"another seed on the model", "train = { epochs = 2, batch_size = 100 }", "train = { epochs = 2, batch_size = 100 }\nseeds = [2]", []string{"vit[0]", "e[0]", "e[1]", "e[2]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(hashSuite, tt.from) {
				t.Fatalf("%q not in the suite", tt.from)
			}
			got := hashes(t, strings.Replace(hashSuite, tt.from, tt.to, 1), "v1", when)
			if len(got) != len(base) {
				t.Fatalf("nodes %v, want those of %v", got, base)
			}
			for k, h := range base {
				if changed := got[k] != h; changed != slices.Contains(tt.changed, k) {
					t.Errorf("%s changed = %t, want %t", k, changed, !changed)
				}
			}
		})
	}
}

func TestSeedReplicas(t *testing.T) {
	// replica is what one experiment of the plan must be.
	type replica struct {
		name, replica, baseline string
		seed                    int64
	}
	tests := []struct {
		name  string
		suite string // after header (suite seed 1, model vit)
		want  []replica
		nodes int
	}{
		{"none", `
[[experiment]]
name = "q"
model = "vit"
pipeline = [{ technique = "fquantize", weight_bits = [8, 4] }]
`, []replica{{"vit", "vit", "vit", 1}, {"q/w8", "q/w8", "vit", 1}, {"q/w4", "q/w4", "vit", 1}}, 3},
		{"on a model: baselines and experiments per seed, each against its own seed's baseline", `
seeds = [0, 2]
[[experiment]]
name = "q"
model = "vit"
pipeline = [{ technique = "fquantize", weight_bits = [8, 4] }]
`, []replica{
			{"vit/seed0", "vit", "vit/seed0", 0}, {"vit/seed2", "vit", "vit/seed2", 2},
			{"q/w8-seed0", "q/w8", "vit/seed0", 0}, {"q/w8-seed2", "q/w8", "vit/seed2", 2},
			{"q/w4-seed0", "q/w4", "vit/seed0", 0}, {"q/w4-seed2", "q/w4", "vit/seed2", 2},
		}, 6},
		{"on an experiment: one model, its stages per seed", `
[[experiment]]
name = "q"
model = "vit"
seeds = [3, 4, 5]
pipeline = [{ technique = "fquantize", weight_bits = 4 }]
`, []replica{{"vit", "vit", "vit", 1}, {"q/seed3", "q", "vit", 3}, {"q/seed4", "q", "vit", 4}, {"q/seed5", "q", "vit", 5}}, 4},
		{"an experiment's seeds among its model's", `
seeds = [0, 1, 2]
[[experiment]]
name = "q"
model = "vit"
seeds = [2, 1]
pipeline = [{ technique = "fquantize", weight_bits = 4 }]
`, []replica{
			{"vit/seed0", "vit", "vit/seed0", 0}, {"vit/seed1", "vit", "vit/seed1", 1}, {"vit/seed2", "vit", "vit/seed2", 2},
			{"q/seed2", "q", "vit/seed2", 2}, {"q/seed1", "q", "vit/seed1", 1},
		}, 5},
		{"one seed: no seed in the names", `
[[experiment]]
name = "q"
model = "vit"
seeds = [7]
pipeline = [{ technique = "fquantize", weight_bits = 4 }]
`, []replica{{"vit", "vit", "vit", 1}, {"q", "q", "vit", 7}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := build(t, header+tt.suite)
			var got []replica
			hashes := map[string]bool{}
			for _, e := range p.Experiments {
				got = append(got, replica{e.Name, e.Replica, e.Baseline, e.Seed})
				if hashes[e.Hash()] {
					t.Errorf("%s shares its artifact with another experiment", e.Name)
				}
				hashes[e.Hash()] = true
				for _, h := range e.Nodes {
					if n := nodeOf(p, h); n.Seed != e.Seed && n.Kind == KindStage {
						t.Errorf("%s: stage node seeded %d, want %d", e.Name, n.Seed, e.Seed)
					}
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("experiments\n got %v\nwant %v", got, tt.want)
			}
			if len(p.Nodes) != tt.nodes {
				t.Errorf("%d nodes, want %d", len(p.Nodes), tt.nodes)
			}
			// Each experiment starts from its baseline's artifact.
			byName := map[string]*Experiment{}
			for _, e := range p.Experiments {
				byName[e.Name] = e
			}
			for _, e := range p.Experiments {
				if b := byName[e.Baseline]; b == nil || b.Hash() != e.Nodes[0] || nodeOf(p, e.Nodes[0]).Seed != b.Seed {
					t.Errorf("%s does not start from its baseline %s", e.Name, e.Baseline)
				}
			}
		})
	}
}

func nodeOf(p *Plan, h string) *Node {
	for _, n := range p.Nodes {
		if n.Hash == h {
			return n
		}
	}
	return nil
}

// A reference to a model or experiment with seeds means the replica of the
// referrer's seed, unless it names one.
func TestSeedReferences(t *testing.T) {
	const models = `
[models.teach]
arch = { img_size = 32, patch_size = 4, embed_dim = 64, depth = 2, num_heads = 2 }
data = "cifar10"
seeds = [0, 1]
`
	tests := []struct {
		name    string
		suite   string // after header + models
		student string // an experiment
		teacher string // the experiment whose artifact it must reference
		err     string // instead: the error's key and message fragment
	}{
		{"same seed", `
[models.s]
arch = { img_size = 32, patch_size = 4, embed_dim = 32, depth = 1, num_heads = 1 }
data = "cifar10"
teacher = "teach"
seeds = [1, 0]
`, "s/seed1", "teach/seed1", ""},
		{"a stage, by its experiment's seed", `
[[experiment]]
name = "kd"
model = "vit"
seeds = [0, 1]
pipeline = [{ technique = "fdistill", teacher = "teach" }]
`, "kd/seed0", "teach/seed0", ""},
		{"one named", `
[[experiment]]
name = "kd"
model = "vit"
pipeline = [{ technique = "fdistill", teacher = "teach/seed1" }]
`, "kd", "teach/seed1", ""},
		{"a seed the teacher lacks", `
[[experiment]]
name = "kd"
model = "vit"
seeds = [5]
pipeline = [{ technique = "fdistill", teacher = "teach" }]
`, "", "", "experiment[0].pipeline[0]: model teach is trained with seeds [0 1], not with seed 5"},
		{"a seed named that it lacks", `
[[experiment]]
name = "kd"
model = "vit"
pipeline = [{ technique = "fdistill", teacher = "teach/seed7" }]
`, "", "", `experiment[0].pipeline[0]: no model "teach/seed7"`},
		{"an experiment with seeds, by the student's seed", `
[[experiment]]
name = "t"
model = "teach"
pipeline = [{ technique = "fprune", amount = [0.25, 0.5] }]
[models.s]
arch = { img_size = 32, patch_size = 4, embed_dim = 32, depth = 1, num_heads = 1 }
data = "cifar10"
teacher = "t/a0.5"
seeds = [0, 1]
`, "s/seed0", "t/a0.5-seed0", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tryBuild(t, header+models+tt.suite, "v1")
			if tt.err != "" {
				var list config.ErrorList
				if !errors.As(err, &list) || len(list) != 1 || !strings.Contains(list[0].Key+": "+list[0].Msg, tt.err) {
					t.Fatalf("got %v, want one error %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			byName := map[string]*Experiment{}
			for _, e := range p.Experiments {
				byName[e.Name] = e
			}
			s, teacher := byName[tt.student], byName[tt.teacher]
			if s == nil || teacher == nil {
				t.Fatalf("no %s or %s in %v", tt.student, tt.teacher, experimentNames(p))
			}
			last := nodeOf(p, s.Hash())
			if !slices.Contains(last.Needs, teacher.Hash()) {
				t.Errorf("%s needs %v, want %s's artifact %s", tt.student, last.Needs, tt.teacher, teacher.Hash()[:8])
			}
		})
	}
}
