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
	"github.com/vitbench/vitbench/harness/store"
)

// resultsDB writes a database with one finished run on host of two
// experiments (one ok, one failed) and returns its path and the run.
func resultsDB(t *testing.T, host string) (string, store.Run) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "results.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := &store.Run{
		Machine: store.Machine{Hostname: host, CPU: "AMD EPYC 7B13", Cores: 2,
			Libtorch: "1.13.1", BLAS: "openblas"},
		Threads: 2, SgemmGFLOPS: 120, SIMD: "sse4_2 avx avx2 fma f16c", Int8Engine: "oneDNN 2.6.3 avx2",
		SuiteName: "smoke", SuitePath: "experiments/smoke.toml", Device: "cpu",
		Args:    []string{"run", "experiments/smoke.toml"},
		Started: time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC),
	}
	if err := db.BeginRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*store.Experiment{
		{RunID: r.ID, Name: "baseline", Group: "baseline", Model: "vit_cifar", Dataset: "cifar10",
			Status: store.StatusOK, Executed: "fp32", Metrics: []metrics.Metric{
				metrics.New(metrics.Top1, 71.234), metrics.New(metrics.Params, 5717416),
				metrics.New(metrics.LatencyP50, 0.0032), metrics.New(metrics.Speedup, 1),
				metrics.New(metrics.Lo(metrics.Top1), 70.34), metrics.New(metrics.Hi(metrics.Top1), 72.11),
				metrics.New(metrics.Lo(metrics.LatencyP50), 0.0031), metrics.New(metrics.Hi(metrics.LatencyP50), 0.0033),
			}},
		{RunID: r.ID, Name: "ptq/w8a8", Group: "ptq", Model: "vit_cifar", Dataset: "cifar10", Baseline: "baseline",
			Families: []string{"quantize"}, Status: store.StatusOK, Metrics: []metrics.Metric{
				metrics.New(metrics.Top1, 71.0), metrics.New(metrics.Top1Delta, -0.234),
				metrics.New(metrics.Lo(metrics.Top1Delta), -0.5), metrics.New(metrics.Hi(metrics.Top1Delta), 0.04),
				metrics.New(metrics.P(metrics.Top1Delta), 0.2),
			}},
		{RunID: r.ID, Name: "ptq/w2a2", Group: "ptq", Model: "vit_cifar", Dataset: "cifar10",
			Families: []string{"quantize"}, Status: store.StatusFailed,
			Error: "loss is NaN at step 12\nstack..."},
	} {
		if err := db.SaveExperiment(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.FinishRun(ctx, r.ID, store.StatusFailed); err != nil {
		t.Fatal(err)
	}
	r.Status = store.StatusFailed
	return path, *r
}

func TestListText(t *testing.T) {
	path, r := resultsDB(t, "lab-1")
	var stdout, stderr bytes.Buffer
	if err := Main(context.Background(), []string{"list", "--db", path}, &stdout, &stderr); err != nil {
		t.Fatalf("bench list: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"run " + r.UUID[:8] + " ",
		r.Started.Local().Format("2006-01-02 15:04:05"),
		"lab-1 (AMD EPYC 7B13, 2 threads, eager, cpu)",
		"suite smoke",
		"failed  2 ok / 1 failed",
		"EXPERIMENT",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, row := range [][]string{
		{"baseline", "ok", "71.23", "[70.34,", "72.11]", "-", "5.72M", "3.20", "[3.10,", "3.30]"},
		{"ptq/w8a8", "ok", "71.00", "-0.23", "[-0.50,", "+0.04]", "~", "-", "-"},
		{"ptq/w2a2", "failed", "-", "-", "-", "-", "loss is NaN at step 12"},
	} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			if strings.Join(strings.Fields(line), " ") == strings.Join(row, " ") {
				found = true
			}
		}
		if !found {
			t.Errorf("no line %q in:\n%s", strings.Join(row, " "), out)
		}
	}
	if strings.Contains(out, "stack...") {
		t.Errorf("list prints more than the first line of an error:\n%s", out)
	}
}

func TestListJSON(t *testing.T) {
	path, r := resultsDB(t, "lab-1")
	var stdout, stderr bytes.Buffer
	if err := Main(context.Background(), []string{"list", "--db=" + path, "--json"}, &stdout, &stderr); err != nil {
		t.Fatalf("bench list --json: %v\n%s", err, stderr.String())
	}
	var got struct {
		Runs []struct {
			UUID    string
			Status  string
			Suite   string
			Ended   *time.Time
			OK      int
			Failed  int
			Machine struct {
				Hostname    string
				Fingerprint string
				Threads     int
				SIMD        string `json:"simd"`
				Int8Engine  string `json:"int8_engine"`
			}
			Experiments []struct {
				Name     string
				Status   string
				Error    string
				Families []string
				Metrics  map[string]*float64
				Units    map[string]string
			}
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout.String())
	}
	if len(got.Runs) != 1 {
		t.Fatalf("%d runs, want 1:\n%s", len(got.Runs), stdout.String())
	}
	run := got.Runs[0]
	if run.UUID != r.UUID || run.Status != "failed" || run.Suite != "smoke" || run.Ended == nil ||
		run.OK != 2 || run.Failed != 1 || run.Machine.Hostname != "lab-1" || run.Machine.Threads != 2 ||
		run.Machine.Fingerprint != store.Fingerprint(r.Machine) ||
		run.Machine.SIMD != r.SIMD || run.Machine.Int8Engine != r.Int8Engine {
		t.Errorf("run = %+v", run)
	}
	if len(run.Experiments) != 3 {
		t.Fatalf("%d experiments, want 3", len(run.Experiments))
	}
	base, failed := run.Experiments[0], run.Experiments[2]
	if base.Name != "baseline" || base.Metrics["params"] == nil || *base.Metrics["params"] != 5717416 ||
		base.Units["latency_p50"] != "s" || base.Families == nil {
		t.Errorf("baseline = %+v", base)
	}
	if failed.Status != "failed" || !strings.HasPrefix(failed.Error, "loss is NaN") || len(failed.Metrics) != 0 {
		t.Errorf("failed experiment = %+v", failed)
	}
}

func TestListErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "results", "results.db")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing database", []string{"list", "--db", missing}, missing},
		{"unknown flag", []string{"list", "--verbose"}, "verbose"},
		{"extra argument", []string{"list", "results.db"}, "unexpected argument"},
	} {
		var stdout, stderr bytes.Buffer
		err := Main(context.Background(), tc.args, &stdout, &stderr)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want a usage error mentioning %q", tc.name, err, tc.want)
		}
		if code := exitCode(err, &stderr); code != 2 {
			t.Errorf("%s: exit status %d, want 2", tc.name, code)
		}
	}
	if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bench list created %s", filepath.Dir(missing))
	}

	var stdout, stderr bytes.Buffer
	if err := Main(context.Background(), []string{"list", "-h"}, &stdout, &stderr); err != nil {
		t.Errorf("list -h: %v", err)
	}
	if !strings.Contains(stdout.String(), "usage: bench list") {
		t.Errorf("list -h printed %q on stdout", stdout.String())
	}
}

func TestListEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "--db", path}, "no runs\n"},
		{[]string{"list", "--db", path, "--json"}, "{\n  \"runs\": []\n}\n"},
	} {
		var stdout, stderr bytes.Buffer
		if err := Main(context.Background(), tc.args, &stdout, &stderr); err != nil {
			t.Fatal(err)
		}
		if stdout.String() != tc.want {
			t.Errorf("%q printed %q, want %q", tc.args, stdout.String(), tc.want)
		}
	}
}
