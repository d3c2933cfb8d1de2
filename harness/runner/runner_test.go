package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/config"
	"github.com/vitbench/vitbench/harness/measure"
	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/plan"
	"github.com/vitbench/vitbench/harness/qexec"
	"github.com/vitbench/vitbench/harness/store"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/techniques"
	"github.com/vitbench/vitbench/techniques/compress"
)

// Test techniques: "identity" returns the model unchanged; "boom" calls
// an op that libtorch 1.13 lacks (a stubbed wrapper), which panics inside
// gotch's Must* call like any libtorch error would.
type noParams struct{}

func (noParams) Validate() error { return nil }

// register makes a test technique: its schema takes no parameters.
func register(name, family string, apply compress.Entry) {
	techniques.Register(techniques.Technique{Name: name, Family: family,
		NewConfig: func() techniques.Config { return &noParams{} }})
	compress.Register(name, apply)
}

func init() {
	register("identity", "prune", func(_ context.Context, _ techniques.Config, m *vit.Model, _ compress.Env) (*vit.Model, error) {
		return m, nil
	})
	// "simulate" marks the model fake-quantized without changing a weight:
	// it runs the baseline's float32 graph. "merge" adds token merging to
	// the first block: a different graph with the same weights.
	register("simulate", "quantize", func(_ context.Context, _ techniques.Config, m *vit.Model, _ compress.Env) (*vit.Model, error) {
		m.Cfg.Executed = vit.ExecutedSimulated
		return m, nil
	})
	register("merge", "prune", func(_ context.Context, _ techniques.Config, m *vit.Model, _ compress.Env) (*vit.Model, error) {
		cfg := m.Cfg.WithBlocks()
		cfg.Blocks[0].MergeR = 4
		merged, err := vit.New(cfg, gotch.CPU)
		if err != nil {
			return nil, err
		}
		sd := map[string]*ts.Tensor{}
		for name, v := range m.VS.Variables() {
			sd[name] = &v
		}
		if err := merged.LoadStateDict(sd); err != nil {
			merged.Drop()
			return nil, err
		}
		return merged, nil
	})
	register("boom", "quantize", func(_ context.Context, _ techniques.Config, m *vit.Model, _ compress.Env) (*vit.Model, error) {
		x := ts.MustOnes([]int64{1, 1, 2, 2}, gotch.Float, gotch.CPU)
		defer x.MustDrop()
		y := ts.MustScaledDotProductAttention(x, x, x, ts.None, 0, false, []float64{}) // stubbed on 1.13
		y.MustDrop()
		return m, nil
	})
}

const testSuite = `
[suite]
name = "runner-test"
seed = 1
cache_dir = "CACHE"

[suite.measure]
warmup = 1
iters = 3
throughput_batch = 8
eval_batch = 250

[models.tiny]
arch = { img_size = 32, patch_size = 8, embed_dim = 32, depth = 1, num_heads = 2, mlp_ratio = 2.0 }
data = { name = "synthetic", val_size = 200 }
train = { epochs = 1, batch_size = 100, lr = 3e-3, warmup_epochs = 0.1 }

[[experiment]]
name = "same"
model = "tiny"
pipeline = [ { technique = "identity" } ]

[[experiment]]
name = "fails"
model = "tiny"
pipeline = [ { technique = "boom" } ]
`

type fixture struct {
	dir   string
	plan  *plan.Plan
	db    *store.DB
	cache string
}

// newFixture plans suite (its cache_dir "CACHE" replaced by a temporary
// directory) against a fresh database.
func newFixture(t *testing.T, suite string) *fixture {
	t.Helper()
	dir := t.TempDir()
	cacheDir := filepath.Join(dir, "artifacts")
	src := strings.ReplaceAll(suite, "CACHE", cacheDir)
	s, err := config.Parse(strings.NewReader(src), filepath.Join(dir, "suite.toml"), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Build(s, "test")
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(dir, "results.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &fixture{dir: dir, plan: p, db: db, cache: cacheDir}
}

func (f *fixture) run(t *testing.T) (*Summary, string) {
	t.Helper()
	return f.runThreads(t, 1)
}

func (f *fixture) runThreads(t *testing.T, threads int) (*Summary, string) {
	t.Helper()
	var log bytes.Buffer
	r := &Runner{Plan: f.plan, DB: f.db, Threads: threads, Log: &log, Run: store.Run{SuiteName: "runner-test"}}
	sum, err := r.Execute(context.Background())
	if err != nil {
		t.Fatalf("Execute: %v\n%s", err, log.String())
	}
	return sum, log.String()
}

func find(t *testing.T, es []store.Experiment, name string) store.Experiment {
	t.Helper()
	for _, e := range es {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("no experiment %q", name)
	return store.Experiment{}
}

func metric(e store.Experiment, name string) (float64, bool) {
	for _, m := range e.Metrics {
		if m.Name == name {
			return m.Value, true
		}
	}
	return 0, false
}

// A failing experiment is stored as failed with its error; the others run.
func TestFailureIsRecordedAndSuiteGoesOn(t *testing.T) {
	f := newFixture(t, testSuite)
	sum, log := f.run(t)
	if sum.OK != 2 || sum.Failed != 1 {
		t.Fatalf("ok %d failed %d, want 2 and 1\n%s", sum.OK, sum.Failed, log)
	}
	es, err := f.db.Experiments(context.Background(), sum.RunID)
	if err != nil {
		t.Fatal(err)
	}
	bad := find(t, es, "fails")
	if bad.Status != store.StatusFailed || !strings.Contains(bad.Error, "scaled_dot_product_attention") {
		t.Errorf("failed experiment: status %q error %q; want failed, naming the op", bad.Status, bad.Error)
	}
	base := find(t, es, "tiny")
	same := find(t, es, "same")
	for _, e := range []store.Experiment{base, same} {
		if e.Status != store.StatusOK {
			t.Errorf("%s: status %s (%s)", e.Name, e.Status, e.Error)
		}
		for _, name := range []string{metrics.Top1, metrics.Top5, metrics.Params, metrics.MACs, metrics.SizeBytes, metrics.LatencyP50, metrics.Throughput} {
			if v, ok := metric(e, name); !ok || v <= 0 {
				t.Errorf("%s: metric %s = %v (present %v)", e.Name, name, v, ok)
			}
		}
	}
	// The identity pipeline is the baseline model: same accuracy, ratio 1.
	b1, _ := metric(base, metrics.Top1)
	s1, _ := metric(same, metrics.Top1)
	if b1 != s1 {
		t.Errorf("identity stage changed top-1: %v vs %v", s1, b1)
	}
	if r, ok := metric(same, metrics.MACsRatio); !ok || r != 1 {
		t.Errorf("macs ratio of identity = %v, want 1", r)
	}
	if b1 < 30 {
		t.Errorf("baseline top-1 on the synthetic set = %.1f%%, want >= 30%% (chance 10%%)", b1)
	}
	runs, _ := f.db.Runs(context.Background())
	if len(runs) != 1 || runs[0].Status != store.StatusFailed {
		t.Errorf("run status: %+v", runs)
	}
}

// A second run reuses every verified artifact; a corrupt one is rebuilt.
func TestCacheReuseAndCorruption(t *testing.T) {
	f := newFixture(t, testSuite)
	f.run(t)
	base := f.plan.Experiments[0]
	if !base.IsBaseline {
		t.Fatalf("first experiment %s is not the baseline", base.Name)
	}
	c := cache{dir: f.cache}
	before, err := c.meta(base.Hash())
	if err != nil {
		t.Fatal(err)
	}

	_, log := f.run(t)
	if strings.Contains(log, "rebuilding") || strings.Contains(log, "train tiny") {
		t.Errorf("warm run rebuilt something:\n%s", log)
	}
	after, _ := c.meta(base.Hash())
	if !after.Created.Equal(before.Created) {
		t.Errorf("warm run rewrote the baseline artifact")
	}
	if after.Eval == nil || after.Eval.Version != evalVersion {
		t.Fatalf("cached evaluation %+v, want one of version %d", after.Eval, evalVersion)
	}

	// An evaluation cached by an older forward pass is redone, once.
	stale := *after.Eval
	stale.Version, stale.Top1 = evalVersion-1, -1
	after.Eval = &stale
	if err := c.writeMeta(base.Hash(), after); err != nil {
		t.Fatal(err)
	}
	f.run(t)
	redone, _ := c.meta(base.Hash())
	if redone.Eval == nil || redone.Eval.Version != evalVersion || redone.Eval.Top1 != before.Eval.Top1 {
		t.Errorf("stale evaluation not redone: %+v, want version %d and top-1 %g", redone.Eval, evalVersion, before.Eval.Top1)
	}
	if !redone.Created.Equal(before.Created) {
		t.Errorf("re-evaluating rebuilt the artifact")
	}

	// Truncate the tensor file: the checksum must catch it.
	p := c.path(base.Hash())
	st, _ := os.Stat(p)
	if err := os.Truncate(p, st.Size()/2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.meta(base.Hash()); !errors.Is(err, errNotCached) {
		t.Fatalf("truncated artifact passed its check: %v", err)
	}
	sum, log := f.run(t)
	if !strings.Contains(log, "rebuilding "+short(base.Hash())) {
		t.Errorf("corrupt artifact not reported as rebuilt:\n%s", log)
	}
	if sum.OK != 2 {
		t.Errorf("after rebuild: %d ok, want 2\n%s", sum.OK, log)
	}
	if _, err := c.meta(base.Hash()); err != nil {
		t.Errorf("rebuilt artifact does not verify: %v", err)
	}
	runs, _ := f.db.Runs(context.Background())
	if len(runs) != 4 {
		t.Errorf("%d runs stored, want 4", len(runs))
	}
}

// Experiments that run the same graph share one timing; a different
// graph gets its own.
func TestSameGraphSharesTiming(t *testing.T) {
	f := newFixture(t, testSuite+`
[[experiment]]
name = "simulated"
model = "tiny"
pipeline = [ { technique = "simulate" } ]

[[experiment]]
name = "merged"
model = "tiny"
pipeline = [ { technique = "merge" } ]
`)
	sum, log := f.run(t)
	if sum.OK != 4 {
		t.Fatalf("%d ok, want 4\n%s", sum.OK, log)
	}
	if !strings.Contains(log, "timing 2 distinct graphs for 4 experiments") {
		t.Errorf("log does not report 2 graphs for 4 experiments:\n%s", log)
	}
	es, err := f.db.Experiments(context.Background(), sum.RunID)
	if err != nil {
		t.Fatal(err)
	}
	p50 := map[string]float64{}
	for _, name := range []string{"tiny", "same", "simulated", "merged"} {
		e := find(t, es, name)
		v, ok := metric(e, metrics.LatencyP50)
		if !ok || !(v > 0) {
			t.Fatalf("%s: latency p50 %v (present %v)", name, v, ok)
		}
		p50[name] = v
	}
	if p50["same"] != p50["tiny"] || p50["simulated"] != p50["tiny"] {
		t.Errorf("same graph, different timings: baseline %g, identity %g, simulated %g", p50["tiny"], p50["same"], p50["simulated"])
	}
	if p50["merged"] == p50["tiny"] {
		t.Errorf("token-merged graph reports the baseline's timing %g: not timed on its own", p50["tiny"])
	}
	if e := find(t, es, "simulated"); e.Executed != vit.ExecutedSimulated {
		t.Errorf("simulated experiment stored as executed %q", e.Executed)
	}
}

// TestTimingEngine checks which engine times a suite's graphs, that the
// run records it, and that a token-merging graph is timed under either.
func TestTimingEngine(t *testing.T) {
	for _, tt := range []struct {
		name    string
		threads int
		setting string // a line for [suite.measure]
		want    string
	}{
		{"one thread", 1, "", measure.EngineEager},
		{"default, two threads", 2, "", measure.EngineAuto},
		{"split asked for", 2, "engine = \"split\"\n", measure.EngineSplit},
		{"eager asked for", 2, "engine = \"eager\"\n", measure.EngineEager},
	} {
		t.Run(tt.name, func(t *testing.T) {
			suite := strings.Replace(testSuite, "[suite.measure]\n", "[suite.measure]\n"+tt.setting, 1) + `
[[experiment]]
name = "merged"
model = "tiny"
pipeline = [ { technique = "merge" } ]
`
			f := newFixture(t, suite)
			sum, log := f.runThreads(t, tt.threads)
			if !strings.Contains(log, "engine "+tt.want+"\n") {
				t.Errorf("log does not name engine %s:\n%s", tt.want, log)
			}
			runs, err := f.db.Runs(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) != 1 || runs[0].Engine != tt.want {
				t.Fatalf("run recorded engine %q, want %q", runs[0].Engine, tt.want)
			}
			es, err := f.db.Experiments(context.Background(), sum.RunID)
			if err != nil {
				t.Fatal(err)
			}
			// What each timing ran: split over the threads, or eager;
			// auto may choose either, graph by graph and batch by batch.
			ran := map[string][]float64{measure.EngineEager: {0}, measure.EngineSplit: {float64(tt.threads)}, measure.EngineAuto: {0, float64(tt.threads)}}[tt.want]
			for _, name := range []string{"tiny", "merged"} {
				if v, ok := metric(find(t, es, name), metrics.LatencyP50); !ok || !(v > 0) {
					t.Errorf("%s: latency p50 %v (present %v)", name, v, ok)
				}
				for _, m := range []string{metrics.LatencySplit, metrics.ThroughputSplit} {
					if v, ok := metric(find(t, es, name), m); !ok || !slices.Contains(ran, v) {
						t.Errorf("%s: %s = %v (present %v), want one of %v", name, m, v, ok, ran)
					}
				}
			}
		})
	}
}

// TestInt8EngineNames: the suite's int8_engine values are the ones
// qexec.Prepare accepts (config keeps its own copy so that parsing does
// not link the kernels).
func TestInt8EngineNames(t *testing.T) {
	if config.Int8OneDNN != qexec.EngineOneDNN || config.Int8None != qexec.EngineNone {
		t.Errorf("config's int8 engines %q, %q; qexec's %q, %q", config.Int8OneDNN, config.Int8None, qexec.EngineOneDNN, qexec.EngineNone)
	}
}

// TestQuantizedExecutesInt8: a quantized experiment runs on int8 kernels,
// stores both accuracies and what executed how, and is timed on its own
// graph; with int8_engine = "none" it stays simulated, saying why.
func TestQuantizedExecutesInt8(t *testing.T) {
	const quantized = `
[[experiment]]
name = "w8a8"
model = "tiny"
pipeline = [ { technique = "quantize", weight_bits = 8, act_bits = 8, calib_images = 32, layers = ["qkv", "proj", "fc1", "fc2", "head"] } ]
`
	for _, tt := range []struct {
		engine   string
		executed string
		detail   string
		graphs   int
	}{
		{"onednn", qexec.Int8, "oneDNN ", 2},
		{"none", vit.ExecutedSimulated, "simulated: int8 engine none", 1},
	} {
		t.Run(tt.engine, func(t *testing.T) {
			suite := strings.Replace(testSuite, "eval_batch = 250", "eval_batch = 250\nint8_engine = \""+tt.engine+"\"", 1)
			f := newFixture(t, suite+quantized)
			sum, log := f.run(t)
			if sum.OK != 3 {
				t.Fatalf("%d ok, want 3\n%s", sum.OK, log)
			}
			if want := fmt.Sprintf("timing %d distinct graphs", tt.graphs); !strings.Contains(log, want) {
				t.Errorf("log does not say %q:\n%s", want, log)
			}
			es, err := f.db.Experiments(context.Background(), sum.RunID)
			if err != nil {
				t.Fatal(err)
			}
			e := find(t, es, "w8a8")
			if e.Executed != tt.executed || !strings.HasPrefix(e.ExecDetail, tt.detail) {
				t.Errorf("executed %q, detail %q: want %q, %q...", e.Executed, e.ExecDetail, tt.executed, tt.detail)
			}
			top1, _ := metric(e, metrics.Top1)
			sim, ok := metric(e, metrics.Top1Simulated)
			if ok != (tt.executed == qexec.Int8) {
				t.Errorf("top1_simulated stored = %v for an experiment executed as %s", ok, e.Executed)
			}
			if ok && math.Abs(top1-sim) > 5 {
				t.Errorf("executed top-1 %.2f, simulated %.2f: further apart than int8 rounding explains", top1, sim)
			}
			runs, err := f.db.Runs(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := runs[len(runs)-1].Int8Engine; !strings.HasPrefix(got, map[string]string{"onednn": "oneDNN", "none": "none"}[tt.engine]) {
				t.Errorf("run's int8 engine %q", got)
			}
		})
	}
}

// TestQuantSitesStored: a quantized experiment stores every quantized
// site (weights and activations, with their bits, kind and granularity)
// and its mixed-precision search; the float baseline stores none.
func TestQuantSitesStored(t *testing.T) {
	const mixed = `
[[experiment]]
name = "mixed"
model = "tiny"
pipeline = [ { technique = "quantize", act_bits = 8, calib_images = 32, mixed_precision = true, bit_choices = [4, 8], budget_bits = 6, hutchinson_samples = 2 } ]
`
	suite := strings.Replace(testSuite, "eval_batch = 250", "eval_batch = 250\nint8_engine = \"none\"", 1)
	f := newFixture(t, suite+mixed)
	sum, log := f.run(t)
	es, err := f.db.Experiments(context.Background(), sum.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if st := find(t, es, "mixed").Status; st != store.StatusOK {
		t.Fatalf("mixed: status %s\n%s", st, log)
	}
	if q := find(t, es, "tiny").Quant; q != nil {
		t.Errorf("the float baseline stores sites %+v", q)
	}
	q := find(t, es, "mixed").Quant
	if q == nil || q.Mixed == nil {
		t.Fatalf("stored quantization %+v: want sites and a mixed-precision search", q)
	}
	bits := map[int]int{}
	var weights, acts int
	for _, s := range q.Sites {
		switch s.Kind {
		case store.SiteWeight:
			weights++
			if strings.HasPrefix(s.Key, "blocks.") {
				bits[s.Bits]++
				if len(s.Sensitivity) != 2 || s.Axis != 0 || !s.Symmetric || s.Quantizer != vit.QuantUniform {
					t.Errorf("weight site %+v: want per-channel symmetric uniform with two sensitivities", s)
				}
			}
		case store.SiteAct:
			acts++
			if s.Bits != 8 || s.Axis != -1 {
				t.Errorf("activation site %+v: want 8 bits per tensor", s)
			}
		default:
			t.Errorf("site kind %q", s.Kind)
		}
	}
	if weights == 0 || acts == 0 || bits[4] == 0 || bits[8] == 0 {
		t.Errorf("%d weight sites (block widths %v), %d activation sites: want both widths of the search", weights, bits, acts)
	}
	if q.Mixed.Cost > q.Mixed.Limit || !slices.Equal(q.Mixed.Choices, []int{4, 8}) {
		t.Errorf("search %+v: want cost within limit and choices [4 8]", q.Mixed)
	}
}

// Every accuracy and timing is stored with what its intervals come from,
// and the intervals and paired tests are computed from it: an identity
// stage ties its baseline image for image (delta 0, p = 1), a different
// graph is timed on its own samples.
func TestIntervalsStored(t *testing.T) {
	f := newFixture(t, testSuite+`
[[experiment]]
name = "merged"
model = "tiny"
pipeline = [ { technique = "merge" } ]
`)
	sum, log := f.run(t)
	es, err := f.db.Experiments(context.Background(), sum.RunID)
	if err != nil {
		t.Fatal(err)
	}
	base := find(t, es, "tiny")
	o, ok := base.Outcome(metrics.Top1)
	if !ok || o.N == 0 || len(o.Bits) != (o.N+7)/8 || !strings.Contains(o.Images, "all") {
		t.Fatalf("baseline top-1 outcome %+v (present %v)\n%s", o, ok, log)
	}
	for _, name := range []string{"tiny", "same", "merged"} {
		e := find(t, es, name)
		for _, m := range []string{metrics.Top1, metrics.Top5, metrics.LatencyP50, metrics.Throughput} {
			v, _ := metric(e, m)
			lo, okLo := metric(e, metrics.Lo(m))
			hi, okHi := metric(e, metrics.Hi(m))
			if !okLo || !okHi || !(lo <= v && v <= hi) {
				t.Errorf("%s: %s %g, interval [%g, %g] (present %v %v)", name, m, v, lo, hi, okLo, okHi)
			}
		}
		if n := len(e.SampleValues(store.SeriesLatency)); n != 3 {
			t.Errorf("%s: %d latency samples, want the suite's 3 iterations", name, n)
		}
		if n := len(e.SampleValues(store.SeriesThroughput)); n == 0 {
			t.Errorf("%s: no throughput samples", name)
		}
	}
	same := find(t, es, "same")
	for m, want := range map[string]float64{
		metrics.Top1Delta: 0, metrics.Lo(metrics.Top1Delta): 0, metrics.Hi(metrics.Top1Delta): 0,
		metrics.P(metrics.Top1Delta): 1, metrics.P(metrics.Speedup): 1,
	} {
		if v, ok := metric(same, m); !ok || v != want {
			t.Errorf("identity stage: %s = %g (present %v), want %g", m, v, ok, want)
		}
	}
	merged := find(t, es, "merged")
	if p, ok := metric(merged, metrics.P(metrics.Speedup)); !ok || !(p >= 0 && p <= 1) {
		t.Errorf("merged graph: speed-up p = %g (present %v)", p, ok)
	}
	if slices.Equal(merged.SampleValues(store.SeriesLatency), base.SampleValues(store.SeriesLatency)) {
		t.Errorf("merged graph stored the baseline's latency samples")
	}
}

// A model with seeds is trained once per seed, and each replica of an
// experiment on it is measured against the baseline of its own seed.
func TestSeedReplicas(t *testing.T) {
	suite := strings.Replace(testSuite, "train = { epochs = 1, batch_size = 100, lr = 3e-3, warmup_epochs = 0.1 }",
		"train = { epochs = 1, batch_size = 100, lr = 3e-3, warmup_epochs = 0.1 }\nseeds = [1, 2]", 1)
	suite = strings.Replace(suite, "[[experiment]]\nname = \"fails\"\nmodel = \"tiny\"\npipeline = [ { technique = \"boom\" } ]\n", "", 1)
	f := newFixture(t, suite)
	sum, log := f.run(t)
	if sum.OK != 4 || sum.Failed != 0 {
		t.Fatalf("ok %d failed %d, want 4 and 0\n%s", sum.OK, sum.Failed, log)
	}
	es, err := f.db.Experiments(context.Background(), sum.RunID)
	if err != nil {
		t.Fatal(err)
	}
	c := cache{dir: f.cache}
	sums := map[string]bool{}
	for _, tt := range []struct {
		name, replica, baseline string
		seed                    int64
	}{
		{"tiny/seed1", "tiny", "", 1},
		{"tiny/seed2", "tiny", "", 2},
		{"same/seed1", "same", "tiny/seed1", 1},
		{"same/seed2", "same", "tiny/seed2", 2},
	} {
		e := find(t, es, tt.name)
		if e.Seed == nil || *e.Seed != tt.seed || e.Replica != tt.replica || e.Baseline != tt.baseline {
			t.Errorf("%s: seed %v replica %q baseline %q, want %d %q %q", e.Name, e.Seed, e.Replica, e.Baseline, tt.seed, tt.replica, tt.baseline)
		}
		if tt.baseline != "" {
			// The identity stage keeps its own seed's model: no change
			// against that baseline (another seed's model differs).
			if d, ok := metric(e, metrics.Top1Delta); !ok || d != 0 {
				t.Errorf("%s: top-1 delta %v (present %v), want 0 against %s", e.Name, d, ok, tt.baseline)
			}
			continue
		}
		meta, err := c.meta(e.Hash)
		if err != nil {
			t.Fatal(err)
		}
		sums[meta.SHA256] = true
	}
	if len(sums) != 2 {
		t.Errorf("the two seeds trained %d distinct models, want 2", len(sums))
	}
	sets := store.Replicas(es)
	if len(sets) != 2 || sets[0].Name != "tiny" || sets[1].Name != "same" {
		t.Fatalf("replica sets %+v, want tiny and same", sets)
	}
	for _, set := range sets {
		top1, ok := set.Metric(metrics.Top1)
		a, _ := metric(*set.Experiments[0], metrics.Top1)
		b, _ := metric(*set.Experiments[1], metrics.Top1)
		if !ok || top1.N != 2 || math.Abs(top1.Value-(a+b)/2) > 1e-9 || !slices.Equal(set.Seeds, []int64{1, 2}) {
			t.Errorf("%s: top-1 mean %+v of %v and %v, seeds %v", set.Name, top1, a, b, set.Seeds)
		}
	}
}

// TestTimedOnlyModel: a timed_only model is never trained nor evaluated;
// it and its experiments store costs and timings with intervals, and no
// accuracy at all (not a zero, not NaN), while a trained model beside it
// keeps its top-1. A stage on it that would fine-tune is refused.
func TestTimedOnlyModel(t *testing.T) {
	f := newFixture(t, testSuite+`
[models.scale]
arch = { img_size = 32, patch_size = 8, embed_dim = 32, depth = 2, num_heads = 2, mlp_ratio = 2.0, num_classes = 100 }
data = { name = "synthetic", train_size = 64, test_size = 32 }
timed_only = true

[[experiment]]
name = "scale-merged"
model = "scale"
pipeline = [ { technique = "merge" } ]
`)
	sum, log := f.run(t)
	if sum.OK != 4 {
		t.Fatalf("%d ok, want 4\n%s", sum.OK, log)
	}
	if !strings.Contains(log, "scale-merged") || !strings.Contains(log, "timed only") {
		t.Errorf("log does not say the scale experiments were timed only:\n%s", log)
	}
	es, err := f.db.Experiments(context.Background(), sum.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := metric(find(t, es, "tiny"), metrics.Top1); !ok {
		t.Errorf("the trained model lost its top-1")
	}
	for _, name := range []string{"scale", "scale-merged"} {
		e := find(t, es, name)
		for _, m := range []string{metrics.Top1, metrics.Top5, metrics.Top1Delta, metrics.EvalSeconds} {
			if v, ok := metric(e, m); ok {
				t.Errorf("%s: timed-only experiment stores %s = %g", name, m, v)
			}
		}
		if len(e.Outcomes) != 0 {
			t.Errorf("%s: %d outcome sets stored for a model never evaluated", name, len(e.Outcomes))
		}
		for _, m := range []string{metrics.LatencyP50, metrics.Throughput, metrics.MACs, metrics.Params, metrics.SizeBytes} {
			if v, ok := metric(e, m); !ok || !(v > 0) {
				t.Errorf("%s: %s = %g (present %v)", name, m, v, ok)
			}
		}
		if _, ok := metric(e, metrics.Hi(metrics.LatencyP50)); !ok {
			t.Errorf("%s: no interval on its latency", name)
		}
		if v, _ := metric(e, metrics.TrainSeconds); v > 5 {
			t.Errorf("%s: %g s to build an initialisation: was it trained?", name, v)
		}
	}
	merged := find(t, es, "scale-merged")
	for _, m := range []string{metrics.Speedup, metrics.MACsRatio, metrics.P(metrics.Speedup)} {
		if _, ok := metric(merged, m); !ok {
			t.Errorf("scale-merged: no %s against its timed-only baseline", m)
		}
	}
	if r, _ := metric(merged, metrics.MACsRatio); !(r < 1) {
		t.Errorf("scale-merged: MACs ratio %g, want < 1 (tokens merged)", r)
	}
}
