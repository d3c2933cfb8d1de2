package reports

import (
	"fmt"
	"math"
	"strings"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/stats"
	"github.com/vitbench/vitbench/harness/store"
)

// budgetFractions are the cost budgets of the budget table, as fractions
// of the baseline's cost.
var budgetFractions = []float64{0.25, 0.5, 0.75}

// headlineAxes are the executed costs the overview and the findings lead
// with: what a deployment pays for, as measured, and what it stores.
var headlineAxes = []*costAxis{axisLatency, axisSize}

// findingAxes are the axes findings state Pareto fronts and budgets on.
// Parameters are left out: on every model here they move with size.
var findingAxes = []*costAxis{axisLatency, axisSize, axisMACs}

// findings are the statements the data of one group supports, ranked
// from the one a reader wants first: what can be had at no significant
// loss, then the Pareto fronts, then budgets and combinations. A
// difference is claimed only where its test says it is significant at 5%;
// otherwise the sentence says "no significant difference".
type findings struct {
	Group     *group
	Sentences []string
	Families  []string    // columns of Budgets, in legend order
	Budgets   []budgetRow // best top-1 per family within each budget
	Missing   []string    // what could not be stated and why
}

// budgetRow is one budget of one cost axis.
type budgetRow struct {
	Axis  string // "MACs, executed (G)"
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
	f := findings{Group: g, Families: presentFamilies(g.Rows, false)}
	var failed []string
	for _, r := range g.Rows {
		if !r.ok() {
			failed = append(failed, r.exp.Name)
		}
	}
	if len(failed) > 0 {
		f.Missing = append(f.Missing, fmt.Sprintf("%s did not succeed and %s left out: %s.", plural(len(failed), "experiment"), isAre(len(failed)), nameList(failed, 6)))
	}
	b := g.Base
	if b == nil {
		f.Missing = append(f.Missing, "No successful baseline with top-1 in this group: nothing can be stated against a baseline.")
	} else {
		f.Sentences = append(f.Sentences, baselineSentence(b))
		for _, a := range headlineAxes {
			if s, ok := noLossFinding(g, a); ok {
				f.Sentences = append(f.Sentences, s)
			}
		}
	}
	for _, a := range findingAxes {
		pts := g.points(a)
		if len(pts) == 0 {
			f.Missing = append(f.Missing, fmt.Sprintf("No successful experiment has both top-1 and %s: no front on it.", a.noun))
			continue
		}
		f.Sentences = append(f.Sentences, frontSentence(g, a, pts))
	}
	if b != nil {
		f.Sentences = append(f.Sentences, budgetSentences(g)...)
		for _, a := range findingAxes {
			if bc, ok := a.value(b); ok {
				f.budgetRows(a, g.points(a), bc)
			}
		}
	}
	if s, ok := distillFinding(g); ok {
		f.Sentences = append(f.Sentences, s)
	}
	f.Sentences = append(f.Sentences, combinationFindings(g)...)
	f.Sentences = dedupe(f.Sentences)
	return f
}

// baselineSentence states the baseline's accuracy and executed costs.
func baselineSentence(b *row) string {
	v, _ := b.get(metrics.Top1)
	top1 := fmtMetric(metrics.Top1, v, "")
	if lo, hi, ok := b.interval(metrics.Top1); ok {
		top1 += " " + ciText(lo, hi, 1)
	}
	var costs []string
	for _, a := range findingAxes {
		if v, ok := a.value(b); ok {
			costs = append(costs, a.format(v)+" "+a.noun)
		}
	}
	s := fmt.Sprintf("The baseline %s reaches %s top-1", quote(b.exp.Name), top1)
	if len(costs) > 0 {
		s += " at " + strings.Join(costs, ", ")
	}
	if b.run != nil && b.run.Threads > 0 {
		s += fmt.Sprintf(" (latency on %s, %d threads, %s engine)", machineLabel(b.run), b.run.Threads, b.run.TimedEngine())
	}
	return s + "."
}

// noLossFinding names the experiment that saves the most of an axis's
// cost while losing no significant top-1 against the baseline, with the
// tests behind both claims. For latency the saving must itself be
// significant (the speed-up's Mann-Whitney test); sizes are exact.
func noLossFinding(g *group, a *costAxis) (string, bool) {
	bc, ok := a.value(g.Base)
	if !ok {
		return "", false
	}
	var best *point
	tested := 0
	for _, p := range g.points(a) {
		r := p.r
		if r == g.Base || r.fam == familyBaseline || p.x >= bc {
			continue
		}
		d, ok := r.top1Delta()
		if !ok {
			continue
		}
		sig, ok := r.significant(metrics.Top1Delta, 0)
		if !ok {
			continue
		}
		tested++
		if sig && d < 0 {
			continue
		}
		if a == axisLatency {
			if sig, tested := r.significant(metrics.Speedup, 1); !tested || !sig {
				continue
			}
		}
		if best == nil || p.x < best.x {
			q := p
			best = &q
		}
	}
	if tested == 0 {
		return "", false // no accuracy delta with a test: nothing to claim
	}
	if best == nil {
		return fmt.Sprintf("No experiment lowers the %s significantly without a significant loss of top-1.", a.noun), true
	}
	r := best.r
	var saving string
	switch a {
	case axisLatency:
		sp, _ := r.speedup()
		saving = fmt.Sprintf("%s× faster at batch 1", fmtNum(sp))
		if lo, hi, ok := r.interval(metrics.Speedup); ok {
			saving += " " + ciText(lo, hi, 1)
		}
		if p, ok := r.pValue(metrics.Speedup); ok {
			saving += ", " + pText(p)
		}
	default:
		saving = fmt.Sprintf("%s at %s of the baseline's %s", a.format(best.x), pct(best.x/bc), a.noun)
	}
	return fmt.Sprintf("The %s experiment with no significant loss of top-1 is %s (%s): %s; top-1 %s.",
		superlative(a), quote(r.exp.Name), familyText(r), saving, deltaText(r)), true
}

func superlative(a *costAxis) string {
	switch a {
	case axisLatency:
		return "fastest"
	case axisSize:
		return "smallest"
	}
	return "cheapest in " + a.noun
}

// deltaText states a row's top-1 change against its baseline with its
// interval and test: "−0.20 pts [−0.61, 0.21], no significant difference
// (p=0.41)".
func deltaText(r *row) string {
	d, ok := r.top1Delta()
	if !ok {
		return "change not recorded"
	}
	s := fmtSigned(d) + " pts"
	if lo, hi, ok := r.interval(metrics.Top1Delta); ok {
		s += " " + ciText(lo, hi, 1)
	}
	sig, tested := r.significant(metrics.Top1Delta, 0)
	p, hasP := r.pValue(metrics.Top1Delta)
	switch {
	case !tested:
		s += ", not tested (no per-image outcomes)"
	case !sig:
		s += ", no significant difference"
	default:
		s += ", significant"
	}
	if hasP {
		s += " (" + pText(p) + ")"
	}
	return s
}

// pct formats a fraction as a percentage: "48%".
func pct(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) }

// frontSentence lists the Pareto front of one axis, cheapest first, each
// step with the paired test of its accuracy gain over the previous one:
// a step whose gain is not significant is marked "~".
func frontSentence(g *group, a *costAxis, pts []point) string {
	front := paretoFront(pts)
	var parts []string
	for i, p := range front {
		s := fmt.Sprintf("%s (%s, %s", quote(p.r.exp.Name), fmtMetric(metrics.Top1, p.y, ""), a.format(p.x))
		if i > 0 {
			s += "; " + gainText(g.paired(front[i-1].r, p.r))
		}
		parts = append(parts, s+")")
	}
	return fmt.Sprintf("Top-1 against %s: %d of %d experiments %s on the Pareto front, cheapest first: %s.",
		a.noun, len(front), len(pts), isAre(len(front)), strings.Join(parts, ", "))
}

// gainText describes a paired accuracy comparison in a few words.
func gainText(c comparison) string {
	if !c.ok {
		return "gain not tested"
	}
	if !stats.Significant(c.p) {
		return fmt.Sprintf("~ %s pts over the previous, not significant (%s)", fmtSigned(c.delta.Value), pText(c.p))
	}
	return fmt.Sprintf("%s pts over the previous, %s", fmtSigned(c.delta.Value), pText(c.p))
}

// budgetSentences state, for the headline axes at half the baseline's
// cost, the most accurate experiment and whether it is significantly more
// accurate than the best of every other family.
func budgetSentences(g *group) []string {
	var out []string
	for _, a := range headlineAxes {
		bc, ok := a.value(g.Base)
		if !ok {
			continue
		}
		limit := 0.5 * bc
		best, top := withinBudget(g.points(a), limit)
		if top == nil {
			continue
		}
		s := fmt.Sprintf("Within half the baseline's %s (≤ %s), the most accurate is %s (%s) at %s top-1 and %s",
			a.noun, a.format(limit), quote(top.r.exp.Name), familyText(top.r), fmtMetric(metrics.Top1, top.y, ""), a.format(top.x))
		var better, same, untested []string
		for _, fam := range presentFamilies(g.Rows, false) {
			p, ok := best[fam]
			if !ok || fam == top.r.fam {
				continue
			}
			c := g.paired(p.r, top.r)
			name := fmt.Sprintf("%s %s (%s)", fam, quote(p.r.exp.Name), fmtMetric(metrics.Top1, p.y, ""))
			switch {
			case !c.ok:
				untested = append(untested, name)
			case stats.Significant(c.p):
				better = append(better, fmt.Sprintf("%s by %s pts, %s", name, fmtSigned(c.delta.Value), pText(c.p)))
			default:
				same = append(same, fmt.Sprintf("%s, %s", name, pText(c.p)))
			}
		}
		if len(better) > 0 {
			s += "; it is significantly more accurate than the best of " + strings.Join(better, "; ")
		}
		if len(same) > 0 {
			s += "; no significant difference to the best of " + strings.Join(same, "; ")
		}
		if len(untested) > 0 {
			s += "; not tested (no per-image outcomes) against the best of " + strings.Join(untested, "; ")
		}
		out = append(out, s+".")
	}
	return out
}

// withinBudget returns the most accurate compressed point of each family
// that costs at most limit, and the most accurate of them all (nil when
// none fits).
func withinBudget(pts []point, limit float64) (best map[string]point, top *point) {
	best = map[string]point{}
	for _, p := range pts {
		if p.r.fam == familyBaseline || p.x > limit {
			continue
		}
		if cur, ok := best[p.r.fam]; !ok || p.y > cur.y {
			best[p.r.fam] = p
		}
		if top == nil || p.y > top.y {
			q := p
			top = &q
		}
	}
	return best, top
}

// budgetRows adds the budget table's rows of one cost axis.
func (f *findings) budgetRows(a *costAxis, pts []point, baseCost float64) {
	for _, frac := range budgetFractions {
		limit := frac * baseCost
		br := budgetRow{Axis: a.label, Label: fmt.Sprintf("≤ %d%% (%s)", int(frac*100+0.5), a.format(limit))}
		best, overall := withinBudget(pts, limit)
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
	}
}

// distillFinding compares the students trained with the teacher against
// the same architecture trained on labels alone, seed by seed (the same
// seed's two students on the same images, McNemar), as the survey reads
// distillation: the gain the teacher gives.
func distillFinding(g *group) (string, bool) {
	bySeed := map[int64][2]*row{}
	for _, r := range g.Rows {
		if !r.ok() || r.exp.Seed == nil || r.exp.Model == g.Model || (r.fam != familyDistill && r.fam != familyStudent) {
			continue
		}
		pair := bySeed[*r.exp.Seed]
		if r.fam == familyDistill {
			pair[0] = r
		} else {
			pair[1] = r
		}
		bySeed[*r.exp.Seed] = pair
	}
	var deltas []float64
	sig, n := 0, 0
	for _, pair := range bySeed {
		if pair[0] == nil || pair[1] == nil {
			continue
		}
		c := g.paired(pair[1], pair[0])
		if !c.ok {
			continue
		}
		n++
		deltas = append(deltas, c.delta.Value)
		if stats.Significant(c.p) && c.delta.Value > 0 {
			sig++
		}
	}
	if n == 0 {
		return "", false
	}
	mean := stats.Mean(deltas)
	s := fmt.Sprintf("Distillation: trained with %s as teacher, the student gains %s pts of top-1 over the same architecture trained on labels alone (mean of %s",
		quote(g.Base.exp.Name), fmtSigned(mean.Value), plural(n, "seed"))
	if !math.IsNaN(mean.Lo) {
		s += ", t interval " + ciText(mean.Lo, mean.Hi, 1)
	}
	return s + fmt.Sprintf("); the gain is significant (McNemar, same images) for %d of %d seeds.", sig, n), true
}

// combinationFindings states which single-technique experiments a
// combination dominates: no more costly on every executed axis and at
// least as accurate, with the paired test of the accuracy difference.
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
	var out []string
	for _, c := range combos {
		var sig, same, untested []string
		for _, s := range singles {
			if !dominates(c, s, costAxes) {
				continue
			}
			switch cmp := g.paired(s, c); {
			case !cmp.ok:
				untested = append(untested, quote(s.exp.Name))
			case stats.Significant(cmp.p):
				sig = append(sig, fmt.Sprintf("%s (%s pts, %s)", quote(s.exp.Name), fmtSigned(cmp.delta.Value), pText(cmp.p)))
			default:
				same = append(same, quote(s.exp.Name))
			}
		}
		n := len(sig) + len(same) + len(untested)
		if n == 0 {
			continue
		}
		s := fmt.Sprintf("The combination %s (%s) is no more costly on every executed axis and no less accurate than %s", quote(c.exp.Name), c.set, plural(n, "single-technique experiment"))
		if len(sig) > 0 {
			s += "; it is significantly more accurate than " + nameList(sig, 6)
		}
		if len(same) > 0 {
			s += "; no significant difference in top-1 to " + nameList(same, 6)
		}
		if len(untested) > 0 {
			s += "; top-1 differences not tested (no per-image outcomes) to " + nameList(untested, 6)
		}
		out = append(out, s+".")
	}
	if len(out) == 0 {
		out = append(out, fmt.Sprintf("None of the %d combinations is at least as accurate and no more costly than a single-technique experiment.", len(combos)))
	}
	return out
}

// comparison is a paired accuracy comparison of two experiments.
type comparison struct {
	delta stats.Estimate // b's top-1 minus a's, points
	p     float64
	ok    bool
}

// paired compares b's top-1 against a's: image by image when both were
// evaluated on the same images (paired bootstrap interval, McNemar's
// test), as two proportions otherwise, as the runner compares an
// experiment with its baseline. Results are kept: findings ask for the
// same pairs on several pages.
func (g *group) paired(a, b *row) comparison {
	k := [2]*row{a, b}
	if c, ok := g.pairs[k]; ok {
		return c
	}
	var c comparison
	oa, ok1 := a.exp.Outcome(metrics.Top1)
	ob, ok2 := b.exp.Outcome(metrics.Top1)
	switch {
	case !ok1 || !ok2 || oa.N == 0 || ob.N == 0:
	case oa.Images == ob.Images && oa.N == ob.N:
		c.delta, c.p = stats.PairedDelta(oa.Bits, ob.Bits, oa.N)
		c.ok = !math.IsNaN(c.p)
	default:
		c.delta, c.p = stats.ProportionDelta(stats.Bits(oa.Bits).Count(oa.N), oa.N, stats.Bits(ob.Bits).Count(ob.N), ob.N)
		c.ok = !math.IsNaN(c.p)
	}
	if g.pairs == nil {
		g.pairs = map[[2]*row]comparison{}
	}
	g.pairs[k] = c
	return c
}

// dedupe drops repeated sentences, keeping the first.
func dedupe(ss []string) []string {
	seen := map[string]bool{}
	out := ss[:0]
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
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
