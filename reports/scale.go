package reports

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/store"
	"github.com/vitbench/vitbench/techniques"
)

// ScalePage is the deployment-scale view: the groups of timed-only models
// (deit_tiny and deit_small at 224 in all.toml), whose experiments have
// costs and speed but no accuracy.
const ScalePage = "scale.html"

// timedOnly reports whether g's models were timed and never evaluated:
// its baseline succeeded and no row of it has a top-1.
func (g *group) timedOnly() bool {
	if g.Base == nil || !g.Base.ok() {
		return false
	}
	for _, r := range g.Rows {
		if _, ok := r.get(metrics.Top1); ok {
			return false
		}
	}
	return true
}

// scaleSection is one timed-only group on the scale page.
type scaleSection struct {
	Group    *group
	Charts   []chartBlock
	Findings []string
	Table    table
}

type scaleBody struct {
	Sections []scaleSection
	MACsNote string
}

// scaleGroups are the timed-only groups of v.
func scaleGroups(v *view) []*group {
	var out []*group
	for _, g := range v.groups {
		if g.timedOnly() {
			out = append(out, g)
		}
	}
	return out
}

// scale writes the deployment-scale page.
func (s *site) scale() error {
	groups := s.timed
	if len(groups) == 0 {
		return nil
	}
	var cs chartSet
	b := scaleBody{MACsNote: macsNote}
	for _, g := range groups {
		first := len(cs.list)
		if err := addScaleChart(&cs, g); err != nil {
			return err
		}
		b.Sections = append(b.Sections, scaleSection{Group: g, Charts: cs.list[first:], Findings: scaleFindings(g), Table: scaleTable(s.v, g)})
	}
	return s.page(ScalePage, "scale", "Deployment scale", nil, cs.list, b)
}

// addScaleChart adds g's measured speed-up against its ideal to cs.
func addScaleChart(cs *chartSet, g *group) error {
	c, ok := scaleChart(g)
	if !ok {
		return nil
	}
	note := "Ideal: the baseline's executed MACs over the experiment's (x); measured: the baseline's median over the experiment's, at batch 1 (latency) and at the throughput batch (y), with 95% bootstrap intervals. Points on the dashed diagonal turn every MAC saved into time saved; int8 and bf16 models execute cheaper MACs, so theirs can rise above it."
	if ms := machinesOf(g.points(axisLatency)); len(ms) == 1 {
		note += " Measured on " + ms[0] + "."
	}
	if err := cs.add(g.Title()+": measured speed-up vs MACs reduction", note, 420, c); err != nil {
		return fmt.Errorf("scale %s: %w", g.Title(), err)
	}
	return nil
}

// scaleChart plots each compressed experiment's measured speed-up at
// batch 1 and at the throughput batch against its ideal (the MACs
// reduction), with the diagonal where the two agree.
func scaleChart(g *group) (*charts.Scatter, bool) {
	c := charts.NewScatter()
	c.SetGlobalOptions(commonOpts()...)
	c.SetGlobalOptions(plotGrid())
	c.SetGlobalOptions(
		charts.WithXAxisOpts(valueAxis("ideal speed-up: baseline MACs / MACs (×)", true)),
		charts.WithYAxisOpts(valueYAxis("measured speed-up (×)", true)),
	)
	kinds := []struct {
		name, metric, color, symbol string
	}{
		{"batch 1 (latency)", metrics.Speedup, "#5470c6", "circle"},
		{"throughput batch", metrics.ThroughputGain, "#ee6666", "diamond"},
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	var whiskers []item
	var all []charts.SingleSeries
	for _, k := range kinds {
		var items []item
		for _, r := range g.Rows {
			if r == g.Base || !r.ok() {
				continue
			}
			ratio, ok1 := r.macsRatio()
			v, ok2 := r.get(k.metric)
			if !ok1 || !ok2 || ratio <= 0 {
				continue
			}
			ideal := 1 / ratio
			lines := []string{k.name, "executed " + orDash(r.exp.Executed), "ideal " + fmtNum(ideal) + "×", "measured " + fmtNum(v) + "× (" + strconv.Itoa(int(math.Round(100*v/ideal))) + "% of ideal)"}
			if l, h, ok := r.interval(k.metric); ok {
				lines = append(lines, "95% interval "+ciText(l, h, 1))
				whiskers = append(whiskers, item{Value: []float64{round(ideal), round(v), round(ideal), round(ideal), round(l), round(h)}, Tip: tip(r.exp.Name, lines...)})
			}
			items = append(items, item{Value: []float64{round(ideal), round(v)}, Tip: tip(r.exp.Name, append(lines, r.exp.Pipeline)...)})
			lo, hi = math.Min(lo, math.Min(ideal, v)), math.Max(hi, math.Max(ideal, v))
		}
		if len(items) > 0 {
			all = append(all, series(k.name, "scatter", items,
				charts.WithItemStyleOpts(opts.ItemStyle{Color: k.color}),
				func(s *charts.SingleSeries) { s.Symbol = k.symbol; s.SymbolSize = 11 }))
		}
	}
	if len(all) == 0 {
		return nil, false
	}
	if len(whiskers) > 0 {
		c.MultiSeries = append(c.MultiSeries, whiskerSeries(whiskers))
	}
	c.MultiSeries = append(c.MultiSeries, all...)
	lo, hi = math.Min(lo, 1), math.Max(hi, 1)
	c.MultiSeries = append(c.MultiSeries, series("ideal", "line",
		[]item{{Value: []float64{round(lo), round(lo)}}, {Value: []float64{round(hi), round(hi)}}},
		charts.WithLineStyleOpts(opts.LineStyle{Color: "#111827", Width: 1, Type: "dashed"}),
		func(s *charts.SingleSeries) { s.Symbol = "none" }))
	return c, true
}

// scaleTable lists a timed-only group's experiments: executed costs,
// measured speed at batch 1 and at the throughput batch beside the ideal
// the MACs promise, and the accuracy change the same pipeline measured
// on the models that were evaluated.
func scaleTable(v *view, g *group) table {
	batch := "batch B"
	if g.Base != nil {
		if b, ok := g.Base.get(metrics.ThroughputBatch); ok {
			batch = "batch " + strconv.Itoa(int(b))
		}
	}
	t := table{Sortable: true, Empty: "No experiments.", Head: []headCell{
		{Text: "experiment"}, {Text: "family"}, {Text: "executed"},
		{Text: "MACs (G)", Num: true},
		{Text: "ideal speed-up", Num: true, Title: "baseline MACs / MACs: the speed-up if time followed the executed MACs"},
		{Text: "size (MiB)", Num: true},
		{Text: "latency, batch 1 (ms) [95%]", Num: true, Title: "median with benchmath's interval"},
		{Text: "speed-up, batch 1 [95%]", Num: true, Title: "baseline median / median, bootstrap interval, Mann-Whitney p; ~ marks no significant difference"},
		{Text: "of ideal, batch 1", Num: true},
		{Text: "throughput, " + batch + " (img/s) [95%]", Num: true},
		{Text: "gain, " + batch + " [95%]", Num: true, Title: "throughput / baseline throughput, bootstrap interval, Mann-Whitney p"},
		{Text: "of ideal, " + batch, Num: true},
		{Text: "Δ top-1 of the same compression (pts)", Title: "the accuracy change the same stages with the same parameters measured on an evaluated model of this report, with its paired interval; the fine-tuning there may differ, as a timed-only model is never trained"},
	}}
	x := func(v float64) string { return fmtNum(v) + "×" }
	for _, r := range g.Rows {
		ideal := cell{Text: "—", Class: "num missing"}
		var idealV float64
		if ratio, ok := r.macsRatio(); ok && ratio > 0 {
			idealV = 1 / ratio
			ideal = cell{Text: x(idealV), Sort: strconv.FormatFloat(idealV, 'g', -1, 64), Class: "num"}
		}
		share := func(metric string) cell {
			v, ok := r.get(metric)
			if r == g.Base || !ok || idealV <= 0 {
				return cell{Text: "—", Class: "num missing"}
			}
			if !fp32(r) {
				return cell{Text: "n/a", Class: "num missing", Title: "executed in " + r.exp.Executed + ": its MACs are cheaper, not fewer, so their count does not predict its time"}
			}
			p := 100 * v / idealV
			return cell{Text: strconv.Itoa(int(math.Round(p))) + "%", Sort: strconv.FormatFloat(p, 'g', -1, 64), Class: "num"}
		}
		cells := []cell{
			{Text: r.exp.Name, Href: r.page, Sort: r.exp.Name}, {Text: familyText(r)}, orMissing(r.exp.Executed, "—"),
			ciCell(r, metrics.MACs, 1e-9), ideal,
			ciCell(r, metrics.SizeBytes, 1.0/(1<<20)),
			ciCell(r, metrics.LatencyP50, 1e3),
			deltaCell(r, metrics.Speedup, 1, x), share(metrics.Speedup),
			ciCell(r, metrics.Throughput, 1),
			deltaCell(r, metrics.ThroughputGain, 1, x), share(metrics.ThroughputGain),
			samePipelineAccuracy(v, r),
		}
		for i := range cells {
			cells[i].Sortable = true
		}
		t.Rows = append(t.Rows, cells)
	}
	return t
}

// samePipelineAccuracy is the top-1 change the same compression (the
// same stages with the same parameters, fine-tuning aside) measured on an
// evaluated model.
func samePipelineAccuracy(v *view, r *row) cell {
	if r.fam == familyBaseline {
		return cell{Text: "—", Class: "missing"}
	}
	key := compressionKey(r.exp)
	for _, o := range v.current {
		if o.exp.Model == r.exp.Model || compressionKey(o.exp) != key || !o.ok() {
			continue
		}
		d, ok := o.top1Delta()
		if !ok {
			continue
		}
		text := fmtSigned(d)
		if lo, hi, ok := o.interval(metrics.Top1Delta); ok {
			text += " " + ciText(lo, hi, 1)
		}
		if sig, tested := o.significant(metrics.Top1Delta, 0); tested && !sig {
			text += " ~"
		}
		return cell{Text: text + " on " + o.exp.Model, Href: o.page, Sort: strconv.FormatFloat(d, 'g', -1, 64)}
	}
	return cell{Text: "not run on an evaluated model", Class: "missing"}
}

// scaleFindings states, for each timing batch, the largest significant
// measured speed-up and how much of the ideal the experiments reach.
func scaleFindings(g *group) []string {
	var out []string
	for _, k := range []struct{ metric, what string }{
		{metrics.Speedup, "at batch 1"},
		{metrics.ThroughputGain, "in throughput"},
	} {
		var best *row
		var bestV float64
		reached, compared := 0, 0
		for _, r := range g.Rows {
			if r == g.Base || !r.ok() {
				continue
			}
			v, ok := r.get(k.metric)
			ratio, ok2 := r.macsRatio()
			if !ok || !ok2 || ratio <= 0 {
				continue
			}
			if ratio < 1 && fp32(r) {
				compared++
				if v*ratio >= 0.8 {
					reached++
				}
			}
			if sig, tested := r.significant(k.metric, 1); tested && sig && v > 1 && v > bestV {
				best, bestV = r, v
			}
		}
		if best == nil {
			out = append(out, fmt.Sprintf("No experiment is significantly faster than %s %s.", g.Base.exp.Name, k.what))
			continue
		}
		ratio, _ := best.macsRatio()
		s := fmt.Sprintf("The largest speed-up %s is %s's %s×", k.what, best.exp.Name, fmtNum(bestV))
		if lo, hi, ok := best.interval(k.metric); ok {
			s += " " + ciText(lo, hi, 1)
		}
		if p, ok := best.pValue(k.metric); ok {
			s += " (" + pText(p) + ")"
		}
		if fp32(best) {
			s += fmt.Sprintf(", %d%% of the %s× its MACs promise.", int(math.Round(100*bestV*ratio)), fmtNum(1/ratio))
		} else {
			s += fmt.Sprintf(", executed in %s (cheaper MACs, not only fewer: its MACs promise %s×).", best.exp.Executed, fmtNum(1/ratio))
		}
		if compared > 0 {
			s += fmt.Sprintf(" %d of %d fp32 experiments that execute fewer MACs reach 80%% of their ideal %s.", reached, compared, k.what)
		}
		out = append(out, s)
	}
	return out
}

// fineTuneKeys are the parameters of a stage's training (techniques.FineTune
// and the soft-mask search's), which change an artifact's weights but not
// the compression it executes.
var fineTuneKeys = func() map[string]bool {
	keys := map[string]bool{"mask_epochs": true, "mask_l1": true}
	t := reflect.TypeOf(techniques.FineTune{})
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ","); k != "" {
			keys[k] = true
		}
	}
	return keys
}()

// compressionKey identifies what an experiment's pipeline does to its
// model: each stage's technique and resolved parameters, fine-tuning
// aside. Without stored settings (older databases) it is the pipeline's
// label.
func compressionKey(e *store.Experiment) string {
	if len(e.Settings) == 0 {
		return e.Pipeline
	}
	var parts []string
	for _, s := range e.Settings {
		if !fineTuneKeys[s.Key] {
			parts = append(parts, fmt.Sprintf("%d:%s.%s=%s", s.Stage, s.Technique, s.Key, s.Value))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ";")
}

// fp32 reports whether r executes in float32, where its MACs' count is
// what its time can follow.
func fp32(r *row) bool { return r.exp.Executed == "" || r.exp.Executed == "fp32" }

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
