package reports

import (
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/store"
)

// Technique families as the charts colour them. The four technique
// families are the stage names the runner stores in Experiment.Families;
// the others are assigned here.
const (
	familyBaseline    = "baseline"    // no compression stage
	familyQuantize    = "quantize"    // post-training or quantization-aware
	familyLowRank     = "lowrank"     // truncated SVD of linear layers
	familyDistill     = "distill"     // knowledge distillation
	familyPrune       = "prune"       // unstructured, heads, neurons, tokens
	familyCombination = "combination" // a pipeline with several families
	familyOther       = "other"       // a family this package does not know
)

// familyOrder is the legend order.
var familyOrder = []string{familyBaseline, familyQuantize, familyLowRank, familyDistill, familyStudent, familyPrune, familyCombination, familyOther}

var familyStyle = map[string]struct {
	Color  string
	Symbol string
}{
	familyBaseline:    {"#222222", "pin"},
	familyQuantize:    {"#5470c6", "circle"},
	familyLowRank:     {"#3ba272", "circle"},
	familyDistill:     {"#fac858", "circle"},
	familyStudent:     {"#a16207", "rect"},
	familyPrune:       {"#ee6666", "circle"},
	familyCombination: {"#9a60b4", "diamond"},
	familyOther:       {"#999999", "triangle"},
}

// row is one experiment joined to its run and its baseline.
type row struct {
	exp  *store.Experiment
	run  *store.Run        // nil when the snapshot lacks the experiment's run
	base *store.Experiment // nil when the baseline is not in the same run
	fam  string
	set  string // the distinct families joined by "+", "" for a baseline
	vals map[string]float64
	bval map[string]float64
	page string // file name of the experiment's page
}

func newRow(e *store.Experiment, run *store.Run) *row {
	r := &row{exp: e, run: run, vals: metricMap(e.Metrics)}
	r.fam, r.set = classify(e)
	return r
}

func metricMap(ms []metrics.Metric) map[string]float64 {
	m := make(map[string]float64, len(ms))
	for _, x := range ms {
		if math.IsNaN(x.Value) || math.IsInf(x.Value, 0) {
			continue
		}
		m[x.Name] = x.Value
	}
	return m
}

// classify returns the colouring family of an experiment and its family
// set ("prune+distill+quantize", in pipeline order of first appearance).
func classify(e *store.Experiment) (fam, set string) {
	var distinct []string
	seen := map[string]bool{}
	for _, f := range e.Families {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "" || f == familyBaseline || seen[f] {
			continue
		}
		seen[f] = true
		distinct = append(distinct, f)
	}
	switch {
	case len(distinct) == 0:
		return familyBaseline, ""
	case len(distinct) > 1:
		return familyCombination, strings.Join(distinct, "+")
	}
	switch f := distinct[0]; f {
	case familyQuantize, familyLowRank, familyDistill, familyPrune:
		return f, f
	default:
		return familyOther, f
	}
}

func (r *row) ok() bool { return r.exp.Status == store.StatusOK }

func (r *row) get(name string) (float64, bool) {
	v, ok := r.vals[name]
	return v, ok
}

func (r *row) baseGet(name string) (float64, bool) {
	if r.bval == nil {
		return 0, false
	}
	v, ok := r.bval[name]
	return v, ok
}

// firstOf returns the first of names the row has.
func (r *row) firstOf(names ...string) (float64, bool) {
	for _, n := range names {
		if v, ok := r.vals[n]; ok {
			return v, true
		}
	}
	return 0, false
}

// top1Delta is the accuracy change in percentage points against the
// baseline: the stored top1_delta, else computed.
func (r *row) top1Delta() (float64, bool) {
	if v, ok := r.get(metrics.Top1Delta); ok {
		return v, true
	}
	if r.fam == familyBaseline && r.exp.Baseline == "" {
		if _, ok := r.get(metrics.Top1); ok {
			return 0, true
		}
	}
	a, ok1 := r.get(metrics.Top1)
	b, ok2 := r.baseGet(metrics.Top1)
	if !ok1 || !ok2 {
		return 0, false
	}
	return a - b, true
}

// speedup is baseline p50 / p50 at batch 1: the stored speedup, else
// computed.
func (r *row) speedup() (float64, bool) {
	if v, ok := r.get(metrics.Speedup); ok {
		return v, true
	}
	if r.fam == familyBaseline && r.exp.Baseline == "" {
		if _, ok := r.get(metrics.LatencyP50); ok {
			return 1, true
		}
	}
	a, ok1 := r.get(metrics.LatencyP50)
	b, ok2 := r.baseGet(metrics.LatencyP50)
	if !ok1 || !ok2 || a <= 0 {
		return 0, false
	}
	return b / a, true
}

// ratio is value / baseline value of a metric (1 for a baseline itself).
func (r *row) ratio(name string) (float64, bool) {
	a, ok := r.get(name)
	if !ok {
		return 0, false
	}
	return r.against(a, func() (float64, bool) { return r.baseGet(name) })
}

// against divides a by the baseline's value, which base looks up (1 for
// a baseline itself).
func (r *row) against(a float64, base func() (float64, bool)) (float64, bool) {
	if r.fam == familyBaseline && r.exp.Baseline == "" {
		return 1, true
	}
	b, ok := base()
	if !ok || b == 0 {
		return 0, false
	}
	return a / b, true
}

// macsRatio is executed (dense) MACs / baseline MACs, as the runner
// stores it.
func (r *row) macsRatio() (float64, bool) {
	if v, ok := r.get(metrics.MACsRatio); ok {
		return v, true
	}
	a, ok := axisMACs.value(r)
	if !ok {
		return 0, false
	}
	return r.against(a, func() (float64, bool) { return r.baseAxis(axisMACs) })
}

// compression is baseline size / size.
func (r *row) compression() (float64, bool) {
	if v, ok := r.get(metrics.CompressionRatio); ok {
		return v, true
	}
	q, ok := r.ratio(metrics.SizeBytes)
	if !ok || q == 0 {
		return 0, false
	}
	return 1 / q, true
}

// paramsRatio is parameters / baseline parameters.
func (r *row) paramsRatio() (float64, bool) {
	a, ok := axisParams.value(r)
	if !ok {
		return 0, false
	}
	if r.fam == familyBaseline && r.exp.Baseline == "" {
		return 1, true
	}
	b, ok := r.baseAxis(axisParams)
	if !ok || b == 0 {
		return 0, false
	}
	return a / b, true
}

// baseAxis reads an axis from the baseline's metrics.
func (r *row) baseAxis(a *costAxis) (float64, bool) {
	if r.bval == nil {
		return 0, false
	}
	return a.value(&row{vals: r.bval})
}

func (r *row) simulated() bool {
	return strings.EqualFold(r.exp.Executed, "simulated")
}

// costAxis is a cost the trade-off views put on x: lower is better.
type costAxis struct {
	key    string
	label  string // axis label with display unit
	noun   string // in sentences
	scale  float64
	unit   string
	names  []string // metric names tried in order
	lookup string   // metric whose Info describes the axis
}

func (a *costAxis) value(r *row) (float64, bool) {
	v, ok := r.firstOf(a.names...)
	if !ok || v <= 0 {
		return 0, false
	}
	return v, true
}

func (a *costAxis) format(v float64) string {
	return fmtNum(v*a.scale) + " " + a.unit
}

// The axes budgets and Pareto fronts use are the costs that execute: no
// sparse kernel runs a pruned model's zeros, so its MACs, parameters and
// size are dense. What skipping the zeros would save is on its own axis,
// axisMACsEffective, named so and never budgeted.
var (
	axisMACs = &costAxis{
		key: "macs", label: "MACs, executed (G)", noun: "executed MACs", scale: 1e-9, unit: "G",
		names: []string{metrics.MACs}, lookup: metrics.MACs,
	}
	axisParams = &costAxis{
		key: "params", label: "parameters (M)", noun: "parameters", scale: 1e-6, unit: "M",
		names: []string{metrics.Params}, lookup: metrics.Params,
	}
	axisSize = &costAxis{
		key: "size", label: "model size (MiB)", noun: "model size", scale: 1.0 / (1 << 20), unit: "MiB",
		names: []string{metrics.SizeBytes}, lookup: metrics.SizeBytes,
	}
	axisLatency = &costAxis{
		key: "latency", label: "latency p50, batch 1 (ms)", noun: "measured latency", scale: 1e3, unit: "ms",
		names: []string{metrics.LatencyP50}, lookup: metrics.LatencyP50,
	}
	costAxes = []*costAxis{axisMACs, axisParams, axisSize, axisLatency}

	axisMACsEffective = &costAxis{
		key: "macs-effective", label: "MACs, effective: zero weights skipped, not executed (G)", noun: "effective MACs", scale: 1e-9, unit: "G",
		names: []string{metrics.MACsEffective, metrics.MACs}, lookup: metrics.MACsEffective,
	}
)

// group is the current results of one (data set, baseline model) pair.
type group struct {
	Dataset string
	Model   string
	Rows    []*row
	Base    *row // nil when the group has no successful baseline
	Page    string
	pairs   map[[2]*row]comparison // paired accuracy tests already made
	// ShownWith is the teacher's group where this group's models appear
	// as students (see view.addStudents); nil otherwise.
	ShownWith *group
}

// points returns the group's successful rows that have top-1 and the
// axis's cost. Latency points are only those measured on the set-up
// (machine, threads, device) of the group's baseline: latencies of
// different machines do not share an axis.
func (g *group) points(a *costAxis) []point {
	if a != axisLatency || g.Base == nil {
		return axisPoints(g.Rows, a)
	}
	key := latencySetup(g.Base.run)
	var rows []*row
	for _, r := range g.Rows {
		if latencySetup(r.run) == key {
			rows = append(rows, r)
		}
	}
	return axisPoints(rows, a)
}

// latencySetup identifies what a measured latency depends on: the
// machine, the threads, the way a pass used them and the device.
func latencySetup(r *store.Run) string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf("%s/%d/%s/%s", store.Fingerprint(r.Machine), r.Threads, r.TimedEngine(), r.Device)
}

// description is the suite's description of the group's model, from its
// newest row that has one.
func (g *group) description() string {
	for i := len(g.Rows) - 1; i >= 0; i-- {
		if r := g.Rows[i]; r.exp.Model == g.Model && r.exp.ModelDescription != "" {
			return strings.TrimRight(r.exp.ModelDescription, ". ")
		}
	}
	return ""
}

// Description is description for templates.
func (g *group) Description() string { return g.description() }

func (g *group) Title() string {
	d, m := g.Dataset, g.Model
	if d == "" {
		d = "(no data set)"
	}
	if m == "" {
		m = "(no model)"
	}
	return d + " · " + m
}

// view is a snapshot indexed for rendering.
type view struct {
	runs     []*store.Run // by start time
	runByID  map[int64]*store.Run
	rows     []*row // every experiment, in run order
	current  []*row // the latest result of each (data set, model, name)
	groups   []*group
	warnings []error
}

func newView(runs []store.Run, exps []store.Experiment) *view {
	v := &view{runByID: map[int64]*store.Run{}}
	for i := range runs {
		r := &runs[i]
		if _, dup := v.runByID[r.ID]; dup {
			v.warnings = append(v.warnings, fmt.Errorf("two runs share ID %d; experiments are attributed to the first (merge databases with store.OpenSnapshots)", r.ID))
			continue
		}
		v.runByID[r.ID] = r
		v.runs = append(v.runs, r)
	}
	sort.SliceStable(v.runs, func(i, j int) bool {
		a, b := v.runs[i], v.runs[j]
		if !a.Started.Equal(b.Started) {
			return a.Started.Before(b.Started)
		}
		return a.ID < b.ID
	})
	runIndex := map[int64]int{}
	for i, r := range v.runs {
		runIndex[r.ID] = i
	}

	byRunName := map[int64]map[string]*store.Experiment{}
	orphans := 0
	for i := range exps {
		e := &exps[i]
		run := v.runByID[e.RunID]
		if run == nil {
			orphans++
		}
		if byRunName[e.RunID] == nil {
			byRunName[e.RunID] = map[string]*store.Experiment{}
		}
		byRunName[e.RunID][e.Name] = e
		v.rows = append(v.rows, newRow(e, run))
	}
	if orphans > 0 {
		v.warnings = append(v.warnings, fmt.Errorf("%d experiments belong to no run in the snapshot", orphans))
	}
	sort.SliceStable(v.rows, func(i, j int) bool {
		a, b := v.rows[i], v.rows[j]
		ia, oka := runIndex[a.exp.RunID]
		ib, okb := runIndex[b.exp.RunID]
		if oka != okb {
			return oka
		}
		if ia != ib {
			return ia < ib
		}
		return false
	})

	missingBase := map[string]bool{}
	used := map[string]bool{}
	for _, r := range v.rows {
		if name := r.exp.Baseline; name != "" {
			if b := byRunName[r.exp.RunID][name]; b != nil && b != r.exp {
				r.base = b
				r.bval = metricMap(b.Metrics)
			} else {
				missingBase[fmt.Sprintf("%q (run %d)", name, r.exp.RunID)] = true
			}
		}
		r.page = uniquePage(used, fmt.Sprintf("exp-%d-%s", r.exp.RunID, slug(r.exp.Name)))
	}
	for _, k := range slices.Sorted(maps.Keys(missingBase)) {
		v.warnings = append(v.warnings, fmt.Errorf("baseline %s is not in the snapshot: relative metrics not stored with the experiment are missing", k))
	}

	// The current view: the latest successful result of each (data set,
	// model, name), else its latest result.
	latest := map[[3]string]*row{}
	var order [][3]string
	for _, r := range v.rows {
		k := [3]string{r.exp.Dataset, r.exp.Model, r.exp.Name}
		cur, ok := latest[k]
		if !ok {
			order = append(order, k)
		}
		if !ok || r.ok() || !cur.ok() {
			latest[k] = r // rows are in run order: later runs win
		}
	}
	for _, k := range order {
		v.current = append(v.current, latest[k])
	}

	byGroup := map[[2]string]*group{}
	usedPages := map[string]bool{}
	for _, r := range v.current {
		k := [2]string{r.exp.Dataset, r.exp.Model}
		g := byGroup[k]
		if g == nil {
			g = &group{Dataset: k[0], Model: k[1]}
			g.Page = uniquePage(usedPages, "tradeoff-"+slug(k[0])+"-"+slug(k[1]))
			byGroup[k] = g
			v.groups = append(v.groups, g)
		}
		g.Rows = append(g.Rows, r)
	}
	sort.SliceStable(v.groups, func(i, j int) bool {
		a, b := v.groups[i], v.groups[j]
		if a.Dataset != b.Dataset {
			return a.Dataset < b.Dataset
		}
		return a.Model < b.Model
	})
	for _, g := range v.groups {
		g.Base = pickBaseline(g.Rows)
	}
	v.addStudents()
	return v
}

// pickBaseline returns the successful baseline that most rows of a group
// are relative to.
func pickBaseline(rows []*row) *row {
	votes := map[string]int{}
	for _, r := range rows {
		if r.exp.Baseline != "" {
			votes[r.exp.Baseline]++
		}
	}
	// A baseline with a top-1 first; a timed-only model has none.
	for _, needTop1 := range []bool{true, false} {
		var best *row
		for _, r := range rows {
			if r.fam != familyBaseline || !r.ok() {
				continue
			}
			if _, ok := r.get(metrics.Top1); needTop1 && !ok {
				continue
			}
			if best == nil || votes[r.exp.Name] > votes[best.exp.Name] {
				best = r
			}
		}
		if best != nil {
			return best
		}
	}
	return nil
}

// machineLabel names a run's machine briefly: host, else CPU, else run ID.
func machineLabel(r *store.Run) string {
	if r == nil {
		return "unknown machine"
	}
	switch {
	case r.Machine.Hostname != "":
		return r.Machine.Hostname
	case r.Machine.CPU != "":
		return r.Machine.CPU
	}
	return fmt.Sprintf("run %d", r.ID)
}

// runLabel names a run: "#3 host (cpu)".
func runLabel(r *store.Run) string {
	if r == nil {
		return "no run"
	}
	s := fmt.Sprintf("#%d %s", r.ID, machineLabel(r))
	if r.Device != "" {
		s += " (" + r.Device + ")"
	}
	return s
}

// slug makes a file-name stem from user text: lower-case letters, digits
// and dashes, with a short hash when anything was changed so that
// distinct names stay distinct.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(s) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
			dash = false
			continue
		}
		if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.TrimRight(b.String(), "-")
	if len(out) > 48 {
		out = strings.TrimRight(out[:48], "-")
	}
	if out != s || out == "" {
		h := fnv.New32a()
		h.Write([]byte(s))
		if out != "" {
			out += "-"
		}
		out += fmt.Sprintf("%06x", h.Sum32()&0xffffff)
	}
	return out
}

// uniquePage returns stem + ".html", numbered when taken.
func uniquePage(used map[string]bool, stem string) string {
	name := stem + ".html"
	for i := 2; used[name]; i++ {
		name = fmt.Sprintf("%s-%d.html", stem, i)
	}
	used[name] = true
	return name
}
