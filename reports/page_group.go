package reports

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"

	"github.com/vitbench/vitbench/harness/metrics"
)

type tradeoffBody struct {
	Intro    string
	Notes    []error
	Charts   []chartBlock
	MACsNote string
	Findings findings
	Table    table
}

// tradeoffs writes one page per (data set, baseline model): top-1 against
// each cost axis, coloured by family, with the Pareto front.
func (s *site) tradeoffs() error {
	for _, g := range s.v.groups {
		if g.timedOnly() {
			if err := s.timedTradeoffs(g); err != nil {
				return err
			}
			continue
		}
		var cs chartSet
		b := tradeoffBody{MACsNote: macsNote, Findings: computeFindings(g)}
		b.Intro = fmt.Sprintf("%d experiments on %s. Each point is an experiment's latest successful result; the dashed line is the Pareto front (no other point is both at most as costly and at least as accurate). Hover a point for its pipeline.", len(g.Rows), g.Title())
		if d := g.description(); d != "" {
			b.Intro = g.Model + ": " + d + ". " + b.Intro
		}
		if g.ShownWith != nil {
			b.Intro += fmt.Sprintf(" These models are also compared on %s's view, where they are students of its baseline.", g.ShownWith.Title())
		}
		if g.Base != nil {
			top1, _ := g.Base.get(metrics.Top1)
			b.Intro += fmt.Sprintf(" Baseline: %s, %s top-1.", quote(g.Base.exp.Name), fmtMetric(metrics.Top1, top1, ""))
		}
		onFront := map[*row][]string{}
		for _, a := range costAxes {
			pts := g.points(a)
			front := paretoFront(pts)
			for _, p := range front {
				onFront[p.r] = append(onFront[p.r], a.noun)
			}
			if len(pts) == 0 {
				b.Notes = append(b.Notes, fmt.Errorf("top-1 vs %s: no successful experiment has both values, so no chart", a.noun))
				continue
			}
			if missing := notPlotted(g, a, pts); len(missing) > 0 {
				b.Notes = append(b.Notes, fmt.Errorf("top-1 vs %s: not plotted: %s", a.noun, nameList(missing, 8)))
			}
			c := tradeoffChart(a, pts, front)
			note := ""
			if a == axisLatency {
				note = "Hollow points are simulated (fake-quantized) models: their latency is fp32 execution, not low-precision latency."
				if ms := machinesOf(pts); len(ms) > 1 {
					b.Notes = append(b.Notes, fmt.Errorf("latency points come from %d machines (%s): compare them on the machines page", len(ms), strings.Join(ms, ", ")))
				} else if len(ms) == 1 {
					note += " Measured on " + ms[0] + "."
				}
			}
			if a == axisMACs {
				note = "Executed MACs: dense, as the kernels run them (no sparse kernel skips a pruned model's zeros). GFLOPs in the literature are these GMACs."
			}
			if err := cs.add("top-1 vs "+a.label, note, 440, c); err != nil {
				return fmt.Errorf("trade-off %s: %w", g.Title(), err)
			}
		}
		if pts := axisPoints(g.Rows, axisMACsEffective); hasSparse(pts) {
			c := tradeoffChart(axisMACsEffective, pts, nil)
			note := "What unstructured sparsity would save if a sparse kernel skipped the zero weights. Nothing here executes that way, so this axis has no Pareto front and no budget; the executed MACs are on the chart above."
			if err := cs.add("top-1 vs "+axisMACsEffective.label, note, 440, c); err != nil {
				return fmt.Errorf("trade-off %s: %w", g.Title(), err)
			}
		}
		b.Charts = cs.list
		b.Table = pointsTable(g, onFront)
		if err := s.page(g.Page, "tradeoff", "Trade-offs: "+g.Title(), nil, cs.list, b); err != nil {
			return err
		}
	}
	return nil
}

// timedTradeoffs writes the trade-off page of a timed-only group: no
// accuracy, so its speed against the MACs' promise (as on ScalePage).
func (s *site) timedTradeoffs(g *group) error {
	var cs chartSet
	if err := addScaleChart(&cs, g); err != nil {
		return err
	}
	b := tradeoffBody{MACsNote: macsNote, Charts: cs.list, Table: scaleTable(s.v, g),
		Findings: findings{Group: g, Sentences: scaleFindings(g)},
		Intro:    fmt.Sprintf("%d experiments on %s, timed only: the model keeps its seeded initialisation and is never evaluated, so this page has costs and measured speed, no accuracy (the deployment-scale page compares every timed-only model).", len(g.Rows), g.Title())}
	return s.page(g.Page, "tradeoff", "Trade-offs: "+g.Title(), nil, cs.list, b)
}

// hasSparse reports whether a point's effective MACs are below its
// executed MACs.
func hasSparse(pts []point) bool {
	for _, p := range pts {
		if dense, ok := axisMACs.value(p.r); ok && p.x < dense {
			return true
		}
	}
	return false
}

// notPlotted names the rows of a group that are not among pts and why.
func notPlotted(g *group, a *costAxis, pts []point) []string {
	in := map[*row]bool{}
	for _, p := range pts {
		in[p.r] = true
	}
	var out []string
	for _, r := range g.Rows {
		if in[r] {
			continue
		}
		why := "missing metric"
		switch _, hasLat := r.get(metrics.LatencyP50); {
		case !r.ok():
			why = r.exp.Status
		case a == axisLatency && hasLat && g.Base != nil:
			why = "measured on " + runLabel(r.run) + ", not the baseline's machine " + runLabel(g.Base.run)
		}
		out = append(out, fmt.Sprintf("%s (%s)", r.exp.Name, why))
	}
	return out
}

func machinesOf(pts []point) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range pts {
		m := machineLabel(p.r.run)
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out
}

// pointTip is the tooltip of an experiment on a cost axis.
func pointTip(r *row, a *costAxis, x float64) string {
	top1, _ := r.get(metrics.Top1)
	acc := "top-1: " + fmtMetric(metrics.Top1, top1, "")
	if d, ok := r.top1Delta(); ok && r.fam != familyBaseline {
		acc += fmt.Sprintf(" (%s pts vs baseline)", fmtSigned(d))
	}
	lines := []string{
		"family: " + familyText(r),
		"pipeline: " + pipelineText(r),
		acc,
		a.noun + ": " + a.format(x),
	}
	if sp, ok := r.speedup(); ok && a == axisLatency {
		lines = append(lines, "speed-up: "+fmtNum(sp)+"×")
	}
	if r.exp.Executed != "" {
		lines = append(lines, "executed: "+r.exp.Executed)
	}
	lines = append(lines, "run: "+runLabel(r.run))
	return tip(r.exp.Name, lines...)
}

func tradeoffChart(a *costAxis, pts []point, front []point) *charts.Scatter {
	c := charts.NewScatter()
	c.SetGlobalOptions(commonOpts()...)
	c.SetGlobalOptions(plotGrid())
	c.SetGlobalOptions(
		charts.WithXAxisOpts(valueAxis(a.label, true)),
		charts.WithYAxisOpts(valueYAxis("top-1 (%)", true)),
	)
	if w := whiskerItems(a, pts); len(w) > 0 {
		c.MultiSeries = append(c.MultiSeries, whiskerSeries(w))
	}
	byFam := map[string][]item{}
	for _, p := range pts {
		it := item{Value: []float64{round(p.x * a.scale), round(p.y)}, Tip: pointTip(p.r, a, p.x)}
		if a == axisLatency && p.r.simulated() {
			it.ItemStyle = &opts.ItemStyle{Color: "#ffffff", BorderColor: familyStyle[p.r.fam].Color, BorderWidth: 2}
		}
		byFam[p.r.fam] = append(byFam[p.r.fam], it)
	}
	for _, fam := range familyOrder {
		if items := byFam[fam]; len(items) > 0 {
			c.MultiSeries = append(c.MultiSeries, series(fam, "scatter", items, familySeriesOpts(fam)...))
		}
	}
	var line []item
	for _, p := range front {
		line = append(line, item{Value: []float64{round(p.x * a.scale), round(p.y)}, Tip: "Pareto front<br>" + pointTip(p.r, a, p.x)})
	}
	if len(line) > 0 {
		c.MultiSeries = append(c.MultiSeries, series("Pareto front", "line", line,
			charts.WithLineStyleOpts(opts.LineStyle{Color: "#111827", Width: 1.5, Type: "dashed"}),
			charts.WithItemStyleOpts(opts.ItemStyle{Color: "#111827"}),
			func(s *charts.SingleSeries) { s.Symbol = "emptyCircle"; s.SymbolSize = 4; s.Step = "end" },
		))
	}
	return c
}

// whiskerItems are the 95% intervals of the points that have one, on
// top-1 and on the axis's cost, in the chart's display units.
func whiskerItems(a *costAxis, pts []point) []item {
	var out []item
	for _, p := range pts {
		x, y := p.x*a.scale, p.y
		xl, xh, yl, yh := x, x, y, y
		var lines []string
		if lo, hi, ok := p.r.interval(metrics.Top1); ok {
			yl, yh = lo, hi
			lines = append(lines, "top-1 95% interval: "+ciText(lo, hi, 1))
		}
		if lo, hi, ok := p.r.interval(a.names[0]); ok {
			xl, xh = lo*a.scale, hi*a.scale
			lines = append(lines, a.noun+" 95% interval: "+ciText(lo, hi, a.scale)+" "+a.unit)
		}
		if len(lines) == 0 {
			continue
		}
		out = append(out, item{Value: []float64{round(x), round(y), round(xl), round(xh), round(yl), round(yh)}, Tip: tip(p.r.exp.Name, lines...)})
	}
	return out
}

// pointsTable lists a group's experiments with every axis and the fronts
// they are on.
func pointsTable(g *group, onFront map[*row][]string) table {
	t := table{Sortable: true, Empty: "No experiments."}
	t.Head = []headCell{{Text: "experiment"}, {Text: "family"}, {Text: "top-1 (%) [95% interval]", Num: true}}
	for _, a := range costAxes {
		h := headCell{Text: a.label, Num: true}
		if a == axisLatency {
			h.Text += " [95% interval]"
		}
		t.Head = append(t.Head, h)
	}
	t.Head = append(t.Head, headCell{Text: "on the Pareto front for"})
	for _, r := range g.Rows {
		cells := []cell{{Text: r.exp.Name, Href: r.page, Sort: r.exp.Name}, {Text: familyText(r)}}
		cells = append(cells, ciCell(r, metrics.Top1, 1))
		for _, a := range costAxes {
			cells = append(cells, ciCell(r, a.names[0], a.scale))
		}
		cells = append(cells, cell{Text: strings.Join(onFront[r], ", ")})
		for i := range cells {
			cells[i].Sortable = true
		}
		t.Rows = append(t.Rows, cells)
	}
	return t
}

type sweepSection struct {
	Title  string
	Note   string
	Charts []chartBlock
}

type sweepsBody struct {
	Sections []sweepSection
}

// sweeps writes sweeps.html: per swept parameter of each experiment group,
// top-1 and speed-up against the parameter's values.
func (s *site) sweeps() error {
	var cs chartSet
	var b sweepsBody
	for _, g := range s.v.groups {
		byGroup := map[string][]*row{}
		var order []string
		for _, r := range g.Rows {
			if len(r.exp.Params) == 0 || r.fam == familyBaseline {
				continue
			}
			k := r.exp.Group
			if k == "" {
				k = r.set
			}
			if byGroup[k] == nil {
				order = append(order, k)
			}
			byGroup[k] = append(byGroup[k], r)
		}
		for _, sg := range order {
			rows := byGroup[sg]
			sec := sweepSection{Title: g.Title() + " — " + sg + " (" + familiesOf(rows) + ")"}
			first := len(cs.list)
			var failed []string
			for _, r := range rows {
				if !r.ok() {
					failed = append(failed, r.exp.Name)
				}
			}
			if len(failed) > 0 {
				sec.Note = fmt.Sprintf("Not plotted (did not succeed): %s.", nameList(failed, 8))
			}
			for _, keys := range sweptKeys(rows) {
				for _, m := range []struct {
					title, axis string
					value       func(*row) (float64, bool)
					ref         float64
					hasRef      bool
				}{
					{"top-1", "top-1 (%)", func(r *row) (float64, bool) { return r.get(metrics.Top1) }, 0, false},
					{"speed-up", "measured speed-up, batch 1 (×)", (*row).speedup, 1, true},
				} {
					ref, hasRef := m.ref, m.hasRef
					if m.title == "top-1" && g.Base != nil {
						ref, hasRef = mustGet(g.Base, metrics.Top1), true
					}
					c, n := sweepChart(rows, sg, keys, m.axis, m.value, ref, hasRef)
					if n == 0 {
						continue
					}
					title := fmt.Sprintf("%s: %s vs %s", sg, m.title, strings.Join(keys, " = "))
					if err := cs.add(title, "", 360, c); err != nil {
						return fmt.Errorf("sweeps %s: %w", sg, err)
					}
				}
			}
			sec.Charts = cs.list[first:]
			if len(sec.Charts) == 0 {
				if sec.Note != "" {
					sec.Note += " "
				}
				sec.Note += "No swept parameter has two or more values with results."
			}
			b.Sections = append(b.Sections, sec)
		}
	}
	return s.page("sweeps.html", "sweeps", "Per-technique sweeps", nil, cs.list, b)
}

func mustGet(r *row, name string) float64 {
	v, _ := r.get(name)
	return v
}

func familiesOf(rows []*row) string {
	seen := map[string]bool{}
	var out []string
	for _, r := range rows {
		t := familyText(r)
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return strings.Join(out, ", ")
}

// sweptKeys returns the parameters with two or more distinct values,
// classed so that parameters that vary together (weight_bits and
// act_bits of W8A8, W6A6, W4A4) make one sweep: each class lists its keys
// sorted, the first one plotted on x.
func sweptKeys(rows []*row) [][]string {
	vals := map[string]map[string]bool{}
	for _, r := range rows {
		for k, v := range r.exp.Params {
			if vals[k] == nil {
				vals[k] = map[string]bool{}
			}
			vals[k][v] = true
		}
	}
	var swept []string
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		if len(vals[k]) >= 2 {
			swept = append(swept, k)
		}
	}
	var classes [][]string
	placed := map[string]bool{}
	for i, a := range swept {
		if placed[a] {
			continue
		}
		class := []string{a}
		for _, b := range swept[i+1:] {
			if !placed[b] && covary(rows, a, b) {
				class = append(class, b)
				placed[b] = true
			}
		}
		classes = append(classes, class)
	}
	return classes
}

// covary reports whether two parameters determine each other in every row
// that has both.
func covary(rows []*row, a, b string) bool {
	ab, ba := map[string]string{}, map[string]string{}
	for _, r := range rows {
		x, ok1 := r.exp.Params[a]
		y, ok2 := r.exp.Params[b]
		if !ok1 || !ok2 {
			continue
		}
		if v, ok := ab[x]; ok && v != y {
			return false
		}
		if v, ok := ba[y]; ok && v != x {
			return false
		}
		ab[x], ba[y] = y, x
	}
	return len(ab) > 0
}

// sweepChart draws value against the first of keys, one line per setting
// of the parameters outside keys. It returns the number of points drawn.
func sweepChart(rows []*row, name string, keys []string, yName string, value func(*row) (float64, bool), ref float64, hasRef bool) (*charts.Line, int) {
	type pt struct {
		x   string
		xf  float64
		y   float64
		tip string
	}
	key := keys[0]
	inClass := map[string]bool{}
	for _, k := range keys {
		inClass[k] = true
	}
	numeric := true
	bySeries := map[string][]pt{}
	var order []string
	for _, r := range rows {
		xv, ok := r.exp.Params[key]
		if !ok || !r.ok() {
			continue
		}
		y, ok := value(r)
		if !ok {
			continue
		}
		xf, err := strconv.ParseFloat(strings.TrimSpace(xv), 64)
		if err != nil {
			numeric = false
		}
		var others []string
		for _, k := range sortedParamKeys(r.exp.Params) {
			if !inClass[k] {
				others = append(others, k+"="+r.exp.Params[k])
			}
		}
		sname := strings.Join(others, ", ")
		if sname == "" {
			sname = name
		}
		if _, ok := bySeries[sname]; !ok {
			order = append(order, sname)
		}
		var xs []string
		for _, k := range keys {
			xs = append(xs, k+" = "+r.exp.Params[k])
		}
		bySeries[sname] = append(bySeries[sname], pt{x: xv, xf: xf, y: y, tip: tip(r.exp.Name,
			"pipeline: "+pipelineText(r), strings.Join(xs, ", "), yName+": "+fmtNum(y))})
	}
	c := charts.NewLine()
	c.SetGlobalOptions(commonOpts()...)
	c.SetGlobalOptions(plotGrid())
	c.SetGlobalOptions(charts.WithYAxisOpts(valueYAxis(yName, true)))
	axisName := strings.Join(keys, " = ")
	n := 0
	if numeric {
		c.SetGlobalOptions(charts.WithXAxisOpts(valueAxis(axisName, true)))
	} else {
		var cats []string
		seen := map[string]bool{}
		for _, sname := range order {
			for _, p := range bySeries[sname] {
				if !seen[p.x] {
					seen[p.x] = true
					cats = append(cats, p.x)
				}
			}
		}
		sort.Strings(cats)
		c.SetGlobalOptions(charts.WithXAxisOpts(opts.XAxis{Type: "category", Name: axisName, NameLocation: "middle", NameGap: 30}))
		c.SetXAxis(cats)
	}
	for i, sname := range order {
		pts := bySeries[sname]
		sort.SliceStable(pts, func(i, j int) bool {
			if numeric {
				return pts[i].xf < pts[j].xf
			}
			return pts[i].x < pts[j].x
		})
		var items []item
		for _, p := range pts {
			if numeric {
				items = append(items, item{Value: []float64{p.xf, round(p.y)}, Tip: p.tip})
			} else {
				items = append(items, item{Value: []interface{}{p.x, round(p.y)}, Tip: p.tip})
			}
			n++
		}
		sopts := []charts.SeriesOpts{func(s *charts.SingleSeries) { s.Symbol = "circle"; s.SymbolSize = 8 }}
		if i == 0 && hasRef {
			sopts = append(sopts,
				charts.WithMarkLineNameYAxisItemOpts(opts.MarkLineNameYAxisItem{Name: "baseline", YAxis: round(ref)}),
				charts.WithMarkLineStyleOpts(opts.MarkLineStyle{Symbol: []string{"none", "none"}, LineStyle: &opts.LineStyle{Color: "#6b7280", Type: "dashed"},
					Label: &opts.Label{Show: opts.Bool(true), Formatter: "baseline", Position: "insideEndTop", Color: "#6b7280"}}),
			)
		}
		c.MultiSeries = append(c.MultiSeries, series(sname, "line", items, sopts...))
	}
	return c, n
}

type combinationsBody struct {
	Charts []chartBlock
}

// combinations writes combinations.html: per group, a heatmap of every
// pipeline against accuracy change, speed-up, MACs ratio and compression,
// and the same for the best of each family combination.
func (s *site) combinations() error {
	var cs chartSet
	for _, g := range s.v.groups {
		var rows []*row
		for _, r := range g.Rows {
			if r.fam != familyBaseline {
				rows = append(rows, r)
			}
		}
		if len(rows) == 0 {
			continue
		}
		sort.SliceStable(rows, func(i, j int) bool {
			a, b := familyRank(rows[i].fam), familyRank(rows[j].fam)
			if a != b {
				return a < b
			}
			if rows[i].set != rows[j].set {
				return rows[i].set < rows[j].set
			}
			return rows[i].exp.Name < rows[j].exp.Name
		})
		var labels []string
		var tips []string
		for _, r := range rows {
			labels = append(labels, r.exp.Name)
			tips = append(tips, "family: "+familyText(r)+"; pipeline: "+pipelineText(r))
		}
		get := func(i int, m combMetric) (float64, bool) { return m.value(rows[i]) }
		c := combinationHeatmap(labels, tips, get)
		note := "Rows: every compressed experiment (latest result); failed ones have empty cells."
		if err := cs.add(g.Title()+": pipelines", note, 100+26*len(rows), c); err != nil {
			return fmt.Errorf("combinations %s: %w", g.Title(), err)
		}

		// Best of each family set.
		bySet := map[string][]*row{}
		var sets []string
		for _, r := range rows {
			if bySet[r.set] == nil {
				sets = append(sets, r.set)
			}
			bySet[r.set] = append(bySet[r.set], r)
		}
		var setTips []string
		for _, st := range sets {
			setTips = append(setTips, fmt.Sprintf("%d experiments", len(bySet[st])))
		}
		best := func(i int, m combMetric) (float64, bool) {
			var v float64
			found := false
			for _, r := range bySet[sets[i]] {
				x, ok := m.value(r)
				if !ok || !r.ok() {
					continue
				}
				if !found || (m.better > 0 && x > v) || (m.better < 0 && x < v) {
					v, found = x, true
				}
			}
			return v, found
		}
		c2 := combinationHeatmap(sets, setTips, best)
		if err := cs.add(g.Title()+": best of each technique combination", "Each cell is the best value of that column among the experiments with exactly that set of families; columns may come from different experiments.", 100+26*len(sets), c2); err != nil {
			return fmt.Errorf("combinations %s: %w", g.Title(), err)
		}
	}
	return s.page("combinations.html", "combinations", "Combination matrix", nil, cs.list, combinationsBody{Charts: cs.list})
}

func familyRank(f string) int {
	for i, x := range familyOrder {
		if x == f {
			return i
		}
	}
	return len(familyOrder)
}

// combMetric is a column of the combination matrix.
type combMetric struct {
	name   string
	metric string
	better int
	value  func(*row) (float64, bool)
	format func(float64) string
}

var combMetrics = []combMetric{
	{"Δ top-1 (pts)", metrics.Top1Delta, +1, (*row).top1Delta, fmtSigned},
	{"speed-up (×)", metrics.Speedup, +1, (*row).speedup, func(v float64) string { return fmtNum(v) + "×" }},
	{"MACs ratio (×)", metrics.MACsRatio, -1, (*row).macsRatio, func(v float64) string { return fmtNum(v) + "×" }},
	{"compression (×)", metrics.CompressionRatio, +1, (*row).compression, func(v float64) string { return fmtNum(v) + "×" }},
}

// combinationHeatmap draws rows × combMetrics, each cell coloured by its
// rank within its column (0 worst, 1 best) and labelled with its value.
func combinationHeatmap(labels, rowTips []string, get func(i int, m combMetric) (float64, bool)) *charts.HeatMap {
	c := charts.NewHeatMap()
	c.SetGlobalOptions(commonOpts()...)
	var cols []string
	for _, m := range combMetrics {
		cols = append(cols, m.name)
	}
	c.SetGlobalOptions(
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(false)}),
		charts.WithXAxisOpts(opts.XAxis{Type: "category", Data: cols, Position: "top", SplitArea: &opts.SplitArea{Show: opts.Bool(true)}}),
		charts.WithYAxisOpts(opts.YAxis{Type: "category", Data: labels, Inverse: opts.Bool(true), SplitArea: &opts.SplitArea{Show: opts.Bool(true)}}),
		charts.WithVisualMapOpts(opts.VisualMap{
			Type: "continuous", Min: 0, Max: 1, Dimension: "2", Show: opts.Bool(false),
			InRange: &opts.VisualMapInRange{Color: []string{"#ef4444", "#fde68a", "#22c55e"}},
		}),
		withGrid(opts.Grid{Left: "16", Right: "24", Top: "40", Bottom: "16", ContainLabel: opts.Bool(true)}),
	)
	var data []item
	for j, m := range combMetrics {
		lo, hi := math.Inf(1), math.Inf(-1)
		for i := range labels {
			if v, ok := get(i, m); ok {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
		for i := range labels {
			v, ok := get(i, m)
			if !ok {
				continue
			}
			score := 0.5
			if hi > lo {
				score = (v - lo) / (hi - lo)
				if m.better < 0 {
					score = 1 - score
				}
			}
			data = append(data, item{
				Value: []interface{}{j, i, round(score)},
				Label: m.format(v),
				Tip:   tip(labels[i], rowTips[i], m.name+": "+m.format(v)),
			})
		}
	}
	c.MultiSeries = append(c.MultiSeries, series("matrix", "heatmap", data,
		charts.WithLabelOpts(opts.Label{Show: opts.Bool(true), Formatter: string(jsFunc("label"))}),
	))
	return c
}

// round keeps charts' JSON short: six significant digits.
func round(v float64) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 6, 64), 64)
	return f
}
