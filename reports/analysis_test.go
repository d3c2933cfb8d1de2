package reports

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/store"
)

// mkRow builds a successful row with top-1 and MACs (G).
func mkRow(name string, top1, gmacs float64, fams ...string) *row {
	e := &store.Experiment{Name: name, Status: store.StatusOK, Families: fams, Metrics: []metrics.Metric{
		metrics.New(metrics.Top1, top1), metrics.New(metrics.MACs, gmacs*1e9),
	}}
	if len(fams) > 0 {
		e.Baseline = "base"
	}
	return newRow(e, nil)
}

func TestParetoFront(t *testing.T) {
	tests := []struct {
		name string
		pts  [][2]float64 // x, y
		want []int        // indexes into pts, by cost
	}{
		{"empty", nil, nil},
		{"single", [][2]float64{{1, 50}}, []int{0}},
		{"staircase", [][2]float64{{3, 80}, {1, 60}, {2, 70}}, []int{1, 2, 0}},
		{"dominated dropped", [][2]float64{{1, 60}, {2, 55}, {3, 80}, {3, 70}}, []int{0, 2}},
		{"equal cost keeps the more accurate", [][2]float64{{2, 60}, {2, 65}}, []int{1}},
		{"duplicates keep the first", [][2]float64{{2, 60}, {2, 60}}, []int{0}},
		{"NaN ignored", [][2]float64{{math.NaN(), 90}, {1, 50}}, []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pts []point
			rows := make([]*row, len(tt.pts))
			for i, p := range tt.pts {
				rows[i] = mkRow("r", p[1], p[0])
				pts = append(pts, point{x: p[0], y: p[1], r: rows[i]})
			}
			got := paretoFront(pts)
			if len(got) != len(tt.want) {
				t.Fatalf("front has %d points, want %d: %+v", len(got), len(tt.want), got)
			}
			for i, w := range tt.want {
				if got[i].r != rows[w] {
					t.Errorf("front[%d] = (%g, %g), want point %d (%g, %g)", i, got[i].x, got[i].y, w, tt.pts[w][0], tt.pts[w][1])
				}
			}
		})
	}
}

func TestDominates(t *testing.T) {
	a := mkRow("a", 80, 1, "prune")
	tests := []struct {
		name string
		b    *row
		want bool
	}{
		{"more accurate and cheaper", mkRow("b", 70, 2, "prune"), true},
		{"equal accuracy, cheaper", mkRow("b", 80, 2, "prune"), true},
		{"equal in everything", mkRow("b", 80, 1, "prune"), false},
		{"less accurate", mkRow("b", 85, 2, "prune"), false},
		{"costlier", mkRow("b", 70, 0.5, "prune"), false},
		{"no common cost axis", newRow(&store.Experiment{Name: "b", Status: store.StatusOK, Metrics: []metrics.Metric{metrics.New(metrics.Top1, 10)}}, nil), false},
	}
	for _, tt := range tests {
		if got := dominates(a, tt.b, costAxes); got != tt.want {
			t.Errorf("%s: dominates = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestGeomean(t *testing.T) {
	ratios := map[string]float64{"a": 2, "b": 8, "c": -1}
	names := []string{"a", "b", "c", "d"}
	g := geomeanOf("size", names, func(i int) (float64, bool) {
		v, ok := ratios[names[i]]
		return v, ok
	})
	if math.Abs(g.Value-4) > 1e-12 || g.N != 2 || g.Total != 4 {
		t.Errorf("geomean = %+v, want 4 over 2 of 4", g)
	}
	if len(g.Warnings) != 2 || !strings.Contains(g.Warnings[0].Error(), "no ratio for d") || !strings.Contains(g.Warnings[1].Error(), "not positive for c") {
		t.Errorf("warnings = %v", g.Warnings)
	}
	none := geomeanOf("x", []string{"a"}, func(int) (float64, bool) { return 0, false })
	if !math.IsNaN(none.Value) || none.N != 0 {
		t.Errorf("geomean of nothing = %+v, want NaN", none)
	}

	if err := setDiff("latency", "A", "B", []string{"x", "y"}, []string{"y", "x"}); err != nil {
		t.Errorf("same sets: %v", err)
	}
	err := setDiff("latency", "A", "B", []string{"x", "y", "z"}, []string{"y", "w"})
	if err == nil || !strings.Contains(err.Error(), "2 only in A (x, z)") || !strings.Contains(err.Error(), "1 only in B (w)") || !strings.Contains(err.Error(), "covers the 1 in both") {
		t.Errorf("setDiff = %v", err)
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		name string
		v    float64
		unit string
		want string
	}{
		{metrics.LatencyP50, 0.0123, "", "12.30 ms"},
		{metrics.TrainSeconds, 95, "", "95.00 s"},
		{metrics.SizeBytes, 22 << 20, "", "22.00 MiB"},
		{metrics.Params, 5_717_416, "", "5.72 M"},
		{metrics.MACs, 1.26e9, "", "1.26 G"},
		{metrics.Top1, 79.6, "", "79.60%"},
		{metrics.Top1Delta, -0.5, "", "-0.500 pts"},
		{metrics.Speedup, 1.5, "", "1.50×"},
		{metrics.Throughput, 1234.4, "", "1234 img/s"},
		{"custom_metric", 3, "widgets", "3.00 widgets"},
		{metrics.ThroughputBatch, 64, "", "64.00"},
	}
	for _, tt := range tests {
		if got := fmtMetric(tt.name, tt.v, tt.unit); got != tt.want {
			t.Errorf("fmtMetric(%s, %g) = %q, want %q", tt.name, tt.v, got, tt.want)
		}
	}
	for v, want := range map[float64]string{0: "0", 0.5: "0.500", 0.0512: "0.0512", 1e-5: "1e-05", -3.14159: "-3.14", 250.25: "250.2", math.NaN(): "—"} {
		if got := fmtNum(v); got != want {
			t.Errorf("fmtNum(%g) = %q, want %q", v, got, want)
		}
	}
	if got := fmtSigned(-1.5); got != "−1.50" {
		t.Errorf("fmtSigned(-1.5) = %q", got)
	}
	for _, tt := range []struct {
		metric string
		v      float64
		want   string
	}{
		{metrics.Top1Delta, 1, "good"},
		{metrics.Top1Delta, -1, "bad"},
		{metrics.MACsRatio, 0.5, "good"},
		{metrics.Speedup, 0.5, "bad"},
		{metrics.ThroughputBatch, 2, ""}, // direction neither
		{"unknown_metric", 2, ""},
		{metrics.Speedup, 1, ""},
	} {
		pivot := 1.0
		if tt.metric == metrics.Top1Delta {
			pivot = 0
		}
		if got := deltaClass(tt.metric, tt.v, pivot); got != tt.want {
			t.Errorf("deltaClass(%s, %g) = %q, want %q", tt.metric, tt.v, got, tt.want)
		}
	}
}

func TestSlugAndClassify(t *testing.T) {
	if got := slug("baseline"); got != "baseline" {
		t.Errorf("slug(baseline) = %q", got)
	}
	a, b := slug("ptq/w8a8"), slug("ptq-w8a8")
	if a == b || !strings.HasPrefix(a, "ptq-w8a8-") || b != "ptq-w8a8" {
		t.Errorf("slugs %q and %q: distinct names must stay distinct", a, b)
	}
	if got := slug("<script>"); strings.ContainsAny(got, "<>/\"'") {
		t.Errorf("slug kept unsafe characters: %q", got)
	}
	if got := slug(""); got == "" {
		t.Errorf("slug of empty name is empty")
	}
	for _, tt := range []struct {
		fams     []string
		fam, set string
	}{
		{nil, familyBaseline, ""},
		{[]string{"baseline"}, familyBaseline, ""},
		{[]string{"quantize"}, familyQuantize, "quantize"},
		{[]string{"prune", "prune"}, familyPrune, "prune"},
		{[]string{"prune", "distill", "quantize"}, familyCombination, "prune+distill+quantize"},
		{[]string{"nas"}, familyOther, "nas"},
	} {
		fam, set := classify(&store.Experiment{Families: tt.fams})
		if fam != tt.fam || set != tt.set {
			t.Errorf("classify(%v) = %q, %q, want %q, %q", tt.fams, fam, set, tt.fam, tt.set)
		}
	}
}

func TestRelativeMetrics(t *testing.T) {
	v := newView(synthSnapshot().Runs, synthSnapshot().Experiments)
	var r *row
	for _, x := range v.rows {
		if x.exp.Name == "prune/heads-0.5" && x.exp.RunID == 1 {
			r = x
		}
	}
	if r == nil || r.base == nil {
		t.Fatalf("prune/heads-0.5 not joined to its baseline")
	}
	check := func(what string, got float64, ok bool, want float64) {
		t.Helper()
		if !ok || math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %g (ok %v), want %g", what, got, ok, want)
		}
	}
	d, ok := r.top1Delta()
	check("Δ top-1", d, ok, 75.5-80)
	sp, ok := r.speedup()
	check("speed-up", sp, ok, 1/0.6)
	mr, ok := r.macsRatio()
	check("MACs ratio", mr, ok, 0.55)
	cr, ok := r.compression()
	check("compression", cr, ok, 1/0.6)

	// Stored relative metrics win over computed ones.
	r.vals[metrics.Speedup] = 9
	sp, ok = r.speedup()
	check("stored speed-up", sp, ok, 9)
}

func TestFindings(t *testing.T) {
	snap := synthSnapshot()
	snap.Runs = snap.Runs[:1]
	var exps []store.Experiment
	for _, e := range snap.Experiments {
		if e.RunID == 1 && e.Dataset == "cifar10" {
			exps = append(exps, e)
		}
	}
	v := newView(snap.Runs, exps)
	if len(v.groups) != 1 || v.groups[0].Base == nil {
		t.Fatalf("groups = %+v", v.groups)
	}
	f := computeFindings(v.groups[0])
	text := strings.Join(f.Sentences, "\n")
	for _, want := range []string{
		"The baseline “baseline” reaches 80.00% top-1 at 4.00 ms measured latency, 20.98 MiB model size, 1.20 G executed MACs",
		"Top-1 against executed MACs: 4 of 11 experiments are on the Pareto front, cheapest first: “kd/tiny” (74.00%, 0.360 G), “combo/prune-kd-int8” (77.50%, 0.600 G; gain not tested), “prune/heads-0.25” (78.00%, 0.960 G; gain not tested), “baseline” (80.00%, 1.20 G; gain not tested).",
		// ≤ 50% size (10.49 MiB): ptq/w8a8 (0.25) is the best.
		"Within half the baseline's model size (≤ 10.49 MiB), the most accurate is “ptq/w8a8” (quantize) at 79.60% top-1",
		"The combination “combo/prune-kd-int8” (prune+distill+quantize) is no more costly on every executed axis and no less accurate than 3 single-technique experiments; top-1 differences not tested (no per-image outcomes) to",
		"“prune/heads-0.5”",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("findings lack %q\nin:\n%s", want, text)
		}
	}
	// Without per-image outcomes nothing is claimed as significant.
	if strings.Contains(text, "significantly more accurate") || strings.Contains(text, "no significant difference") {
		t.Errorf("findings claim a significant difference without outcomes:\n%s", text)
	}
	if len(f.Missing) != 1 || !strings.Contains(f.Missing[0], "prune/tokens") {
		t.Errorf("missing = %q, want the failed prune/tokens named", f.Missing)
	}
	// Budget table: MACs ≤ 50%: best is the combination; prune has none.
	var row *budgetRow
	for i := range f.Budgets {
		if f.Budgets[i].Axis == axisMACs.label && strings.HasPrefix(f.Budgets[i].Label, "≤ 50%") {
			row = &f.Budgets[i]
		}
	}
	if row == nil {
		t.Fatalf("no MACs ≤ 50%% budget row in %+v", f.Budgets)
	}
	got := map[string]budgetCell{}
	for i, fam := range f.Families {
		got[fam] = row.Cells[i]
	}
	if got[familyPrune].Text != "—" || got[familyDistill].Text != "74.00%" || !got[familyCombination].Best || got[familyDistill].Best {
		t.Errorf("MACs ≤ 50%% row = %+v", got)
	}
}

func TestFindingsLatencyUsesBaselineMachine(t *testing.T) {
	// Two machines; the newer run lacks kd/tiny, so the current view takes
	// kd/tiny from the older (slower) machine. Its latency must not be
	// compared with the newer machine's baseline.
	v := newView(synthSnapshot().Runs, synthSnapshot().Experiments)
	var g *group
	for _, x := range v.groups {
		if x.Dataset == "cifar10" {
			g = x
		}
	}
	for _, p := range g.points(axisLatency) {
		if p.r.run.ID != g.Base.run.ID {
			t.Errorf("latency point %s from run %d, baseline from run %d", p.r.exp.Name, p.r.run.ID, g.Base.run.ID)
		}
	}
	if n := len(g.points(axisMACs)); n != 11 {
		t.Errorf("MACs points = %d, want 11 from both runs", n)
	}
}

func TestSweptKeys(t *testing.T) {
	mk := func(params map[string]string) *row {
		return newRow(&store.Experiment{Name: "x", Status: store.StatusOK, Params: params}, nil)
	}
	tests := []struct {
		name string
		rows []*row
		want string
	}{
		{"co-varying bits make one sweep", []*row{
			mk(map[string]string{"weight_bits": "8", "act_bits": "8", "calibrator": "minmax"}),
			mk(map[string]string{"weight_bits": "4", "act_bits": "4", "calibrator": "minmax"}),
			mk(map[string]string{"weight_bits": "8", "act_bits": "8", "calibrator": "omse"}),
		}, "[[act_bits weight_bits] [calibrator]]"},
		{"a grid stays two sweeps", []*row{
			mk(map[string]string{"weight_bits": "8", "act_bits": "8"}),
			mk(map[string]string{"weight_bits": "8", "act_bits": "4"}),
			mk(map[string]string{"weight_bits": "4", "act_bits": "8"}),
		}, "[[act_bits] [weight_bits]]"},
		{"one value is no sweep", []*row{
			mk(map[string]string{"student": "tiny"}),
			mk(map[string]string{"student": "tiny"}),
		}, "[]"},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(sweptKeys(tt.rows)); got != tt.want {
			t.Errorf("%s: sweptKeys = %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestLatencySetupSeparatesEngines checks that runs differing only in how
// their passes used the threads are not one latency set-up (their timings
// are not comparable), and that a run from before the engine was recorded
// counts as eager.
func TestLatencySetupSeparatesEngines(t *testing.T) {
	m := store.Machine{Hostname: "vm", CPU: "AMD EPYC", Cores: 2}
	run := func(engine string) *store.Run {
		return &store.Run{Machine: m, Threads: 2, Engine: engine, Device: "cpu"}
	}
	split, eager, old := latencySetup(run("split")), latencySetup(run("eager")), latencySetup(run(""))
	if split == eager {
		t.Errorf("split and eager runs share the latency set-up %q", split)
	}
	if old != eager {
		t.Errorf("a run without an engine has set-up %q, want the eager one %q", old, eager)
	}
}
