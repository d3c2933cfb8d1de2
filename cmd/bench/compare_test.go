package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/stats"
	"github.com/vitbench/vitbench/harness/store"
)

// compareDB writes a database with one finished run on host, at commit,
// started at start, of two experiments with per-image outcomes and timed
// samples. With better, the baseline gets 100 more of 2000 images right
// and runs 20% faster; the quantized model is unchanged.
func compareDB(t *testing.T, host, commit string, start time.Time, better bool) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), host+".db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := &store.Run{
		Machine: store.Machine{Hostname: host, CPU: "AMD EPYC 7B13", Cores: 2},
		Threads: 2, SIMD: "avx2 fma", SuiteName: "smoke", Device: "cpu", GitCommit: commit, Started: start,
	}
	if err := db.BeginRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	bits := func(ok func(i int) bool) []byte {
		b := stats.NewBits(n)
		for i := range n {
			if ok(i) {
				b.Set(i)
			}
		}
		return b
	}
	samples := func(v float64) []store.Sample {
		var s []store.Sample
		for i := range 10 {
			s = append(s, store.Sample{Series: store.SeriesLatency, Round: i, Value: v * (1 + 0.01*float64((i*3)%10))})
		}
		return s
	}
	speed := 1.0
	if better {
		speed = 0.8
	}
	for _, e := range []*store.Experiment{
		{RunID: r.ID, Name: "baseline", Group: "baseline", Model: "vit_cifar", Dataset: "cifar10", Status: store.StatusOK,
			Metrics: []metrics.Metric{metrics.New(metrics.Top1, 70), metrics.New(metrics.Params, 5717416),
				metrics.New(metrics.LatencyP50, 0.01*speed)},
			Outcomes: []store.Outcome{{Metric: metrics.Top1, Images: "cifar10/test", N: n,
				Bits: bits(func(i int) bool { return i%10 < 7 || better && i%20 == 7 })}},
			Samples: samples(0.01 * speed)},
		{RunID: r.ID, Name: "ptq/w8a8", Group: "ptq", Model: "vit_cifar", Dataset: "cifar10", Status: store.StatusOK,
			Metrics: []metrics.Metric{metrics.New(metrics.Top1, 60), metrics.New(metrics.Params, 5717416),
				metrics.New(metrics.LatencyP50, 0.005)},
			Outcomes: []store.Outcome{{Metric: metrics.Top1, Images: "cifar10/test", N: n,
				Bits: bits(func(i int) bool { return i%10 < 6 })}},
			Samples: samples(0.005)},
	} {
		if err := db.SaveExperiment(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.FinishRun(ctx, r.ID, store.StatusOK); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCompareCommand(t *testing.T) {
	a := compareDB(t, "lab-1", "aaaa1111", time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC), false)
	b := compareDB(t, "lab-2", "bbbb2222", time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), true)
	for _, tc := range []struct {
		name string
		args []string
		want []string // in stdout
		not  []string
	}{
		{"latest of each database", []string{"--db", a, "--db", b},
			[]string{"A: run 1 ", "lab-1 · AMD EPYC 7B13 · avx2 fma · 2 threads cpu · commit aaaa1111 · 2026-11-30 09:00 UTC",
				"B: run 2 ", "top-1 (%)", "latency p50, batch 1", "parameters",
				"+5.00pt (p=0.000 n=2000)", "~ (p=1.000 n=2000)", "-20.00% (p=0.000 n=10)", "~ (exact)"}, nil},
		{"run numbers, flags after", []string{"--db", a, "--db", b, "2", "1", "--metric", "top1"},
			[]string{"A: run 2 ", "B: run 1 ", "-5.00pt (p=0.000 n=2000)"}, []string{"latency"}},
		{"machines", []string{"--db", a, "--db", b, "--machine", "lab-2", "--machine", "lab-1", "--metric", "latency_p50"},
			[]string{"A: run 2 ", "+25.00% (p=0.000 n=10)"}, []string{"top-1"}},
		{"commits", []string{"--db", a, "--db", b, "--commit", "aaaa", "--commit", "bbbb", "--metric", "params"},
			[]string{"commit aaaa1111", "commit bbbb2222"}, nil},
	} {
		var stdout, stderr bytes.Buffer
		if err := Main(context.Background(), append([]string{"compare"}, tc.args...), &stdout, &stderr); err != nil {
			t.Errorf("%s: %v\n%s", tc.name, err, stderr.String())
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.name, w, stdout.String())
			}
		}
		for _, w := range tc.not {
			if strings.Contains(stdout.String(), w) {
				t.Errorf("%s: output has %q:\n%s", tc.name, w, stdout.String())
			}
		}
	}
}

func TestCompareJSON(t *testing.T) {
	a := compareDB(t, "lab-1", "aaaa1111", time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC), false)
	b := compareDB(t, "lab-2", "bbbb2222", time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), true)
	var stdout, stderr bytes.Buffer
	if err := Main(context.Background(), []string{"compare", "--db", a, "--db", b, "--json", "--metric", "top1,latency_p50"}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var out struct {
		Runs    []struct{ Hostname, GitCommit string }
		Metrics []struct {
			Metric string
			Rows   []struct {
				Name  string
				Cells []struct {
					Delta       *float64
					P           *float64
					Test        string
					Significant bool
				}
			}
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if len(out.Runs) != 2 || out.Runs[0].Hostname != "lab-1" || len(out.Metrics) != 2 {
		t.Fatalf("got %+v", out)
	}
	for _, m := range out.Metrics {
		for _, r := range m.Rows {
			c := r.Cells[1]
			want := r.Name == "baseline"
			if c.P == nil || c.Significant != want {
				t.Errorf("%s %s: p %v significant %v, want %v (test %s)", m.Metric, r.Name, c.P, c.Significant, want, c.Test)
			}
		}
	}
}

func TestCompareBadInput(t *testing.T) {
	a := compareDB(t, "lab-1", "aaaa1111", time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC), false)
	b := compareDB(t, "lab-2", "bbbb2222", time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), true)
	missing := filepath.Join(t.TempDir(), "none.db")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"one run", []string{"--db", a}, "has 1 run(s); need two"},
		{"no such run", []string{"--db", a, "--db", b, "1", "9"}, "no run 9 (runs are 1 to 2"},
		{"no such uuid", []string{"--db", a, "--db", b, "1", "zzzz"}, `no run number or UUID prefix "zzzz"`},
		{"same run twice", []string{"--db", a, "--db", b, "1", "1"}, "selected twice"},
		{"unknown metric", []string{"--db", a, "--db", b, "--metric", "top9"}, `no experiment of the runs has metric "top9"`},
		{"unknown machine", []string{"--db", a, "--db", b, "--machine", "lab-9", "--machine", "lab-1"}, "no run matches --machine lab-9"},
		{"one machine, one run", []string{"--db", a, "--db", b, "--machine", "lab-1"}, "1 run(s) selected"},
		{"both repeated", []string{"--db", a, "--db", b, "--machine", "x", "--machine", "y", "--commit", "a", "--commit", "b"}, "not both"},
		{"missing database", []string{"--db", missing}, "does not exist"},
		{"bad flag", []string{"--nope"}, "flag provided but not defined"},
	} {
		var stdout, stderr bytes.Buffer
		err := Main(context.Background(), append([]string{"compare"}, tc.args...), &stdout, &stderr)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want a usage error containing %q", tc.name, err, tc.want)
		}
		if code := exitCode(err, &stderr); code != 2 {
			t.Errorf("%s: exit status %d, want 2", tc.name, code)
		}
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("compare created %s", missing)
	}
}
