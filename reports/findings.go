package reports

import (
	"fmt"
	"strings"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/store"
)

// budgetFractions are the cost budgets findings are stated at, as
// fractions of the baseline's cost.
var budgetFractions = []float64{0.25, 0.5, 0.75}

// findings are the statements the data of one group supports, generated
// from the numbers: which family gives the best accuracy within each cost
// budget, which pipelines are on each Pareto front, and which
// combinations dominate single techniques.
type findings struct {
	Group     *group
	Sentences []string
	Families  []string    // columns of Budgets, in legend order
	Budgets   []budgetRow // best top-1 per family within each budget
	Missing   []string    // what could not be stated and why
}

// budgetRow is one budget of one cost axis.
type budgetRow struct {
	Axis  string // "MACs (G)"
	Label string // "≤ 50% (0.62 G)"
	Cells []budgetCell
}

// budgetCell is the best experiment of one family within a budget.
type budgetCell struct {
	Text  string // "68.1%" or "—"
	Title string // the experiment and its cost
	Best  bool   // the best of the row
}

// computeFindings derives the findings of a group.
func computeFindings(g *group) findings {
	f := findings{Group: g}
	var failed []string
	for _, r := range g.Rows {
		if !r.ok() {
			failed = append(failed, r.exp.Name)
		}
	}
	if len(failed) > 0 {
		f.Missing = append(f.Missing, fmt.Sprintf("%s did not succeed and %s left out: %s.", plural(len(failed), "experiment"), isAre(len(failed)), nameList(failed, 6)))
	}
	families := presentFamilies(g.Rows, false)
	f.Families = families

	b := g.Base
	if b == nil {
		f.Missing = append(f.Missing, "No successful baseline with top-1 in this group: budgets relative to the baseline cannot be stated.")
	} else {
		top1, _ := b.get(metrics.Top1)
		var costs []string
		for _, a := range costAxes {
			if v, ok := a.value(b); ok {
				costs = append(costs, a.format(v)+" "+a.noun)
			}
		}
		s := fmt.Sprintf("The baseline %s reaches %s top-1", quote(b.exp.Name), fmtMetric(metrics.Top1, top1, ""))
		if len(costs) > 0 {
			s += " at " + strings.Join(costs, ", ")
		}
		f.Sentences = append(f.Sentences, s+".")
	}

	for _, a := range costAxes {
		pts := g.points(a)
		if len(pts) == 0 {
			f.Missing = append(f.Missing, fmt.Sprintf("No successful experiment has both top-1 and %s: nothing to state about accuracy per %s.", a.noun, a.noun))
			continue
		}
		if a == axisLatency && b != nil {
			f.Sentences = append(f.Sentences, fmt.Sprintf("Latency statements compare experiments measured on the baseline's set-up, %s with %d threads (%s engine); other machines are on the machines page.",
				runLabel(b.run), threadsOf(b), engineOfRow(b)))
		}
		if b != nil {
			if bc, ok := a.value(b); ok {
				f.budgetFindings(a, pts, bc)
			} else {
				f.Missing = append(f.Missing, fmt.Sprintf("The baseline has no %s: no budgets on it.", a.noun))
			}
		}
		front := paretoFront(pts)
		var parts []string
		for _, p := range front {
			parts = append(parts, fmt.Sprintf("%s (%s, %s)", quote(p.r.exp.Name), fmtMetric(metrics.Top1, p.y, ""), a.format(p.x)))
		}
		f.Sentences = append(f.Sentences, fmt.Sprintf("On top-1 against %s, %d of %d experiments are on the Pareto front: %s.",
			a.noun, len(front), len(pts), nameList(parts, 8)))
	}
	f.Sentences = append(f.Sentences, combinationFindings(g)...)
	return f
}

// budgetFindings adds the sentences and table rows of one cost axis.
func (f *findings) budgetFindings(a *costAxis, pts []point, baseCost float64) {
	for _, frac := range budgetFractions {
		limit := frac * baseCost
		br := budgetRow{Axis: a.label, Label: fmt.Sprintf("≤ %d%% (%s)", int(frac*100+0.5), a.format(limit))}
		best := map[string]point{}
		var overall *point
		for _, p := range pts {
			if p.r.fam == familyBaseline || p.x > limit {
				continue
			}
			if cur, ok := best[p.r.fam]; !ok || p.y > cur.y {
				best[p.r.fam] = p
			}
			if overall == nil || p.y > overall.y {
				q := p
				overall = &q
			}
		}
		for _, fam := range f.Families {
			p, ok := best[fam]
			if !ok {
				br.Cells = append(br.Cells, budgetCell{Text: "—", Title: "no " + fam + " experiment within this budget"})
				continue
			}
			br.Cells = append(br.Cells, budgetCell{
				Text:  fmtMetric(metrics.Top1, p.y, ""),
				Title: fmt.Sprintf("%s at %s", p.r.exp.Name, a.format(p.x)),
				Best:  overall != nil && p.r == overall.r,
			})
		}
		f.Budgets = append(f.Budgets, br)
		pct := int(frac*100 + 0.5)
		if overall == nil {
			f.Sentences = append(f.Sentences, fmt.Sprintf("No experiment fits within %d%% of the baseline's %s (≤ %s).", pct, a.noun, a.format(limit)))
			continue
		}
		s := fmt.Sprintf("Within %d%% of the baseline's %s (≤ %s), %s gives the best top-1: %s",
			pct, a.noun, a.format(limit), familyPhrase(overall.r), fmtMetric(metrics.Top1, overall.y, ""))
		if d, ok := overall.r.top1Delta(); ok {
			s += fmt.Sprintf(" (%s pts vs the baseline)", fmtSigned(d))
		}
		s += fmt.Sprintf(" with %s at %s", quote(overall.r.exp.Name), a.format(overall.x))
		if a == axisLatency && overall.r.simulated() {
			s += " (simulated quantization: fp32 kernels)"
		}
		var others []string
		for _, fam := range f.Families {
			if p, ok := best[fam]; ok && fam != overall.r.fam {
				others = append(others, fmt.Sprintf("%s %s", fam, fmtMetric(metrics.Top1, p.y, "")))
			}
		}
		if len(others) > 0 {
			s += "; best of the other families: " + strings.Join(others, ", ")
		}
		f.Sentences = append(f.Sentences, s+".")
	}
}

// combinationFindings states which combinations are on a Pareto front and
// which single-technique experiments they dominate.
func combinationFindings(g *group) []string {
	var combos, singles []*row
	for _, r := range g.Rows {
		if !r.ok() {
			continue
		}
		switch r.fam {
		case familyCombination:
			combos = append(combos, r)
		case familyBaseline:
		default:
			singles = append(singles, r)
		}
	}
	if len(combos) == 0 {
		return nil
	}
	onFront := map[*row][]string{}
	for _, a := range costAxes {
		for _, p := range paretoFront(g.points(a)) {
			if p.r.fam == familyCombination {
				onFront[p.r] = append(onFront[p.r], a.noun)
			}
		}
	}
	var out []string
	dominating := 0
	for _, c := range combos {
		var dom []string
		for _, s := range singles {
			if dominates(c, s, costAxes) {
				dom = append(dom, quote(s.exp.Name))
			}
		}
		if len(dom) == 0 && len(onFront[c]) == 0 {
			continue
		}
		dominating++
		s := fmt.Sprintf("The combination %s (%s)", quote(c.exp.Name), c.set)
		if axes := onFront[c]; len(axes) > 0 {
			s += " is on the Pareto front for " + strings.Join(axes, ", ")
			if len(dom) > 0 {
				s += " and"
			}
		}
		if len(dom) > 0 {
			s += fmt.Sprintf(" dominates %d single-technique experiments (at least as accurate and no more costly on every measured axis): %s", len(dom), nameList(dom, 6))
		}
		out = append(out, s+".")
	}
	if dominating == 0 {
		out = append(out, fmt.Sprintf("None of the %d combinations is on a Pareto front or dominates a single-technique experiment.", len(combos)))
	}
	return out
}

// presentFamilies lists the families the rows have, in legend order.
func presentFamilies(rows []*row, withBaseline bool) []string {
	has := map[string]bool{}
	for _, r := range rows {
		has[r.fam] = true
	}
	var out []string
	for _, f := range familyOrder {
		if has[f] && (withBaseline || f != familyBaseline) {
			out = append(out, f)
		}
	}
	return out
}

func familyPhrase(r *row) string {
	if r.fam == familyCombination {
		return "the combination " + r.set
	}
	return r.fam
}

// quote marks a user-given name in a sentence. The page escapes it.
func quote(s string) string { return "“" + s + "”" }

// plural formats a count and a noun: "1 experiment", "2 experiments".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

func engineOfRow(r *row) string {
	if r.run == nil {
		return new(store.Run).TimedEngine()
	}
	return r.run.TimedEngine()
}

func threadsOf(r *row) int {
	if r.run == nil {
		return 0
	}
	return r.run.Threads
}
