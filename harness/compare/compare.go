// Package compare sets the results of two or more runs side by side the
// way benchstat sets benchmark files: per metric, one row per experiment,
// each run's value with its 95% interval, the delta of every later run to
// the first with its p-value, "~" where the difference is not significant,
// and a geomean row. The statistics come from package stats; the runs from
// package store; cmd/bench's compare command selects the runs and prints
// what this package computes (WriteText, WriteJSON).
package compare

import (
	"fmt"
	"math"
	"slices"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/stats"
	"github.com/vitbench/vitbench/harness/store"
)

// Run is one run with its experiments.
type Run struct {
	store.Run
	Experiments []store.Experiment
}

// DefaultMetrics are the metrics compared when none are asked for, in the
// order their tables are printed; a metric no selected experiment has is
// left out. Derived ratios to a run's own baseline (speed-up, compression
// ratio) are left out, their parts being compared directly, and so is the
// peak memory, which is the process's, not the experiment's; Compare
// still compares them when named.
var DefaultMetrics = []string{
	metrics.Top1, metrics.Top5, metrics.Top1Simulated, metrics.Top5Simulated,
	metrics.LatencyP50, metrics.Throughput,
	metrics.SizeBytes, metrics.Params, metrics.ParamsNonZero,
	metrics.MACs, metrics.MACsEffective, metrics.BitOps,
}

// Kind says how a metric's values are estimated and tested.
type Kind string

// Kinds of metrics.
const (
	// Accuracy is a rate over test images: Wilson intervals from the
	// stored outcomes, deltas in percentage points, McNemar on the same
	// images and a two-proportion test otherwise.
	Accuracy Kind = "accuracy"
	// Timing is a measured time or rate with stored samples: benchmath's
	// medians and Mann-Whitney U tests, deltas in percent.
	Timing Kind = "timing"
	// Exact is a count: no interval, and a difference is a difference.
	Exact Kind = "exact"
	// Single is a noisy metric measured once: its stored interval if any,
	// and no test.
	Single Kind = "single"
)

// series maps the timing metrics to the stored samples they summarize.
var series = map[string]string{
	metrics.LatencyP50: store.SeriesLatency,
	metrics.Throughput: store.SeriesThroughput,
}

// KindOf returns how metric name is compared.
func KindOf(name string) Kind {
	info, _ := metrics.Lookup(name)
	switch {
	case info.Unit == metrics.UnitPercent && name != metrics.Top1Delta:
		return Accuracy
	case series[name] != "":
		return Timing
	case info.Exact:
		return Exact
	}
	return Single
}

// Comparison is the result of Compare: the compared runs and one table per
// metric.
type Comparison struct {
	Runs     []Run
	Tables   []Table
	Warnings []string // about the comparison as a whole
}

// Table compares one metric across the runs.
type Table struct {
	Metric string
	Label  string // e.g. "top-1 (%)"
	Unit   string // the stored unit, metrics.UnitPercent, UnitSeconds, ...
	Kind   Kind
	Better int // +1 higher is better, -1 lower is better, 0 neither
	Rows   []Row
	// Summary is the geomean row (the mean for accuracy, whose deltas are
	// in points), over the experiments present in every run; nil with
	// fewer than two such experiments. Its deltas are not tested.
	Summary  *Row
	Warnings []string
}

// Row is one experiment (or the summary) across the runs.
type Row struct {
	Name  string
	Cells []Cell // one per run, in the order of Comparison.Runs
}

// Cell is one run's value of one metric for one experiment, and for every
// run but the first its difference to the first's.
type Cell struct {
	Present bool    // the run has this experiment with this metric
	Value   float64 // in the stored unit
	Lo, Hi  float64 // 95% interval; NaN when none, ±Inf when unbounded
	N       int     // images (accuracy) or samples (timing); 0 when unknown

	// Delta is the difference to the first run's value: percentage points
	// for accuracy, percent of the first run's value otherwise. NaN for
	// the first run and when either value is missing.
	Delta float64
	// DeltaLo and DeltaHi bound Delta where an interval is known (the
	// paired bootstrap of accuracies on the same images); NaN otherwise.
	DeltaLo, DeltaHi float64
	// P is the p-value of the test named by Test; NaN when no test was
	// possible or needed (exact metrics).
	P float64
	// Test is "mcnemar", "two-proportion", "mann-whitney", "exact" or ""
	// (no test).
	Test string
	// BaseN is the first run's N, for the "n=" of the test.
	BaseN int
	// Significant reports whether the difference is real: P < stats.Alpha,
	// or for exact metrics whether the values differ.
	Significant bool
}

// Compare sets runs side by side, the first as the base, for the named
// metrics (DefaultMetrics when none), in that order. Only experiments that
// succeeded are compared. A metric that no
// experiment of the runs has is skipped unless it was named, which is an
// error.
func Compare(runs []Run, names ...string) (*Comparison, error) {
	if len(runs) < 2 {
		return nil, fmt.Errorf("compare: need two or more runs, have %d", len(runs))
	}
	asked := len(names) > 0
	if !asked {
		names = DefaultMetrics
	}
	c := &Comparison{Runs: runs}
	index := make([]map[string]*store.Experiment, len(runs))
	var order []string // experiment names, first appearance first
	for i, r := range runs {
		index[i] = map[string]*store.Experiment{}
		for j := range r.Experiments {
			e := &r.Experiments[j]
			if e.Status != store.StatusOK {
				// A failed experiment's metrics, if any, are partial.
				continue
			}
			if _, dup := index[i][e.Name]; dup {
				c.Warnings = append(c.Warnings, fmt.Sprintf("run %d has experiment %s more than once; the first is compared", r.ID, e.Name))
				continue
			}
			index[i][e.Name] = e
			if !slices.Contains(order, e.Name) {
				order = append(order, e.Name)
			}
		}
	}
	for _, name := range names {
		t := compareMetric(name, order, index)
		if len(t.Rows) == 0 {
			if asked {
				return nil, fmt.Errorf("compare: no experiment of the runs has metric %q", name)
			}
			continue
		}
		c.Tables = append(c.Tables, t)
	}
	return c, nil
}

// compareMetric builds the table of metric name.
func compareMetric(name string, order []string, index []map[string]*store.Experiment) Table {
	info, _ := metrics.Lookup(name)
	label := info.Label
	if label == "" {
		label = name
	}
	t := Table{Metric: name, Label: label, Unit: info.Unit, Kind: KindOf(name), Better: info.Better}
	for _, exp := range order {
		row := Row{Name: exp, Cells: make([]Cell, len(index))}
		seen := false
		for i := range index {
			row.Cells[i] = cellOf(t.Kind, name, index[i][exp])
			seen = seen || row.Cells[i].Present
		}
		if !seen {
			continue
		}
		for i := 1; i < len(index); i++ {
			diff(t.Kind, name, &row.Cells[i], row.Cells[0], index[i][exp], index[0][exp])
		}
		t.Rows = append(t.Rows, row)
	}
	t.Summary, t.Warnings = summarize(t)
	return t
}

var nan = math.NaN()

// cellOf estimates metric name of experiment e (nil when the run lacks it).
func cellOf(kind Kind, name string, e *store.Experiment) Cell {
	c := Cell{Value: nan, Lo: nan, Hi: nan, Delta: nan, DeltaLo: nan, DeltaHi: nan, P: nan}
	if e == nil {
		return c
	}
	stored := map[string]float64{}
	for _, m := range e.Metrics {
		stored[m.Name] = m.Value
	}
	switch kind {
	case Accuracy:
		if k, n, ok := correct(e, name); ok {
			est := stats.Proportion(k, n)
			c.Present, c.Value, c.Lo, c.Hi, c.N = true, est.Value, est.Lo, est.Hi, n
			return c
		}
	case Timing:
		if s := e.SampleValues(series[name]); len(s) > 0 {
			est := stats.Median(s)
			c.Present, c.Value, c.Lo, c.Hi, c.N = true, est.Value, est.Lo, est.Hi, len(s)
			return c
		}
	}
	v, ok := stored[name]
	if !ok || math.IsNaN(v) {
		return c
	}
	c.Present, c.Value = true, v
	if kind != Exact {
		if lo, ok := stored[metrics.Lo(name)]; ok {
			c.Lo = lo
		}
		if hi, ok := stored[metrics.Hi(name)]; ok {
			c.Hi = hi
		}
	}
	return c
}

// correct returns the number of correct images of e's outcome for metric
// and how many there were, when e kept a usable outcome.
func correct(e *store.Experiment, metric string) (k, n int, ok bool) {
	o, ok := e.Outcome(metric)
	if !ok || o.N <= 0 || len(o.Bits) < (o.N+7)/8 {
		return 0, 0, false
	}
	return stats.Bits(o.Bits).Count(o.N), o.N, true
}

// diff fills c's delta to base and its test; e and be are the experiments
// the cells came from.
func diff(kind Kind, name string, c *Cell, base Cell, e, be *store.Experiment) {
	c.BaseN = base.N
	if !c.Present || !base.Present {
		return
	}
	if kind == Accuracy {
		c.Delta = c.Value - base.Value
	} else if base.Value != 0 {
		c.Delta = 100 * (c.Value/base.Value - 1)
	} else if c.Value == 0 {
		c.Delta = 0
	}
	switch kind {
	case Exact:
		c.Test, c.Significant = "exact", c.Value != base.Value
		return
	case Accuracy:
		o, ok1 := e.Outcome(name)
		bo, ok2 := be.Outcome(name)
		k, n, ok3 := correct(e, name)
		bk, bn, ok4 := correct(be, name)
		switch {
		case ok1 && ok2 && ok3 && ok4 && o.Images != "" && o.Images == bo.Images && n == bn:
			est, p := stats.PairedDelta(stats.Bits(bo.Bits), stats.Bits(o.Bits), n)
			c.Delta, c.DeltaLo, c.DeltaHi, c.P, c.Test = est.Value, est.Lo, est.Hi, p, "mcnemar"
		case ok3 && ok4:
			c.P, c.Test = stats.TwoProportions(bk, bn, k, n), "two-proportion"
		}
	case Timing:
		s, bs := e.SampleValues(series[name]), be.SampleValues(series[name])
		if len(s) > 0 && len(bs) > 0 {
			c.P, c.Test = stats.Compare(bs, s), "mann-whitney"
		}
	}
	c.Significant = stats.Significant(c.P)
}

// summarize returns t's summary row over the experiments present in every
// run, and warnings when that is not every row or a geomean is undefined.
func summarize(t Table) (*Row, []string) {
	var common []Row
	for _, r := range t.Rows {
		all := true
		for _, c := range r.Cells {
			all = all && c.Present
		}
		if all {
			common = append(common, r)
		}
	}
	if len(common) < 2 {
		return nil, nil
	}
	var warn []string
	if len(common) < len(t.Rows) {
		warn = append(warn, fmt.Sprintf("%s: the %s is over the %d of %d experiments present in every run",
			t.Metric, summaryName(t.Kind), len(common), len(t.Rows)))
	}
	n := len(common[0].Cells)
	sum := &Row{Name: summaryName(t.Kind), Cells: make([]Cell, n)}
	for i := range n {
		vs := make([]float64, len(common))
		for j, r := range common {
			vs[j] = r.Cells[i].Value
		}
		c := Cell{Present: true, Lo: nan, Hi: nan, Delta: nan, DeltaLo: nan, DeltaHi: nan, P: nan}
		if t.Kind == Accuracy {
			c.Value = mean(vs)
		} else {
			c.Value = geomean(vs)
		}
		if math.IsNaN(c.Value) {
			warn = append(warn, fmt.Sprintf("%s: values must be > 0 for a geomean", t.Metric))
			return nil, warn
		}
		sum.Cells[i] = c
	}
	for i := 1; i < n; i++ {
		c := &sum.Cells[i]
		if t.Kind == Accuracy {
			c.Delta = c.Value - sum.Cells[0].Value
		} else {
			c.Delta = 100 * (c.Value/sum.Cells[0].Value - 1)
		}
	}
	return sum, warn
}

func summaryName(k Kind) string {
	if k == Accuracy {
		return "mean"
	}
	return "geomean"
}

func mean(vs []float64) float64 {
	var s float64
	for _, v := range vs {
		s += v
	}
	return s / float64(len(vs))
}

// geomean is NaN unless every value is positive.
func geomean(vs []float64) float64 {
	var s float64
	for _, v := range vs {
		if !(v > 0) {
			return nan
		}
		s += math.Log(v)
	}
	return math.Exp(s / float64(len(vs)))
}
