package reports

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/store"
)

// macsNote explains the unit every MACs axis and column uses.
const macsNote = "MACs are multiply-accumulates, counted analytically per layer (G = 10⁹). " +
	"The ViT literature's \"GFLOPs\" (DeiT, TinyViT, ToMe, torchvision's tables) are these GMACs; FLOPs proper are twice as many. " +
	"Sizes are MiB (2²⁰ bytes) at the stored bit widths, parameters M = 10⁶, latency milliseconds at batch 1."

type overviewBody struct {
	Suites          []suiteText // what each suite says it runs
	Headlines       []headline
	Scale           []scaleSection // timed-only groups: speed-up against the MACs' promise
	Described       table          // the experiments' own descriptions
	SuiteTable      *table
	Runs            table
	Groups          []*group
	Summary         table
	SummaryWarnings []error
	MACsNote        string
}

// headline is the overview's lead for one (data set, baseline model):
// top-1 against executed latency and against size with the Pareto
// fronts, the experiments ranked, and the findings.
type headline struct {
	Group    *group
	Charts   []chartBlock
	Ranked   table
	More     int // experiments beyond the ranked table's rows
	Findings findings
	Students []*group // groups whose models appear here as students
}

// rankedRows is how many experiments the overview's ranked table shows
// per group; the trade-off page lists them all.
const rankedRows = 15

func (s *site) overview() error {
	v := s.v
	b := overviewBody{MACsNote: macsNote, Groups: v.groups}
	var cs chartSet
	for _, g := range v.groups {
		if g.ShownWith != nil {
			continue // on its teacher's headline
		}
		if g.timedOnly() {
			first := len(cs.list)
			if err := addScaleChart(&cs, g); err != nil {
				return err
			}
			b.Scale = append(b.Scale, scaleSection{Group: g, Charts: cs.list[first:], Findings: scaleFindings(g)})
			continue
		}
		h := headline{Group: g, Findings: computeFindings(g)}
		for _, o := range v.groups {
			if o.ShownWith == g {
				h.Students = append(h.Students, o)
			}
		}
		first := len(cs.list)
		for _, a := range headlineAxes {
			pts := g.points(a)
			if len(pts) == 0 {
				continue
			}
			note := ""
			if a == axisLatency {
				note = "Whiskers are 95% intervals: top-1 (Wilson) and the median latency (benchmath). Hollow points are simulated (fake-quantized) models timed in fp32."
			}
			if err := cs.add(g.Title()+": top-1 vs "+a.label, note, 400, tradeoffChart(a, pts, paretoFront(pts))); err != nil {
				return fmt.Errorf("overview %s: %w", g.Title(), err)
			}
		}
		h.Charts = cs.list[first:]
		h.Ranked, h.More = rankedTable(g)
		b.Headlines = append(b.Headlines, h)
	}
	b.SuiteTable = suitesTable(v.runs)
	b.Suites = suiteTexts(v.runs)
	b.Described = describedTable(v)
	b.Runs = runsTable(v)
	b.Summary, b.SummaryWarnings = summaryTable(v)
	title := "vitbench report"
	if names := suiteNames(v.runs); len(names) > 0 {
		title += ": " + strings.Join(names, ", ")
	}
	return s.page(IndexPage, "overview", title, v.warnings, cs.list, b)
}

// suiteText is a suite's name and description.
type suiteText struct{ Name, Description string }

// suiteTexts are the distinct suites of the runs with the newest
// description each gives.
func suiteTexts(runs []*store.Run) []suiteText {
	var out []suiteText
	at := map[string]int{}
	for _, r := range runs {
		i, ok := at[r.SuiteName]
		if !ok {
			at[r.SuiteName] = len(out)
			out = append(out, suiteText{Name: r.SuiteName})
			i = len(out) - 1
		}
		if r.SuiteDescription != "" {
			out[i].Description = r.SuiteDescription
		}
	}
	return out
}

// describedTable lists each experiment group the suite describes, once,
// with its model, as the current results hold them.
func describedTable(v *view) table {
	t := table{Head: []headCell{{Text: "experiment"}, {Text: "model"}, {Text: "description"}}}
	seen := map[[2]string]bool{}
	for _, r := range v.current {
		e := r.exp
		k := [2]string{e.Group, e.Model}
		if e.Description == "" || seen[k] {
			continue
		}
		seen[k] = true
		t.Rows = append(t.Rows, []cell{{Text: e.Group, Href: r.page}, {Text: e.Model}, {Text: e.Description}})
	}
	return t
}

// rankedTable ranks a group's successful experiments by Pareto layer on
// top-1 against measured latency (layer 1 is the front; layer 2 the front
// of the rest; and so on), by size where nothing has a latency, and
// within a layer by cost. It returns at most rankedRows rows and how many
// were left out.
func rankedTable(g *group) (table, int) {
	a := axisLatency
	pts := g.points(a)
	if len(pts) == 0 {
		a = axisSize
		pts = g.points(a)
	}
	t := table{Empty: "No successful experiment with top-1 and a measured cost.",
		Head: []headCell{
			{Text: "rank", Num: true, Title: "Pareto layer on top-1 against " + a.noun + ": 1 is the front, 2 the front once layer 1 is removed, …"},
			{Text: "experiment"}, {Text: "family"},
			{Text: "top-1 (%) [95%]", Num: true, Title: "Wilson interval over the test images"},
			{Text: "Δ top-1 (pts) [95%]", Num: true, Title: "against the baseline on the same images: paired bootstrap interval, McNemar p; ~ marks no significant difference"},
			{Text: "latency (ms) [95%]", Num: true, Title: "median at batch 1 with benchmath's interval"},
			{Text: "speed-up [95%]", Num: true, Title: "baseline median / median at batch 1, bootstrap interval, Mann-Whitney p; ~ marks no significant difference"},
			{Text: "size (MiB)", Num: true},
			{Text: "compression", Num: true, Title: "baseline size / size"},
			{Text: "executed"},
		}}
	layers := paretoLayers(pts)
	for i, p := range layers {
		if i == rankedRows {
			return t, len(layers) - rankedRows
		}
		r := p.r
		t.Rows = append(t.Rows, []cell{
			{Text: strconv.Itoa(p.layer), Class: "num"},
			{Text: r.exp.Name, Href: r.page},
			{Text: familyText(r)},
			ciCell(r, metrics.Top1, 1),
			deltaCell(r, metrics.Top1Delta, 0, fmtSigned),
			ciCell(r, metrics.LatencyP50, 1e3),
			deltaCell(r, metrics.Speedup, 1, func(v float64) string { return fmtNum(v) + "×" }),
			ciCell(r, metrics.SizeBytes, 1.0/(1<<20)),
			func() cell {
				if v, ok := r.compression(); ok {
					return cell{Text: fmtNum(v) + "×", Class: "num"}
				}
				return cell{Text: "—", Class: "num missing"}
			}(),
			orMissing(r.exp.Executed, "—"),
		})
	}
	return t, 0
}

// deltaCell shows a metric relative to the baseline with its interval, and
// "~" where its test finds no significant difference from pivot.
func deltaCell(r *row, name string, pivot float64, format func(float64) string) cell {
	var v float64
	var ok bool
	switch name {
	case metrics.Top1Delta:
		v, ok = r.top1Delta()
	case metrics.Speedup:
		v, ok = r.speedup()
	default:
		v, ok = r.get(name)
	}
	if !ok {
		return cell{Text: "—", Class: "num missing", Title: "not recorded"}
	}
	if r.fam == familyBaseline && r.exp.Baseline == "" {
		return cell{Text: "baseline", Class: "num missing"}
	}
	text := format(v)
	if lo, hi, ok := r.interval(name); ok {
		text += " " + ciText(lo, hi, 1)
	}
	c := cell{Text: text, Class: "num"}
	if p, ok := r.pValue(name); ok {
		c.Title = pText(p)
	}
	switch sig, tested := r.significant(name, pivot); {
	case tested && !sig:
		c.Text += " ~"
		c.Title = strings.TrimSpace("no significant difference " + c.Title)
	case tested:
		if cls := deltaClass(name, v, pivot); cls != "" {
			c.Class += " " + cls
		}
	}
	return c
}

func suiteNames(runs []*store.Run) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range runs {
		if r.SuiteName != "" && !seen[r.SuiteName] {
			seen[r.SuiteName] = true
			out = append(out, r.SuiteName)
		}
	}
	return out
}

func suitesTable(runs []*store.Run) *table {
	if len(runs) == 0 {
		return nil
	}
	type suite struct {
		name, path, hash string
		runs             int
	}
	var list []*suite
	at := map[[3]string]*suite{}
	for _, r := range runs {
		k := [3]string{r.SuiteName, r.SuitePath, r.SuiteHash}
		if at[k] == nil {
			at[k] = &suite{name: r.SuiteName, path: r.SuitePath, hash: r.SuiteHash}
			list = append(list, at[k])
		}
		at[k].runs++
	}
	t := &table{Head: []headCell{{Text: "suite"}, {Text: "file"}, {Text: "resolved hash", Title: "hash of the resolved suite: runs with the same hash ran the same experiments"}, {Text: "runs", Num: true}}}
	for _, x := range list {
		t.Rows = append(t.Rows, []cell{orMissing(x.name, "unnamed"), orMissing(x.path, "not recorded"), orMissing(shortHash(x.hash), "not recorded"), {Text: strconv.Itoa(x.runs), Class: "num"}})
	}
	return t
}

func runsTable(v *view) table {
	t := table{
		Empty: "No runs recorded.",
		Head: []headCell{{Text: "run"}, {Text: "suite"}, {Text: "machine"}, {Text: "device"}, {Text: "threads", Num: true},
			{Text: "engine", Title: "how a timed CPU pass used its threads: split (a share per thread) or eager (libtorch's intra-op pool)"},
			{Text: "started"}, {Text: "duration"}, {Text: "status"}, {Text: "experiments", Num: true}, {Text: "failed", Num: true}, {Text: "commit"}},
	}
	count := map[int64][2]int{}
	for _, r := range v.rows {
		c := count[r.exp.RunID]
		c[0]++
		if r.exp.Status == store.StatusFailed || r.exp.Status == store.StatusInterrupted {
			c[1]++
		}
		count[r.exp.RunID] = c
	}
	for _, r := range v.runs {
		dur := cell{Text: "not finished", Class: "missing"}
		if !r.Ended.IsZero() && !r.Started.IsZero() {
			dur = cell{Text: r.Ended.Sub(r.Started).Round(time.Second).String()}
		}
		status := cell{Text: r.Status}
		if r.Status != store.StatusOK {
			status.Class = "failed"
		}
		c := count[r.ID]
		failed := cell{Text: strconv.Itoa(c[1]), Class: "num"}
		if c[1] > 0 {
			failed.Class = "num bad"
		}
		t.Rows = append(t.Rows, []cell{
			{Text: fmt.Sprintf("#%d", r.ID), Title: r.UUID},
			orMissing(r.SuiteName, "unnamed"),
			{Text: machineLabel(r), Title: r.Machine.CPU, Href: "machines.html"},
			orMissing(r.Device, "not recorded"),
			{Text: strconv.Itoa(r.Threads), Class: "num"},
			{Text: r.TimedEngine()},
			{Text: fmtTime(r.Started)},
			dur,
			status,
			{Text: strconv.Itoa(c[0]), Class: "num"},
			failed,
			orMissing(shortHash(r.GitCommit), "not recorded"),
		})
	}
	return t
}

// summaryColumn is one numeric column of the summary table.
type summaryColumn struct {
	head   headCell
	metric string // for display unit and colouring
	value  func(r *row) (float64, bool)
	delta  float64 // the no-change value when the column is a change (0 or 1); NaN when it is not
	// ratio gives the per-row ratio vs the baseline for the geomean footer;
	// nil when the column has none.
	ratio func(r *row) (float64, bool)
}

func summaryColumns() []summaryColumn {
	nan := math.NaN()
	get := func(name string) func(r *row) (float64, bool) {
		return func(r *row) (float64, bool) { return r.get(name) }
	}
	ratio := func(name string) func(r *row) (float64, bool) {
		return func(r *row) (float64, bool) { return r.ratio(name) }
	}
	return []summaryColumn{
		{head: headCell{Text: "top-1 (%) [95%]", Num: true, Title: "Wilson interval over the test images"}, metric: metrics.Top1, value: get(metrics.Top1), delta: nan},
		{head: headCell{Text: "Δ top-1 (pts) [95%]", Num: true, Title: "percentage points vs the experiment's baseline, paired on the same images; ~ marks no significant difference"}, metric: metrics.Top1Delta, value: (*row).top1Delta, delta: 0},
		{head: headCell{Text: "params (M)", Num: true, Title: "parameters as stored and executed (pruned zeros included)"}, metric: metrics.Params, value: axisParams.value, delta: nan, ratio: (*row).paramsRatio},
		{head: headCell{Text: "size (MiB)", Num: true}, metric: metrics.SizeBytes, value: get(metrics.SizeBytes), delta: nan, ratio: ratio(metrics.SizeBytes)},
		{head: headCell{Text: "MACs (G)", Num: true, Title: "executed (dense) MACs; the literature's GFLOPs are GMACs"}, metric: metrics.MACs, value: axisMACs.value, delta: nan, ratio: (*row).macsRatio},
		{head: headCell{Text: "p50 latency (ms) [95%]", Num: true, Title: "median at batch 1 with benchmath's interval"}, metric: metrics.LatencyP50, value: get(metrics.LatencyP50), delta: nan, ratio: ratio(metrics.LatencyP50)},
		{head: headCell{Text: "throughput (img/s) [95%]", Num: true}, metric: metrics.Throughput, value: get(metrics.Throughput), delta: nan, ratio: ratio(metrics.Throughput)},
		{head: headCell{Text: "speed-up [95%]", Num: true, Title: "baseline p50 / p50 at batch 1; ~ marks no significant difference (Mann-Whitney)"}, metric: metrics.Speedup, value: (*row).speedup, delta: 1},
	}
}

// summaryTable is one row per current experiment, with a footer of
// geometric means of per-row ratios against each row's baseline.
func summaryTable(v *view) (table, []error) {
	cols := summaryColumns()
	multiRun := len(v.runs) > 1
	t := table{ID: "summary", Sortable: true, Empty: "No experiments recorded."}
	t.Head = append(t.Head, headCell{Text: "experiment"})
	if multiRun {
		t.Head = append(t.Head, headCell{Text: "run"})
	}
	t.Head = append(t.Head, headCell{Text: "data set"}, headCell{Text: "family"}, headCell{Text: "pipeline"}, headCell{Text: "status"})
	for _, c := range cols {
		t.Head = append(t.Head, c.head)
	}
	t.Head = append(t.Head, headCell{Text: "executed", Title: "how latency was executed: a precision, or simulated (fake-quantized in fp32)"})

	for _, r := range v.current {
		cells := []cell{{Text: r.exp.Name, Href: r.page, Sort: r.exp.Name}}
		if multiRun {
			cells = append(cells, cell{Text: runLabel(r.run), Sort: strconv.FormatInt(r.exp.RunID, 10)})
		}
		status := cell{Text: r.exp.Status}
		if !r.ok() {
			status.Class = "failed"
			status.Title = firstLine(r.exp.Error)
		}
		cells = append(cells, orMissing(r.exp.Dataset, "—"), cell{Text: familyText(r)}, cell{Text: pipelineText(r)}, status)
		for _, c := range cols {
			cells = append(cells, numCell(c, r))
		}
		exec := orMissing(r.exp.Executed, "—")
		switch {
		case r.exp.ExecDetail != "":
			exec.Title = r.exp.ExecDetail
		case r.simulated():
			exec.Title = "fake-quantized: latency is fp32 execution, not low-precision"
		}
		cells = append(cells, exec)
		t.Rows = append(t.Rows, cells)
	}
	for i := range t.Rows {
		for j := range t.Rows[i] {
			t.Rows[i][j].Sortable = true
		}
	}

	// Footer: geomean of per-row ratios vs baseline over compressed rows.
	var compressed []*row
	var names []string
	for _, r := range v.current {
		if r.fam != familyBaseline && r.ok() {
			compressed = append(compressed, r)
			names = append(names, r.exp.Name)
		}
	}
	if len(compressed) == 0 {
		return t, nil
	}
	var warnings []error
	lead := 4
	if multiRun {
		lead = 5
	}
	foot := []cell{{Text: fmt.Sprintf("geomean vs baseline (%d compressed)", len(compressed)), Title: "geometric mean of per-row ratios against each row's baseline, benchstat style"}}
	for i := 1; i < lead+1; i++ {
		foot = append(foot, cell{})
	}
	for _, c := range cols {
		switch {
		case c.metric == metrics.Top1Delta:
			var sum float64
			n := 0
			for _, r := range compressed {
				if d, ok := r.top1Delta(); ok {
					sum += d
					n++
				}
			}
			if n == 0 {
				foot = append(foot, cell{Text: "—", Class: "num missing"})
				continue
			}
			mean := sum / float64(n)
			foot = append(foot, cell{Text: "mean " + fmtSigned(mean), Class: strings.TrimSpace("num " + deltaClass(metrics.Top1Delta, mean, 0)), Title: fmt.Sprintf("arithmetic mean over %d rows", n)})
		case c.metric == metrics.Speedup:
			g := geomeanOf("speed-up", names, func(i int) (float64, bool) { return compressed[i].speedup() })
			warnings = append(warnings, g.Warnings...)
			foot = append(foot, ratioCell(metrics.Speedup, g, 1))
		case c.ratio != nil:
			g := geomeanOf(c.head.Text, names, func(i int) (float64, bool) { return c.ratio(compressed[i]) })
			warnings = append(warnings, g.Warnings...)
			foot = append(foot, ratioCell(c.metric, g, 1))
		default:
			foot = append(foot, cell{})
		}
	}
	foot = append(foot, cell{})
	t.Foot = [][]cell{foot}
	return t, warnings
}

// ratioCell shows a geomean ratio, coloured when the metric's direction
// is known.
func ratioCell(metric string, g geomean, pivot float64) cell {
	if g.N == 0 {
		return cell{Text: "—", Class: "num missing", Title: "no row has a ratio"}
	}
	c := cell{Text: "×" + fmtNum(g.Value), Class: "num", Title: fmt.Sprintf("over %d of %d rows", g.N, g.Total)}
	if cls := deltaClass(metric, g.Value, pivot); cls != "" {
		c.Class += " " + cls
	}
	return c
}

// numCell formats one numeric summary cell.
func numCell(c summaryColumn, r *row) cell {
	v, ok := c.value(r)
	if !ok {
		title := "not recorded"
		if !r.ok() {
			title = "experiment " + r.exp.Status
		}
		return cell{Text: "—", Class: "num missing", Title: title}
	}
	var text string
	switch c.metric {
	case metrics.Top1Delta:
		out := deltaCell(r, c.metric, 0, fmtSigned)
		out.Sort = strconv.FormatFloat(v, 'g', -1, 64)
		return out
	case metrics.Speedup:
		out := deltaCell(r, c.metric, 1, func(v float64) string { return fmtNum(v) + "×" })
		out.Sort = strconv.FormatFloat(v, 'g', -1, 64)
		return out
	default:
		d := displayOf(c.metric, "")
		text = fmtNum(v * d.scale)
		if lo, hi, ok := r.interval(c.metric); ok {
			text += " " + ciText(lo, hi, d.scale)
		}
	}
	out := cell{Text: text, Sort: strconv.FormatFloat(v, 'g', -1, 64), Class: "num"}
	if !math.IsNaN(c.delta) { // a change: colour by direction
		if cls := deltaClass(c.metric, v, c.delta); cls != "" {
			out.Class += " " + cls
		}
	}
	return out
}

func orMissing(s, missing string) cell {
	if s == "" {
		return cell{Text: missing, Class: "missing"}
	}
	return cell{Text: s}
}

func familyText(r *row) string {
	if r.fam == familyCombination {
		return "combination: " + r.set
	}
	if r.fam == familyOther {
		return r.set
	}
	return r.fam
}

func pipelineText(r *row) string {
	if r.exp.Pipeline != "" {
		return r.exp.Pipeline
	}
	if len(r.exp.Families) > 0 {
		return strings.Join(r.exp.Families, " → ")
	}
	return "(baseline)"
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// sortedParamKeys lists an experiment's swept parameters.
func sortedParamKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
