package compare

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/stats"
	"github.com/vitbench/vitbench/harness/store"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

const images = "cifar10/test/all"

// outcome marks image i of n correct when ok(i).
func outcome(metric, imgs string, n int, ok func(i int) bool) store.Outcome {
	b := stats.NewBits(n)
	for i := range n {
		if ok(i) {
			b.Set(i)
		}
	}
	return store.Outcome{Metric: metric, Images: imgs, N: n, Bits: b}
}

// timed returns samples of series: base scaled by f, with a small
// deterministic spread.
func timed(series string, base, f float64, n int) []store.Sample {
	var s []store.Sample
	for i := range n {
		s = append(s, store.Sample{Series: series, Round: i, Value: base * f * (1 + 0.01*float64((i*7)%10))})
	}
	return s
}

// synthetic returns two runs of the same suite on two machines: the
// baseline is truly more accurate (+5 points, 100 discordant images one
// way) and faster (-20% latency) on B; ptq/w8a8 differs only by noise; a
// pruned model exists in B only; distill/student was evaluated on
// different images in the two runs; lowrank has no outcomes or samples.
func synthetic() []Run {
	const n = 2000
	mk := func(id int64, host string, start time.Time, gain bool, speed float64) Run {
		r := Run{Run: store.Run{ID: id, UUID: host + "-0000-uuid", Machine: store.Machine{Hostname: host, CPU: "AMD EPYC 7B13"},
			SIMD: "avx2 fma", Threads: 2, Device: "cpu", GitCommit: "0123456789abcdef", Started: start, SuiteName: "all"}}
		base := func(i int) bool { return i%10 < 7 || (gain && i%20 == 7) } // 70%, B +5 points
		// ptq: 3 images each way differ between A and B.
		ptq := func(i int) bool {
			ok := i%10 < 6
			if gain && (i == 1 || i == 2 || i == 3) {
				ok = false
			}
			if gain && (i == 6 || i == 7 || i == 8) {
				ok = true
			}
			return ok
		}
		r.Experiments = []store.Experiment{
			{Name: "baseline", Status: store.StatusOK,
				Metrics: []metrics.Metric{
					metrics.New(metrics.Top1, 0), metrics.New(metrics.SizeBytes, 22_000_000),
					metrics.New(metrics.Params, 5_717_416), metrics.New(metrics.LatencyP50, 0.010*speed),
				},
				Outcomes: []store.Outcome{outcome(metrics.Top1, images, n, base)},
				Samples:  timed(store.SeriesLatency, 0.010, speed, 10)},
			{Name: "ptq/w8a8", Status: store.StatusOK,
				Metrics: []metrics.Metric{
					metrics.New(metrics.Top1, 0), metrics.New(metrics.SizeBytes, 5_600_000),
					metrics.New(metrics.Params, 5_717_416), metrics.New(metrics.LatencyP50, 0.005),
				},
				Outcomes: []store.Outcome{outcome(metrics.Top1, images, n, ptq)},
				Samples:  timed(store.SeriesLatency, 0.005, 1, 10)},
		}
		// A failed experiment in B: its partial metrics are not compared.
		failed := store.StatusOK
		if gain {
			failed = store.StatusFailed
		}
		r.Experiments = append(r.Experiments, store.Experiment{Name: "qat/w4a4", Status: failed,
			Metrics: []metrics.Metric{metrics.New(metrics.Params, 5_717_416)}})
		student := store.Experiment{Name: "distill/student", Status: store.StatusOK,
			Metrics: []metrics.Metric{metrics.New(metrics.Params, 1_500_000)}}
		if gain {
			r.Experiments = append(r.Experiments, store.Experiment{Name: "prune/heads", Status: store.StatusOK,
				Metrics: []metrics.Metric{metrics.New(metrics.Params, 4_000_000), metrics.New(metrics.SizeBytes, 16_000_000)}})
			student.Outcomes = []store.Outcome{outcome(metrics.Top1, "cifar10/test/subset-5000-seed1", 5000, func(i int) bool { return i%100 < 62 })}
		} else {
			student.Outcomes = []store.Outcome{outcome(metrics.Top1, images, n, func(i int) bool { return i%100 < 60 })}
		}
		r.Experiments = append(r.Experiments, student, store.Experiment{Name: "lowrank/r64", Status: store.StatusOK,
			Metrics: []metrics.Metric{
				metrics.New(metrics.Top1, 64+speed), metrics.New(metrics.Lo(metrics.Top1), 62+speed), metrics.New(metrics.Hi(metrics.Top1), 66+speed),
				metrics.New(metrics.LatencyP50, 0.007*speed),
			}})
		return r
	}
	return []Run{
		mk(3, "lab-1", time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC), false, 1),
		mk(7, "lab-2", time.Date(2026, 12, 1, 14, 30, 0, 0, time.UTC), true, 0.8),
	}
}

func find(t *testing.T, c *Comparison, metric, exp string) Row {
	t.Helper()
	for _, tb := range c.Tables {
		if tb.Metric != metric {
			continue
		}
		for _, r := range tb.Rows {
			if r.Name == exp {
				return r
			}
		}
	}
	t.Fatalf("no row %s in table %s", exp, metric)
	return Row{}
}

func TestCompareDeltas(t *testing.T) {
	c, err := Compare(synthetic())
	if err != nil {
		t.Fatal(err)
	}
	nan := math.NaN()
	for _, tc := range []struct {
		metric, exp string
		delta       float64 // of run B to run A; NaN: none
		test        string
		significant bool
		pBelow      float64 // P < pBelow; NaN: P is NaN
		pAbove      float64 // P > pAbove
	}{
		// 100 images right in B only, none the other way: a true +5 points.
		{metrics.Top1, "baseline", 5, "mcnemar", true, 1e-6, 0},
		// 3 images each way: no difference.
		{metrics.Top1, "ptq/w8a8", 0, "mcnemar", false, 1.01, 0.99},
		// Different images: 60% of 2000 vs 62% of 5000, unpaired.
		{metrics.Top1, "distill/student", 2, "two-proportion", false, 1, stats.Alpha},
		// No outcomes: the stored values, untested.
		{metrics.Top1, "lowrank/r64", -0.2, "", false, nan, 0},
		// Every sample 20% faster: ten against ten, Mann-Whitney U.
		{metrics.LatencyP50, "baseline", -20, "mann-whitney", true, 0.001, 0},
		{metrics.LatencyP50, "ptq/w8a8", 0, "mann-whitney", false, 1.01, 0.5},
		{metrics.LatencyP50, "lowrank/r64", -20, "", false, nan, 0},
		{metrics.SizeBytes, "baseline", 0, "exact", false, nan, 0},
		{metrics.Params, "distill/student", 0, "exact", false, nan, 0},
		{metrics.Params, "prune/heads", nan, "", false, nan, 0},
		{metrics.Params, "qat/w4a4", nan, "", false, nan, 0},
	} {
		name := tc.metric + " " + tc.exp
		cell := find(t, c, tc.metric, tc.exp).Cells[1]
		if math.IsNaN(tc.delta) != math.IsNaN(cell.Delta) || !math.IsNaN(tc.delta) && math.Abs(cell.Delta-tc.delta) > 1e-9 {
			t.Errorf("%s: delta %v, want %v", name, cell.Delta, tc.delta)
		}
		if cell.Test != tc.test || cell.Significant != tc.significant {
			t.Errorf("%s: test %q significant %v, want %q %v (p=%v)", name, cell.Test, cell.Significant, tc.test, tc.significant, cell.P)
		}
		if math.IsNaN(tc.pBelow) {
			if !math.IsNaN(cell.P) {
				t.Errorf("%s: p = %v, want none", name, cell.P)
			}
		} else if !(cell.P < tc.pBelow && cell.P > tc.pAbove) {
			t.Errorf("%s: p = %v, want in (%v, %v)", name, cell.P, tc.pAbove, tc.pBelow)
		}
	}

	// The paired interval of the true difference excludes zero.
	if cell := find(t, c, metrics.Top1, "baseline").Cells[1]; !(cell.DeltaLo > 0 && cell.DeltaHi > cell.DeltaLo) {
		t.Errorf("baseline top-1 paired interval [%v, %v], want above 0", cell.DeltaLo, cell.DeltaHi)
	}
	// Values: Wilson from outcomes, benchmath medians from samples.
	for _, tc := range []struct {
		metric, exp string
		run         int
		value       float64
		interval    bool
	}{
		{metrics.Top1, "baseline", 0, 70, true},
		{metrics.Top1, "baseline", 1, 75, true},
		{metrics.Top1, "lowrank/r64", 0, 65, true},
		{metrics.LatencyP50, "baseline", 0, 0.010 * 1.045, true},
		{metrics.Params, "baseline", 0, 5_717_416, false},
	} {
		cell := find(t, c, tc.metric, tc.exp).Cells[tc.run]
		hasInterval := cell.Lo < cell.Value && cell.Hi > cell.Value
		if math.Abs(cell.Value-tc.value) > 1e-9 || hasInterval != tc.interval {
			t.Errorf("%s %s run %d: %v [%v, %v], want %v (interval %v)", tc.metric, tc.exp, tc.run, cell.Value, cell.Lo, cell.Hi, tc.value, tc.interval)
		}
	}
}

func TestSummary(t *testing.T) {
	c, err := Compare(synthetic())
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range c.Tables {
		switch tb.Metric {
		case metrics.Params:
			// baseline, ptq and student are in both runs and unchanged;
			// prune/heads in B only is left out, with a warning.
			s := tb.Summary
			want := math.Cbrt(5_717_416.0 * 5_717_416 * 1_500_000)
			if s == nil || s.Name != "geomean" || math.Abs(s.Cells[0].Value-want) > 1e-3 || s.Cells[1].Delta != 0 {
				t.Errorf("params summary %+v, want geomean %v and delta 0", s, want)
			}
			if len(tb.Warnings) != 1 || !strings.Contains(tb.Warnings[0], "3 of 5") {
				t.Errorf("params warnings %q, want one naming 3 of 5", tb.Warnings)
			}
		case metrics.LatencyP50:
			// Geomean of ratios 0.8, 1, 0.8.
			want := 100 * (math.Cbrt(0.8*1*0.8) - 1)
			if s := tb.Summary; s == nil || math.Abs(s.Cells[1].Delta-want) > 1e-9 {
				t.Errorf("latency geomean delta %+v, want %v", s, want)
			}
		case metrics.Top1:
			// Mean over the four experiments in both runs, in points.
			if s := tb.Summary; s == nil || s.Name != "mean" {
				t.Errorf("top-1 summary %+v, want a mean", s)
			}
		}
	}
}

func TestCompareErrors(t *testing.T) {
	runs := synthetic()
	for _, tc := range []struct {
		name    string
		runs    []Run
		metrics []string
		want    string
	}{
		{"one run", runs[:1], nil, "need two or more runs"},
		{"unknown metric", runs, []string{"top9"}, `no experiment of the runs has metric "top9"`},
	} {
		_, err := Compare(tc.runs, tc.metrics...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
	// Metrics only asked for are compared; absent defaults are skipped.
	c, err := Compare(runs, metrics.Params)
	if err != nil || len(c.Tables) != 1 || c.Tables[0].Metric != metrics.Params {
		t.Errorf("Compare(params) = %+v, %v; want one params table", c, err)
	}
}

func TestFormatValue(t *testing.T) {
	for _, tc := range []struct {
		unit string
		v    float64
		want string
	}{
		{metrics.UnitPercent, 71.234, "71.23"},
		{metrics.UnitSeconds, 0.0032014, "3.201ms"},
		{metrics.UnitSeconds, 1.5, "1.500s"},
		{metrics.UnitSeconds, 0.000012, "12.00µs"},
		{metrics.UnitBytes, 22_000_000, "20.98MiB"},
		{metrics.UnitBytes, 512, "512B"},
		{metrics.UnitCount, 5_717_416, "5.717M"},
		{metrics.UnitOps, 1.26e9, "1.260G"},
		{metrics.UnitIPS, 312.46, "312.5"},
	} {
		if got := FormatValue(tc.unit, tc.v); got != tc.want {
			t.Errorf("FormatValue(%q, %v) = %q, want %q", tc.unit, tc.v, got, tc.want)
		}
	}
}

func TestWriteTextGolden(t *testing.T) {
	c, err := Compare(synthetic())
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := c.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "two-runs.golden")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("WriteText differs from %s (go test -update rewrites it):\n%s", golden, b.String())
	}
}

func TestWriteJSON(t *testing.T) {
	c, err := Compare(synthetic(), metrics.Top1)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := c.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Runs []struct {
			Label, Hostname string
		}
		Metrics []struct {
			Metric    string
			DeltaUnit string `json:"delta_unit"`
			Rows      []struct {
				Name  string
				Cells []struct {
					Value       *float64
					Delta       *float64
					P           *float64
					Significant bool
				}
			}
		}
	}
	if err := json.Unmarshal(b.Bytes(), &out); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if len(out.Runs) != 2 || out.Runs[1].Label != "B" || out.Runs[1].Hostname != "lab-2" {
		t.Errorf("runs %+v", out.Runs)
	}
	if len(out.Metrics) != 1 || out.Metrics[0].DeltaUnit != "points" {
		t.Fatalf("metrics %+v", out.Metrics)
	}
	base := out.Metrics[0].Rows[0]
	if base.Name != "baseline" || base.Cells[0].Delta != nil || base.Cells[1].P == nil || !base.Cells[1].Significant {
		t.Errorf("baseline row %+v: want no delta for A, a significant p for B", base)
	}
}

func TestThreeRuns(t *testing.T) {
	runs := synthetic()
	third := runs[1]
	third.ID, third.UUID = 9, "lab-3-0000-uuid"
	runs = append(runs, third)
	c, err := Compare(runs, metrics.Top1)
	if err != nil {
		t.Fatal(err)
	}
	// Every later run is compared with the first, not with its neighbour.
	if cell := find(t, c, metrics.Top1, "baseline").Cells[2]; cell.Delta != 5 || !cell.Significant {
		t.Errorf("run C baseline delta %v significant %v, want +5 vs A", cell.Delta, cell.Significant)
	}
	var b bytes.Buffer
	if err := c.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	var header, row string
	for _, l := range lines {
		if strings.Contains(l, "│") && strings.Contains(l, "C") {
			header = l
		}
		if strings.HasPrefix(l, "baseline ") {
			row = l
		}
	}
	if strings.Count(header, "│") != 4 || strings.Count(row, "+5.00pt (p=0.000 n=2000)") != 2 {
		t.Errorf("three-run table:\n%s", b.String())
	}
}
