package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestExportCSV(t *testing.T) {
	path, r := resultsDB(t, "lab-1")
	var stdout, stderr bytes.Buffer
	if err := Main(context.Background(), []string{"export", "--db", path, "--format", "csv"}, &stdout, &stderr); err != nil {
		t.Fatalf("bench export: %v\n%s", err, stderr.String())
	}
	recs, err := csv.NewReader(&stdout).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v", err)
	}
	if len(recs) != 4 {
		t.Fatalf("%d records, want header + 3", len(recs))
	}
	head := recs[0]
	for _, c := range []string{"run_uuid", "hostname", "cpu", "cores", "gpu", "libtorch", "blas", "threads",
		"run_started", "experiment", "group", "model", "dataset", "pipeline", "families", "status",
		"executed", "error", "top1", "params", "latency_p50", "speedup"} {
		if !slices.Contains(head, c) {
			t.Errorf("no column %q in %q", c, head)
		}
	}
	if i, j := slices.Index(head, "top1"), slices.Index(head, "speedup"); i > j {
		t.Errorf("metric columns out of standard order: %q", head)
	}
	cell := func(row int, col string) string { return recs[row][slices.Index(head, col)] }
	for _, tc := range []struct {
		row       int
		col, want string
	}{
		{1, "run_uuid", r.UUID},
		{1, "experiment", "baseline"},
		{1, "params", "5717416"},
		{1, "hostname", "lab-1"},
		{2, "experiment", "ptq/w8a8"},
		{2, "top1_delta_p", "0.2"},
		{3, "experiment", "ptq/w2a2"},
		{3, "error", "loss is NaN at step 12\nstack..."},
		{3, "top1", ""},
		{3, "families", "quantize"},
	} {
		if got := cell(tc.row, tc.col); got != tc.want {
			t.Errorf("row %d %s = %q, want %q", tc.row, tc.col, got, tc.want)
		}
	}
}

func TestExportJSONMergedToFile(t *testing.T) {
	a, ra := resultsDB(t, "laptop")
	b, rb := resultsDB(t, "server")
	out := filepath.Join(t.TempDir(), "sub", "results.json")
	var stdout, stderr bytes.Buffer
	args := []string{"export", "--db", a, "--db", b, "--format=json", "--out", out}
	if err := Main(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("bench export: %v\n%s", err, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("export --out wrote to stdout: %q", stdout.String())
	}
	buf, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(buf, &rows); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if len(rows) != 6 {
		t.Fatalf("%d rows, want 6 (three experiments from each of two machines)", len(rows))
	}
	hosts := map[string]string{}
	for _, row := range rows {
		hosts[row["run_uuid"].(string)] = row["hostname"].(string)
		if row["experiment"] == "baseline" && row["params"] != 5717416.0 {
			t.Errorf("params = %#v, want a number", row["params"])
		}
	}
	if hosts[ra.UUID] != "laptop" || hosts[rb.UUID] != "server" {
		t.Errorf("runs and machines mixed up: %v", hosts)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestExportErrors(t *testing.T) {
	path, _ := resultsDB(t, "lab-1")
	missing := filepath.Join(t.TempDir(), "none.db")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no format", []string{"export", "--db", path}, "--format"},
		{"bad format", []string{"export", "--db", path, "--format", "xlsx"}, "xlsx"},
		{"missing database", []string{"export", "--db", missing, "--format", "csv"}, missing},
		{"one of two missing", []string{"export", "--db", path, "--db", missing, "--format", "csv"}, missing},
		{"extra argument", []string{"export", "--format", "csv", "x"}, "unexpected argument"},
	} {
		var stdout, stderr bytes.Buffer
		err := Main(context.Background(), tc.args, &stdout, &stderr)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want a usage error mentioning %q", tc.name, err, tc.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("%s: wrote %q", tc.name, stdout.String())
		}
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bench export created %s", missing)
	}
}
