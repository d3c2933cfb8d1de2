package store

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/stats"
)

func seedOf(s int64) *int64 { return &s }

func TestSeedRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	r := beginTest(t, db)
	tests := []struct {
		name    string
		seed    *int64
		replica string
	}{
		{"ptq/w8-seed0", seedOf(0), "ptq/w8"},
		{"ptq/w8-seed7", seedOf(7), "ptq/w8"},
		{"older", nil, ""}, // as rows stored before seeds were recorded read
	}
	for _, tt := range tests {
		e := testExperiment(r.ID, tt.name, 2)
		e.Seed, e.Replica = tt.seed, tt.replica
		if err := db.SaveExperiment(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.Experiments(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		if !reflect.DeepEqual(got[i].Seed, tt.seed) || got[i].Replica != tt.replica {
			t.Errorf("%s: seed %v replica %q, want %v %q", tt.name, got[i].Seed, got[i].Replica, tt.seed, tt.replica)
		}
	}
	if got[2].ReplicaName() != "older" {
		t.Errorf("ReplicaName of an older row = %q, want its name", got[2].ReplicaName())
	}
}

func TestReplicas(t *testing.T) {
	// exp is a replica with top-1 and its interval siblings.
	exp := func(run int64, name, replica string, seed int64, status string, top1 float64) Experiment {
		return Experiment{RunID: run, Name: name, Replica: replica, Seed: seedOf(seed), Status: status,
			Metrics: []metrics.Metric{
				metrics.New(metrics.Top1, top1),
				metrics.New(metrics.Lo(metrics.Top1), top1-1),
				metrics.New(metrics.Params, 1000),
			}}
	}
	type set struct {
		name  string
		seeds []int64
		top1  stats.Estimate
		n     int
	}
	mean3 := stats.Mean([]float64{70, 72, 74})
	tests := []struct {
		name string
		exps []Experiment
		want []set
	}{
		{"no seeds", []Experiment{exp(1, "a", "a", 0, StatusOK, 70), exp(1, "b", "b", 0, StatusOK, 71)}, nil},
		{"three seeds", []Experiment{
			exp(1, "a", "a", 0, StatusOK, 60),
			exp(1, "q/seed0", "q", 0, StatusOK, 70), exp(1, "q/seed1", "q", 1, StatusOK, 72), exp(1, "q/seed2", "q", 2, StatusOK, 74),
		}, []set{{"q", []int64{0, 1, 2}, mean3, 3}}},
		{"a failed replica does not count", []Experiment{
			exp(1, "q/seed0", "q", 0, StatusOK, 70), exp(1, "q/seed1", "q", 1, StatusFailed, 0), exp(1, "q/seed2", "q", 2, StatusOK, 74),
		}, []set{{"q", []int64{0, 2}, stats.Mean([]float64{70, 74}), 2}}},
		{"interleaved grids, in order of first appearance", []Experiment{
			exp(1, "g/w8-seed0", "g/w8", 0, StatusOK, 70), exp(1, "g/w4-seed0", "g/w4", 0, StatusOK, 50),
			exp(1, "g/w8-seed1", "g/w8", 1, StatusOK, 72), exp(1, "g/w4-seed1", "g/w4", 1, StatusOK, 52),
		}, []set{{"g/w8", []int64{0, 1}, stats.Mean([]float64{70, 72}), 2}, {"g/w4", []int64{0, 1}, stats.Mean([]float64{50, 52}), 2}}},
		{"runs apart", []Experiment{
			exp(1, "q/seed0", "q", 0, StatusOK, 70), exp(2, "q/seed1", "q", 1, StatusOK, 72),
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sets := Replicas(tt.exps)
			if len(sets) != len(tt.want) {
				t.Fatalf("got %d sets, want %d: %+v", len(sets), len(tt.want), sets)
			}
			for i, w := range tt.want {
				s := sets[i]
				if s.Name != w.name || !reflect.DeepEqual(s.Seeds, w.seeds) {
					t.Errorf("set %d: %s seeds %v, want %s %v", i, s.Name, s.Seeds, w.name, w.seeds)
				}
				top1, ok := s.Metric(metrics.Top1)
				if !ok || top1.N != w.n || !closeEstimate(top1.Estimate, w.top1) || top1.Unit != metrics.UnitPercent {
					t.Errorf("set %s: top1 %+v, want %+v over %d", s.Name, top1, w.top1, w.n)
				}
				if _, ok := s.Metric(metrics.Lo(metrics.Top1)); ok {
					t.Errorf("set %s: the mean of an interval's end is no interval", s.Name)
				}
				if p, ok := s.Metric(metrics.Params); !ok || p.Value != 1000 || p.Lo != 1000 || p.Hi != 1000 {
					t.Errorf("set %s: params %+v, want 1000 with a zero-width interval", s.Name, p)
				}
			}
		})
	}
	// The mean's interval is Student's t: for 70, 72, 74 (sd 2) it is
	// 72 ± 4.303*2/sqrt(3).
	if want := 4.303 * 2 / math.Sqrt(3); math.Abs(mean3.Hi-72-want) > 1e-3 || mean3.Value != 72 {
		t.Errorf("mean of 70, 72, 74 = %+v, want 72 ± %.3f", mean3, want)
	}
}

func closeEstimate(a, b stats.Estimate) bool {
	eq := func(x, y float64) bool { return x == y || math.Abs(x-y) < 1e-9 || math.IsNaN(x) && math.IsNaN(y) }
	return eq(a.Value, b.Value) && eq(a.Lo, b.Lo) && eq(a.Hi, b.Hi)
}

// seedSnapshot is a run with a baseline and an experiment, each at seeds
// 0 and 1, and an experiment of one seed.
func seedSnapshot() *Snapshot {
	run := Run{ID: 1, UUID: "uuid-s", SuiteName: "s"}
	e := func(name, replica, baseline string, seed int64, top1, params float64) Experiment {
		return Experiment{RunID: 1, Name: name, Replica: replica, Baseline: baseline, Seed: seedOf(seed), Status: StatusOK,
			Group: strings.SplitN(replica, "/", 2)[0], Pipeline: "p",
			Metrics: []metrics.Metric{metrics.New(metrics.Top1, top1), metrics.New(metrics.Params, params)}}
	}
	return &Snapshot{Runs: []Run{run}, Experiments: []Experiment{
		e("vit/seed0", "vit", "vit/seed0", 0, 80, 100),
		e("vit/seed1", "vit", "vit/seed1", 1, 82, 100),
		e("q/seed0", "q", "vit/seed0", 0, 70, 50),
		e("q/seed1", "q", "vit/seed1", 1, 74, 50),
		e("one", "one", "vit/seed0", 0, 60, 10),
	}}
}

func TestExportSeeds(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteCSV(&buf, seedSnapshot()); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, c := range recs[0] {
		col[c] = i
	}
	if _, ok := col[metrics.Lo(metrics.Params)]; ok {
		t.Error("an exact count got interval columns")
	}
	q := stats.Mean([]float64{70, 74})
	// columns: experiment, replica, seed, baseline, top1, top1_lo, top1_hi, params
	want := [][]string{
		{"vit/seed0", "vit", "0", "vit/seed0", "80", "", "", "100"},
		{"vit/seed1", "vit", "1", "vit/seed1", "82", "", "", "100"},
		{"vit", "vit", "mean", "vit", "81", formatFloat(stats.Mean([]float64{80, 82}).Lo), formatFloat(stats.Mean([]float64{80, 82}).Hi), "100"},
		{"q/seed0", "q", "0", "vit/seed0", "70", "", "", "50"},
		{"q/seed1", "q", "1", "vit/seed1", "74", "", "", "50"},
		{"q", "q", "mean", "vit", "72", formatFloat(q.Lo), formatFloat(q.Hi), "50"},
		{"one", "one", "0", "vit/seed0", "60", "", "", "10"},
	}
	if len(recs) != 1+len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(recs)-1, len(want), buf.String())
	}
	cols := []string{"experiment", "replica", "seed", "baseline", metrics.Top1, metrics.Lo(metrics.Top1), metrics.Hi(metrics.Top1), metrics.Params}
	for i, w := range want {
		for j, c := range cols {
			if got := recs[i+1][col[c]]; got != w[j] {
				t.Errorf("row %d (%s) %s = %q, want %q", i+1, w[0], c, got, w[j])
			}
		}
	}
	if q.Lo >= 72 || q.Hi <= 74 {
		t.Errorf("the t interval of 70, 74 is %+v: wider than the values with 1 degree of freedom", q)
	}

	buf.Reset()
	if err := WriteJSON(&buf, seedSnapshot()); err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(want) || rows[0]["seed"] != 0.0 || rows[2]["seed"] != MeanSeed || rows[5]["top1"] != 72.0 {
		t.Errorf("JSON rows: %v", rows)
	}
}
