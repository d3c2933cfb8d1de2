package store

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vitbench/vitbench/harness/metrics"
)

// exportSnapshot returns a snapshot with two runs on two machines and
// experiments that exercise quoting, missing and non-finite metrics, and
// metric names outside the standard set.
func exportSnapshot() *Snapshot {
	m2 := testMachine()
	m2.Hostname, m2.CPU, m2.GPU = "gpu-box", `Intel "Xeon", 8 cores`, "NVIDIA H100"
	s := &Snapshot{Runs: []Run{
		{ID: 7, UUID: "uuid-a", Machine: testMachine(), Threads: 2, SuiteName: "quick", Device: "cpu",
			Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Status: StatusFailed},
		{ID: 9, UUID: "uuid-b", Machine: m2, Threads: 16, SIMD: "sse4_2 avx avx2", Int8Engine: "oneDNN 2.6.3 avx2",
			SuiteName: "quick", Device: "cuda",
			Started: time.Date(2025, 1, 3, 0, 0, 0, 0, time.UTC), Status: StatusOK},
	}}
	e1 := testExperiment(7, "baseline", 0)
	e1.Families, e1.Baseline = nil, ""
	e1.Metrics = append(e1.Metrics, metrics.Metric{Name: "zz_custom", Value: 1.5},
		metrics.Metric{Name: "aa_custom", Value: math.Inf(-1)})
	e2 := testExperiment(7, "prune,heads", 0)
	e2.Status, e2.Error = StatusFailed, "libtorch: op \"_int_mm\" missing,\nnot in 1.13.1"
	e2.Metrics = []metrics.Metric{{Name: metrics.Top1, Value: math.NaN()}, {Name: "status", Value: 3}}
	e3 := testExperiment(9, "ptq/w8a8", 0)
	e3.Metrics = append([]metrics.Metric{metrics.New(metrics.P(metrics.Speedup), 0.01), metrics.New(metrics.Speedup, 2.5),
		metrics.New(metrics.Hi(metrics.Top1), 92), metrics.New(metrics.Lo(metrics.Top1), 90)}, e3.Metrics...)
	s.Experiments = []Experiment{*e1, *e2, *e3}
	return s
}

func TestColumns(t *testing.T) {
	got := columns(exportSnapshot())
	want := append(slices.Clone(fixedColumns),
		"top1", "top1_lo", "top1_hi", "params", "latency_p50", "speedup", "speedup_p", "aa_custom", "metric_status", "zz_custom")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("columns =\n%q\nwant\n%q", got, want)
	}
	if got := columns(&Snapshot{}); !reflect.DeepEqual(got, fixedColumns) {
		t.Errorf("columns(empty) = %q", got)
	}
}

func TestWriteCSV(t *testing.T) {
	s := exportSnapshot()
	var buf bytes.Buffer
	if err := WriteCSV(&buf, s); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("encoding/csv cannot read the export: %v\n%s", err, buf.String())
	}
	if len(recs) != 4 {
		t.Fatalf("%d records, want header + 3", len(recs))
	}
	if !reflect.DeepEqual(recs[0], columns(s)) {
		t.Errorf("header = %q, want %q", recs[0], columns(s))
	}
	col := map[string]int{}
	for i, c := range recs[0] {
		col[c] = i
	}
	for _, tc := range []struct {
		row       int
		col, want string
	}{
		{1, "run_uuid", "uuid-a"},
		{1, "hostname", "lab-1"},
		{1, "cores", "2"},
		{1, "threads", "2"},
		{1, "simd", ""},
		{1, "int8_engine", ""},
		{1, "run_started", "2025-01-02T03:04:05Z"},
		{1, "experiment", "baseline"},
		{1, "families", ""},
		{1, "params", "5717416"},
		{1, "latency_p50", "0.00321"},
		{1, "aa_custom", "-inf"},
		{1, "zz_custom", "1.5"},
		{1, "speedup", ""},
		{2, "experiment", "prune,heads"},
		{2, "families", "prune+quantize"},
		{2, "status", "failed"},
		{2, "error", "libtorch: op \"_int_mm\" missing,\nnot in 1.13.1"},
		{2, "top1", ""},
		{2, "metric_status", "3"},
		{2, "params", ""},
		{3, "run_uuid", "uuid-b"},
		{3, "cpu", `Intel "Xeon", 8 cores`},
		{3, "gpu", "NVIDIA H100"},
		{3, "threads", "16"},
		{3, "simd", "sse4_2 avx avx2"},
		{3, "int8_engine", "oneDNN 2.6.3 avx2"},
		{3, "device", "cuda"},
		{3, "pipeline", "prune(heads=0.5) → quantize(w8a8)"},
		{3, "speedup", "2.5"},
		{3, "top1", "91.25"},
	} {
		i, ok := col[tc.col]
		if !ok {
			t.Errorf("no column %q", tc.col)
			continue
		}
		if got := recs[tc.row][i]; got != tc.want {
			t.Errorf("row %d %s = %q, want %q", tc.row, tc.col, got, tc.want)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	s := exportSnapshot()
	var buf bytes.Buffer
	if err := WriteJSON(&buf, s); err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rows); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	if len(rows) != 3 {
		t.Fatalf("%d objects, want 3", len(rows))
	}
	for i, row := range rows {
		if len(row) != len(columns(s)) {
			t.Errorf("object %d has %d keys, want %d", i, len(row), len(columns(s)))
		}
	}
	for _, tc := range []struct {
		row  int
		key  string
		want any
	}{
		{0, "run_uuid", "uuid-a"},
		{0, "cores", 2.0},
		{0, "params", 5717416.0},
		{0, "aa_custom", nil},
		{0, "speedup", nil},
		{1, "top1", nil},
		{1, "metric_status", 3.0},
		{1, "error", "libtorch: op \"_int_mm\" missing,\nnot in 1.13.1"},
		{2, "speedup", 2.5},
		{2, "threads", 16.0},
		{2, "families", "prune+quantize"},
	} {
		if got, ok := rows[tc.row][tc.key]; !ok || got != tc.want {
			t.Errorf("object %d %q = %#v (present %v), want %#v", tc.row, tc.key, got, ok, tc.want)
		}
	}
	// Keys in column order.
	dec := json.NewDecoder(bytes.NewReader(buf.Bytes()))
	dec.Token() // [
	dec.Token() // {
	var keys []string
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var v any
		dec.Decode(&v)
	}
	if !reflect.DeepEqual(keys, columns(s)) {
		t.Errorf("keys in order %q, want %q", keys, columns(s))
	}

	buf.Reset()
	if err := WriteJSON(&buf, &Snapshot{}); err != nil || strings.TrimSpace(buf.String()) != "[]" {
		t.Errorf("WriteJSON(empty) = %q, %v", buf.String(), err)
	}
}

func TestFormatFloat(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "0"},
		{5717416, "5717416"},
		{17.56e9, "17560000000"},
		{0.00321, "0.00321"},
		{-2.5, "-2.5"},
		{1e-9, "1e-09"},
		{1e30, "1e+30"},
		{math.NaN(), ""},
		{math.Inf(1), "inf"},
		{math.Inf(-1), "-inf"},
	} {
		got := formatFloat(tc.v)
		if got != tc.want {
			t.Errorf("formatFloat(%v) = %q, want %q", tc.v, got, tc.want)
		}
		if got != "" && !strings.Contains(got, "inf") {
			if back, err := strconv.ParseFloat(got, 64); err != nil || back != tc.v {
				t.Errorf("formatFloat(%v) = %q reads back as %v, %v", tc.v, got, back, err)
			}
		}
	}
}

// TestStandardMetricsOrder checks standardMetrics against the declaration
// order of the metric names in harness/metrics.
func TestStandardMetricsOrder(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../metrics/metrics.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			if strings.HasPrefix(vs.Names[0].Name, "Unit") {
				continue
			}
			for _, v := range vs.Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					declared = append(declared, s)
				}
			}
		}
	}
	if !reflect.DeepEqual(standardMetrics, declared) {
		t.Errorf("standardMetrics =\n%q\nmetrics.go declares\n%q", standardMetrics, declared)
	}
	for _, n := range standardMetrics {
		if _, ok := metrics.Lookup(n); !ok {
			t.Errorf("%q is not a known metric", n)
		}
	}
}

// TestExportFromDatabase exports a real database and reads the CSV back
// with Python: pandas when installed, its csv module otherwise.
func TestExportFromDatabase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openAt(t, filepath.Join(dir, "results.db"))
	r := beginTest(t, db)
	e := testExperiment(r.ID, "kd, \"quoted\"", 3)
	e.Error = "line one\nline two, with comma"
	if err := db.SaveExperiment(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveExperiment(ctx, testExperiment(r.ID, "ptq/w8", 3)); err != nil {
		t.Fatal(err)
	}
	snap, err := db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	csvPath := filepath.Join(dir, "out.csv")
	var buf bytes.Buffer
	if err := WriteCSV(&buf, snap); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(csvPath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
	if err != nil || len(recs) != 3 || recs[1][slices.Index(recs[0], "experiment")] != e.Name {
		t.Fatalf("CSV read back: %q, %v", recs, err)
	}

	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("no", python)
	}
	script := `
import csv, json, sys
path = sys.argv[1]
try:
    import pandas
    df = pandas.read_csv(path)
    out = {"reader": "pandas", "columns": list(df.columns), "rows": len(df),
           "experiment": list(df["experiment"]), "error": str(df["error"][0]),
           "top1": [float(x) for x in df["top1"]]}
except ImportError:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = {"reader": "csv", "columns": list(rows[0].keys()), "rows": len(rows),
           "experiment": [r["experiment"] for r in rows], "error": rows[0]["error"],
           "top1": [float(r["top1"]) for r in rows]}
print(json.dumps(out))
`
	cmd := exec.Command(python, "-c", script, csvPath)
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, outb)
	}
	var got struct {
		Reader     string
		Columns    []string
		Rows       int
		Experiment []string
		Error      string
		Top1       []float64
	}
	if err := json.Unmarshal(outb, &got); err != nil {
		t.Fatalf("python output %q: %v", outb, err)
	}
	t.Logf("read with Python's %s", got.Reader)
	if !reflect.DeepEqual(got.Columns, columns(snap)) {
		t.Errorf("python columns %q, want %q", got.Columns, columns(snap))
	}
	if got.Rows != 2 || !reflect.DeepEqual(got.Experiment, []string{e.Name, "ptq/w8"}) {
		t.Errorf("python rows %d, experiments %q", got.Rows, got.Experiment)
	}
	if got.Error != e.Error {
		t.Errorf("python error cell %q, want %q", got.Error, e.Error)
	}
	if !reflect.DeepEqual(got.Top1, []float64{91.25, 91.25}) {
		t.Errorf("python top1 %v", got.Top1)
	}
}
