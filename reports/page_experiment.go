package reports

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/store"
)

type experimentBody struct {
	Facts    table
	Error    string
	Settings table
	Metrics  table
	Missing  []error
	Charts   []chartBlock
	Layers   table
	// Quant lists the quantized sites (QuantNote says how), Mixed a
	// mixed-precision search layer by layer.
	Quant     table
	QuantNote string
	Mixed     table
	Spec      string
}

// expected are the metrics every successful experiment should have; the
// page says which are missing.
var expected = []string{metrics.Top1, metrics.Params, metrics.MACs, metrics.SizeBytes, metrics.LatencyP50, metrics.Throughput}

// experiments writes one page per experiment of every run.
func (s *site) experiments() error {
	for _, r := range s.v.rows {
		var cs chartSet
		b := experimentBody{Error: r.exp.Error, Spec: prettyJSON(r.exp.SpecJSON)}
		b.Facts = factsTable(r)
		b.Settings = settingsTable(r.exp)
		b.Metrics = metricsTable(r)
		for _, name := range expected {
			if _, ok := r.get(name); !ok {
				info, _ := metrics.Lookup(name)
				why := "not recorded"
				if !r.ok() {
					why = "not recorded: the experiment " + r.exp.Status
				}
				b.Missing = append(b.Missing, fmt.Errorf("%s (%s): %s", info.Label, name, why))
			}
		}
		if r.exp.Baseline != "" && r.base == nil {
			b.Missing = append(b.Missing, fmt.Errorf("baseline %q is not in this run: relative metrics not stored with the experiment are missing", r.exp.Baseline))
		}
		if err := curveCharts(&cs, r.exp.Curves); err != nil {
			return fmt.Errorf("experiment %q: %w", r.exp.Name, err)
		}
		b.Charts = cs.list
		b.Layers = layersTable(r.exp.Layers)
		b.Quant, b.QuantNote = quantTable(r.exp.Quant)
		b.Mixed = mixedTable(r.exp.Quant)
		if err := s.page(r.page, "experiment", "Experiment "+r.exp.Name, nil, cs.list, b); err != nil {
			return err
		}
	}
	return nil
}

func factsTable(r *row) table {
	e := r.exp
	t := table{Head: []headCell{{Text: "field"}, {Text: "value"}}}
	add := func(k string, c cell) { t.Rows = append(t.Rows, []cell{{Text: k}, c}) }
	add("name", cell{Text: e.Name})
	add("status", func() cell {
		c := orMissing(e.Status, "unknown")
		if !r.ok() {
			c.Class = "failed"
		}
		return c
	}())
	if e.Description != "" {
		add("description", cell{Text: e.Description})
	}
	add("group", orMissing(e.Group, "—"))
	add("data set", orMissing(e.Dataset, "not recorded"))
	add("baseline model", orMissing(e.Model, "not recorded"))
	if e.ModelDescription != "" {
		add("model", cell{Text: e.ModelDescription})
	}
	if e.Baseline != "" {
		c := cell{Text: e.Baseline}
		if r.base == nil {
			c.Class, c.Title = "missing", "not in this run"
		}
		add("relative to", c)
	}
	add("family", cell{Text: familyText(r)})
	add("pipeline", cell{Text: pipelineText(r)})
	if len(e.Params) > 0 {
		var ps []string
		for _, k := range sortedParamKeys(e.Params) {
			ps = append(ps, k+" = "+e.Params[k])
		}
		add("swept parameters", cell{Text: strings.Join(ps, ", ")})
	}
	add("executed", func() cell {
		c := orMissing(e.Executed, "not recorded")
		if r.simulated() {
			c.Text += " (fake-quantized: latency is fp32 execution)"
		}
		return c
	}())
	if e.ExecDetail != "" {
		add("execution", cell{Text: e.ExecDetail})
	}
	add("run", cell{Text: runLabel(r.run), Href: "machines.html"})
	if r.run != nil {
		add("suite", orMissing(r.run.SuiteName, "unnamed"))
	}
	add("artifact hash", orMissing(shortHash(e.Hash), "not recorded"))
	add("started", cell{Text: fmtTime(e.Started)})
	if !e.Ended.IsZero() && !e.Started.IsZero() {
		add("wall time", cell{Text: e.Ended.Sub(e.Started).Round(1e6).String()})
	}
	return t
}

// metricsTable lists every metric with its display value, unit and
// direction, then the relative ones computed against the baseline.
func metricsTable(r *row) table {
	t := table{
		Empty: "No metrics were recorded for this experiment.",
		Head: []headCell{{Text: "metric"}, {Text: "name"}, {Text: "value", Num: true}, {Text: "stored as"},
			{Text: "better"}, {Text: "baseline", Num: true}, {Text: "vs baseline", Num: true}},
	}
	ms := append([]metrics.Metric(nil), r.exp.Metrics...)
	sort.SliceStable(ms, func(i, j int) bool { return metricRank(ms[i].Name) < metricRank(ms[j].Name) })
	for _, m := range ms {
		info, known := metrics.Lookup(m.Name)
		unit := m.Unit
		if unit == "" {
			unit = info.Unit
		}
		label := info.Label
		if !known {
			label = m.Name
		}
		better := cell{Text: "unknown", Class: "missing"}
		if known {
			better = cell{Text: betterText(info.Better)}
		}
		row := []cell{{Text: label}, {Text: m.Name}, {Text: fmtMetric(m.Name, m.Value, unit), Class: "num"},
			{Text: strings.TrimSpace(strconv.FormatFloat(m.Value, 'g', 10, 64) + " " + unit)}, better}
		if b, ok := r.baseGet(m.Name); ok && r.base != nil {
			row = append(row, cell{Text: fmtMetric(m.Name, b, unit), Class: "num"}, relCell(m.Name, m.Value, b))
		} else {
			row = append(row, cell{}, cell{})
		}
		t.Rows = append(t.Rows, row)
	}
	// Relative metrics the runner did not store, computed here.
	derived := []struct {
		name string
		v    func() (float64, bool)
	}{
		{metrics.Top1Delta, r.top1Delta},
		{metrics.Speedup, r.speedup},
		{metrics.MACsRatio, r.macsRatio},
		{metrics.CompressionRatio, r.compression},
	}
	for _, d := range derived {
		if _, stored := r.get(d.name); stored || r.fam == familyBaseline {
			continue
		}
		v, ok := d.v()
		if !ok {
			continue
		}
		info, _ := metrics.Lookup(d.name)
		c := cell{Text: fmtMetric(d.name, v, info.Unit), Class: "num"}
		pivot := 1.0
		if d.name == metrics.Top1Delta {
			pivot = 0
			c.Text = fmtSigned(v) + " pts"
		}
		if cls := deltaClass(d.name, v, pivot); cls != "" {
			c.Class += " " + cls
		}
		t.Rows = append(t.Rows, []cell{{Text: info.Label + " (computed)"}, {Text: d.name}, c, {Text: "computed from the baseline", Class: "missing"}, {Text: betterText(info.Better)}, {}, {}})
	}
	return t
}

// relCell shows value against baseline: a difference for percentages, a
// ratio otherwise, coloured when the direction is known.
func relCell(name string, v, b float64) cell {
	info, _ := metrics.Lookup(name)
	if info.Unit == metrics.UnitPercent {
		d := v - b
		return cell{Text: fmtSigned(d) + " pts", Class: strings.TrimSpace("num " + deltaClass(name, d, 0))}
	}
	if b == 0 {
		return cell{Text: "—", Class: "num missing"}
	}
	q := v / b
	return cell{Text: "×" + fmtNum(q), Class: strings.TrimSpace("num " + deltaClass(name, q, 1))}
}

func metricRank(name string) int {
	order := []string{metrics.Top1, metrics.Top5, metrics.Top1Delta, metrics.Params, metrics.ParamsNonZero, metrics.MACs,
		metrics.MACsEffective, metrics.BitOps, metrics.SizeBytes, metrics.LatencyP50, metrics.LatencyP90, metrics.LatencyP99,
		metrics.Throughput, metrics.ThroughputBatch, metrics.Speedup, metrics.ThroughputGain, metrics.MACsRatio,
		metrics.CompressionRatio, metrics.TrainSeconds, metrics.CompressSeconds, metrics.EvalSeconds, metrics.PeakRSSBytes}
	for i, n := range order {
		if n == name {
			return i
		}
	}
	return len(order)
}

// settingsTable lists every parameter of every stage, in pipeline order,
// the swept ones marked.
func settingsTable(e *store.Experiment) table {
	t := table{
		Empty: "No stage parameters were stored: the experiment is a baseline, or was run before parameters were recorded (its resolved spec below has them).",
		Head: []headCell{{Text: "stage", Num: true, Title: "position in the pipeline"}, {Text: "technique"}, {Text: "parameter"},
			{Text: "value"}, {Text: "swept"}, {Text: "key", Title: "flat key: bench export's column param:KEY"}},
	}
	for _, s := range e.Settings {
		value, swept := cell{Text: s.Value}, cell{}
		if s.Swept {
			value.Class, swept.Text = "swept", "swept"
		}
		t.Rows = append(t.Rows, []cell{{Text: strconv.Itoa(s.Stage + 1), Class: "num"}, {Text: s.Technique}, {Text: s.Key},
			value, swept, {Text: s.Name}})
	}
	return t
}

func layersTable(layers []store.Layer) table {
	t := table{
		Sortable: true,
		Empty:    "No per-layer counts were recorded for this experiment.",
		Head:     []headCell{{Text: "layer"}, {Text: "kind"}, {Text: "parameters", Num: true}, {Text: "MACs (M)", Num: true}, {Text: "bits", Num: true}},
	}
	var params, macs int64
	for _, l := range layers {
		bits := cell{Text: "float", Sort: "32", Class: "num"}
		if l.Bits > 0 {
			bits = cell{Text: strconv.Itoa(l.Bits), Sort: strconv.Itoa(l.Bits), Class: "num"}
		}
		row := []cell{{Text: l.Name, Sort: l.Name}, {Text: l.Kind, Sort: l.Kind},
			{Text: strconv.FormatInt(l.Params, 10), Sort: strconv.FormatInt(l.Params, 10), Class: "num"},
			{Text: fmtNum(float64(l.MACs) / 1e6), Sort: strconv.FormatInt(l.MACs, 10), Class: "num"}, bits}
		for i := range row {
			row[i].Sortable = true
		}
		t.Rows = append(t.Rows, row)
		params += l.Params
		macs += l.MACs
	}
	if len(layers) > 0 {
		t.Foot = [][]cell{{{Text: fmt.Sprintf("total (%d layers)", len(layers))}, {},
			{Text: strconv.FormatInt(params, 10), Class: "num"}, {Text: fmtNum(float64(macs) / 1e6), Class: "num"}, {}}}
	}
	return t
}

// curveCharts adds the training curves: losses on one chart, the other
// series (accuracies, learning rate) on another, since their scales differ.
func curveCharts(cs *chartSet, pts []store.Point) error {
	if len(pts) == 0 {
		return nil
	}
	bySeries := map[string][]store.Point{}
	for _, p := range pts {
		bySeries[p.Series] = append(bySeries[p.Series], p)
	}
	var loss, other []string
	for _, name := range slices.Sorted(maps.Keys(bySeries)) {
		if strings.Contains(strings.ToLower(name), "loss") {
			loss = append(loss, name)
		} else {
			other = append(other, name)
		}
	}
	for _, part := range []struct {
		title string
		names []string
	}{{"Loss", loss}, {"Other curves", other}} {
		if len(part.names) == 0 {
			continue
		}
		c := charts.NewLine()
		c.SetGlobalOptions(commonOpts()...)
		c.SetGlobalOptions(plotGrid())
		c.SetGlobalOptions(
			charts.WithXAxisOpts(valueAxis("step", true)),
			charts.WithYAxisOpts(valueYAxis("value", true)),
		)
		for _, name := range part.names {
			ps := bySeries[name]
			sort.SliceStable(ps, func(i, j int) bool { return ps[i].Step < ps[j].Step })
			var items []item
			for _, p := range ps {
				items = append(items, item{Value: []float64{float64(p.Step), round(p.Value)}, Tip: tip(name, fmt.Sprintf("step %d: %s", p.Step, fmtNum(p.Value)))})
			}
			c.MultiSeries = append(c.MultiSeries, series(name, "line", items,
				func(s *charts.SingleSeries) { s.Symbol = "circle"; s.SymbolSize = 4 },
				charts.WithLineStyleOpts(opts.LineStyle{Width: 1.5})))
		}
		if err := cs.add(part.title, "", 320, c); err != nil {
			return err
		}
	}
	return nil
}

// prettyJSON indents JSON; text that is not JSON is returned as it is.
func prettyJSON(s string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, []byte(s), "", "  "); err != nil {
		return s
	}
	return buf.String()
}
