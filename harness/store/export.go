package store

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vitbench/vitbench/harness/metrics"
)

// standardMetrics lists the metric names of package metrics in the order
// they are declared there; exports put their columns first, in this order.
//
// Note: package metrics keeps its names in a map; this list repeats their
// declaration order, and a test checks it against metrics.go.
var standardMetrics = []string{
	metrics.Top1,
	metrics.Top5,
	metrics.Top1Simulated,
	metrics.Top5Simulated,
	metrics.Params,
	metrics.ParamsNonZero,
	metrics.MACs,
	metrics.MACsEffective,
	metrics.BitOps,
	metrics.SizeBytes,
	metrics.LatencyP50,
	metrics.LatencyP90,
	metrics.LatencyP99,
	metrics.Throughput,
	metrics.ThroughputBatch,
	metrics.LatencySplit,
	metrics.ThroughputSplit,
	metrics.TrainSeconds,
	metrics.CompressSeconds,
	metrics.EvalSeconds,
	metrics.PeakRSSBytes,
	metrics.Top1Delta,
	metrics.CompressionRatio,
	metrics.MACsRatio,
	metrics.Speedup,
	metrics.ThroughputGain,
}

// fixedColumns are the export columns before the metrics: the run, its
// machine, then the experiment.
var fixedColumns = []string{
	"run_uuid", "suite", "hostname", "cpu", "cores", "gpu", "libtorch", "blas", "threads", "engine", "simd", "int8_engine", "device",
	"run_started", "experiment", "replica", "seed", "group", "model", "dataset", "baseline", "pipeline", "families",
	"description", "model_description", "status", "executed", "exec_detail", "quant_sites", "error",
}

// MeanSeed is the seed column of an export row that holds the mean of a
// replica set across its seeds (Replicas).
const MeanSeed = "mean"

// table is a snapshot flattened to one row per experiment, and one per
// replica set after its last replica. A cell is a
// string, an int64, a float64 or nil (no value).
type table struct {
	columns []string
	rows    [][]any
}

// settingPrefix starts the name of an export column that holds a stage
// parameter: "param:quantize.weight_bits" (see Setting.Name).
const settingPrefix = "param:"

// columns returns the header of the export of s: the run and machine
// columns, the experiment columns, then one column per stage parameter
// found in s (settingPrefix + its flat key, sorted), then one column per
// metric name found in s, the standard ones (standardMetrics) first and
// the others sorted. A metric whose name is already a column is prefixed
// "metric_".
func columns(s *Snapshot) []string {
	mcols, _ := metricColumns(s)
	return slices.Concat(fixedColumns, settingColumns(s), mcols)
}

// settingColumns returns a column name per flat setting key found in s,
// sorted: a technique's parameters together, and a pipeline's second
// stage of a technique ("quantize#2.") after its first.
func settingColumns(s *Snapshot) []string {
	found := map[string]bool{}
	for _, e := range s.Experiments {
		for _, st := range e.Settings {
			found[st.Name] = true
		}
	}
	var cols []string
	for _, n := range slices.Sorted(maps.Keys(found)) {
		cols = append(cols, settingPrefix+n)
	}
	return cols
}

// metricColumns returns the metric columns of s and the metric name of
// each.
func metricColumns(s *Snapshot) (cols, names []string) {
	found := map[string]bool{}
	for _, e := range s.Experiments {
		for _, m := range e.Metrics {
			found[m.Name] = true
		}
	}
	for _, set := range Replicas(s.Experiments) {
		for _, a := range set.Metrics {
			if hasMeanInterval(a.Name) {
				found[metrics.Lo(a.Name)], found[metrics.Hi(a.Name)] = true, true
			}
		}
	}
	// Each standard metric is followed by its interval and p-value
	// siblings, so a reader finds them beside the value.
	for _, n := range standardMetrics {
		for _, c := range []string{n, metrics.Lo(n), metrics.Hi(n), metrics.P(n)} {
			if found[c] {
				names = append(names, c)
				delete(found, c)
			}
		}
	}
	names = append(names, slices.Sorted(maps.Keys(found))...)
	for _, n := range names {
		c := n
		if slices.Contains(fixedColumns, n) {
			c = "metric_" + n
		}
		cols = append(cols, c)
	}
	return cols, names
}

func flatten(s *Snapshot) table {
	if s == nil {
		s = &Snapshot{}
	}
	mcols, mnames := metricColumns(s)
	scols := settingColumns(s)
	t := table{columns: slices.Concat(fixedColumns, scols, mcols)}
	runs := make(map[int64]*Run, len(s.Runs))
	for i := range s.Runs {
		runs[s.Runs[i].ID] = &s.Runs[i]
	}
	sets := Replicas(s.Experiments)
	last := map[*Experiment]*ReplicaSet{} // a set's last replica -> the set
	names := map[int64]map[string]*Experiment{}
	for i := range sets {
		last[sets[i].Experiments[len(sets[i].Experiments)-1]] = &sets[i]
	}
	for i := range s.Experiments {
		e := &s.Experiments[i]
		if names[e.RunID] == nil {
			names[e.RunID] = map[string]*Experiment{}
		}
		names[e.RunID][e.Name] = e
	}
	for i := range s.Experiments {
		e := &s.Experiments[i]
		t.rows = append(t.rows, experimentRow(runs[e.RunID], e, nil, scols, mnames))
		if set := last[e]; set != nil {
			t.rows = append(t.rows, experimentRow(runs[e.RunID], e, set, scols, mnames))
			// The mean's baseline is the baseline's replica set.
			if b := names[e.RunID][e.Baseline]; b != nil {
				t.rows[len(t.rows)-1][slices.Index(t.columns, "baseline")] = b.ReplicaName()
			}
		}
	}
	return t
}

// hasMeanInterval reports whether a metric's mean across seeds gets
// interval columns in exports: every metric but the exact counts, whose
// seeds agree.
func hasMeanInterval(name string) bool {
	info, ok := metrics.Lookup(name)
	return !ok || !info.Exact
}

// experimentRow flattens experiment e of run r, or, when set is not nil,
// the mean of e's replica set across its seeds: seed MeanSeed, each
// metric its mean, and NAME_lo, NAME_hi its 95% interval.
func experimentRow(r *Run, e *Experiment, set *ReplicaSet, scols, mnames []string) []any {
	if r == nil {
		r = &Run{}
	}
	m := r.Machine
	name, status, errText := e.Name, e.Status, e.Error
	var seed any
	if e.Seed != nil {
		seed = *e.Seed
	}
	if set != nil {
		name, seed, status, errText = set.Name, MeanSeed, StatusOK, ""
		if ok := len(set.Seeds); ok < len(set.Experiments) {
			status, errText = StatusFailed, fmt.Sprintf("%d of %d seeds failed", len(set.Experiments)-ok, len(set.Experiments))
		}
	}
	var started any
	if !r.Started.IsZero() {
		started = r.Started.UTC().Format(time.RFC3339Nano)
	}
	row := []any{
		r.UUID, r.SuiteName, m.Hostname, m.CPU, int64(m.Cores), m.GPU, m.Libtorch, m.BLAS,
		int64(r.Threads), r.Engine, r.SIMD, r.Int8Engine, r.Device, started,
		name, e.ReplicaName(), seed, e.Group, e.Model, e.Dataset, e.Baseline, e.Pipeline, strings.Join(e.Families, "+"),
		e.Description, e.ModelDescription, status, e.Executed, e.ExecDetail, QuantSitesText(e.Quant), errText,
	}
	settings := make(map[string]string, len(e.Settings))
	for _, st := range e.Settings {
		settings[settingPrefix+st.Name] = st.Value
	}
	for _, c := range scols {
		if v, ok := settings[c]; ok {
			row = append(row, v)
		} else {
			row = append(row, nil)
		}
	}
	values := make(map[string]float64, len(e.Metrics))
	if set == nil {
		for _, mt := range e.Metrics {
			values[mt.Name] = mt.Value
		}
	} else {
		for _, a := range set.Metrics {
			values[a.Name] = a.Value
			if hasMeanInterval(a.Name) {
				values[metrics.Lo(a.Name)], values[metrics.Hi(a.Name)] = a.Lo, a.Hi
			}
		}
	}
	for _, n := range mnames {
		if v, ok := values[n]; ok {
			row = append(row, v)
		} else {
			row = append(row, nil)
		}
	}
	return row
}

// WriteCSV writes s as CSV (RFC 4180, as encoding/csv writes it): a header
// of columns(s), then one row per experiment in the order of s. Stage
// parameters are their text as a suite writes it (8, 0.5, minmax,
// [qkv,proj]), empty where the experiment's pipeline lacks the stage.
// Metrics are in their normalised units (seconds, bytes, percent, plain
// counts); a missing metric or NaN is an empty cell, infinities are inf
// and -inf. Families are joined with "+". Times are RFC 3339 in UTC.
func WriteCSV(w io.Writer, s *Snapshot) error {
	t := flatten(s)
	cw := csv.NewWriter(w)
	if err := cw.Write(t.columns); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	rec := make([]string, len(t.columns))
	for _, row := range t.rows {
		for i, c := range row {
			rec[i] = csvCell(c)
		}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("write csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

func csvCell(c any) string {
	switch v := c.(type) {
	case nil:
		return ""
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return formatFloat(v)
	default:
		return fmt.Sprint(v)
	}
}

// formatFloat writes v so that pandas and Python's float() read it back
// exactly: no exponent for ordinary magnitudes, so counts stay integers.
func formatFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return ""
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	case v == 0 || (math.Abs(v) >= 1e-6 && math.Abs(v) < 1e21):
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
}

// WriteJSON writes s as a JSON array with one object per experiment, whose
// keys are columns(s) in that order. Metrics are numbers, null when missing
// or not finite; cores and threads are numbers; stage parameters are
// strings as in WriteCSV, null where the pipeline lacks the stage; the
// rest are strings.
func WriteJSON(w io.Writer, s *Snapshot) error {
	t := flatten(s)
	bw := bufio.NewWriter(w)
	bw.WriteString("[")
	for i, row := range t.rows {
		if i > 0 {
			bw.WriteString(",")
		}
		bw.WriteString("\n  {")
		for j, c := range row {
			if j > 0 {
				bw.WriteString(", ")
			}
			k, _ := json.Marshal(t.columns[j])
			bw.Write(k)
			bw.WriteString(": ")
			if f, ok := c.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
				c = nil
			}
			v, err := json.Marshal(c)
			if err != nil {
				return fmt.Errorf("write json: %s: %w", t.columns[j], err)
			}
			bw.Write(v)
		}
		bw.WriteString("}")
	}
	if len(t.rows) > 0 {
		bw.WriteString("\n")
	}
	bw.WriteString("]\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}
