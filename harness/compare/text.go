package compare

import (
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/store"
)

// Label names the i'th run in tables: A, B, ..., Z, then R27, R28, ...
func Label(i int) string {
	if i < 26 {
		return string(rune('A' + i))
	}
	return fmt.Sprintf("R%d", i+1)
}

// RunLine describes run r in one line: its number and UUID, machine, CPU,
// SIMD flags, threads and device, commit, start date and suite.
func RunLine(r store.Run) string {
	m := r.Machine
	parts := []string{fmt.Sprintf("run %d %s", r.ID, short(r.UUID, 8)), m.Hostname, m.CPU}
	if m.GPU != "" {
		parts = append(parts, m.GPU)
	}
	simd := r.SIMD
	if simd == "" {
		simd = "SIMD unknown"
	}
	parts = append(parts, simd, fmt.Sprintf("%d threads %s", r.Threads, r.Device))
	commit := "commit unknown"
	if r.GitCommit != "" {
		commit = "commit " + short(r.GitCommit, 10)
	}
	parts = append(parts, commit, r.Started.UTC().Format("2006-01-02 15:04 UTC"), "suite "+r.SuiteName)
	return strings.Join(parts, " · ")
}

func short(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// WriteText prints c as benchstat does: the runs, then one table per
// metric with each run's value ± its interval and, for every later run,
// the delta to the first with its p-value ("~" where not significant).
func (c *Comparison) WriteText(w io.Writer) error {
	var b strings.Builder
	for i, r := range c.Runs {
		fmt.Fprintf(&b, "%s: %s\n", Label(i), RunLine(r.Run))
	}
	for _, t := range c.Tables {
		b.WriteString("\n")
		writeTable(&b, t, len(c.Runs))
	}
	var notes []string
	for _, t := range c.Tables {
		notes = append(notes, t.Warnings...)
	}
	notes = append(notes, c.Warnings...)
	if len(notes) > 0 {
		b.WriteString("\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "note: %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeTable lays out one table in columns: the name, then per run its
// value, and for later runs the delta and the test.
func writeTable(b *strings.Builder, t Table, nRuns int) {
	rows := t.Rows
	if t.Summary != nil {
		rows = append(rows[:len(rows):len(rows)], *t.Summary)
	}
	type cells struct{ value, delta, test []string }
	cols := make([]cells, nRuns)
	nameW := 0
	for _, r := range rows {
		nameW = max(nameW, width(r.Name))
	}
	for i := range nRuns {
		for k, r := range rows {
			c := r.Cells[i]
			summary := t.Summary != nil && k == len(rows)-1
			cols[i].value = append(cols[i].value, formatValue(t, c, summary))
			if i > 0 {
				d, test := formatDelta(t, c, summary)
				cols[i].delta = append(cols[i].delta, d)
				cols[i].test = append(cols[i].test, test)
			}
		}
	}
	unit := unitLabel(t)
	valueW := make([]int, nRuns)
	deltaW := make([]int, nRuns)
	testW := make([]int, nRuns)
	groupW := make([]int, nRuns)
	for i := range nRuns {
		valueW[i] = max(maxWidth(cols[i].value), width(unit))
		groupW[i] = valueW[i]
		if i > 0 {
			deltaW[i] = maxWidth(cols[i].delta)
			testW[i] = maxWidth(cols[i].test)
			// "vs base" heads the delta and test columns.
			if extra := width("vs base") - (deltaW[i] + 1 + testW[i]); extra > 0 {
				testW[i] += extra
			}
			groupW[i] += 2 + deltaW[i] + 1 + testW[i]
		}
	}
	fmt.Fprintf(b, "%s\n", t.Label)
	// Two header lines: the run labels, then the unit and "vs base".
	for line := 0; line < 2; line++ {
		b.WriteString(strings.Repeat(" ", nameW))
		for i := range nRuns {
			b.WriteString(" │ ")
			if line == 0 {
				b.WriteString(center(Label(i), groupW[i]))
				continue
			}
			head := center(unit, valueW[i])
			if i > 0 {
				head += "  " + pad(false, "vs base", deltaW[i]+1+testW[i])
			}
			b.WriteString(head)
		}
		b.WriteString(" │\n")
	}
	for k, r := range rows {
		b.WriteString(pad(false, r.Name, nameW))
		for i := range nRuns {
			b.WriteString("   ")
			b.WriteString(pad(true, cols[i].value[k], valueW[i]))
			if i > 0 {
				b.WriteString("  " + pad(true, cols[i].delta[k], deltaW[i]) + " " + pad(false, cols[i].test[k], testW[i]))
			}
		}
		b.WriteString("\n")
	}
	// Trailing spaces of left-aligned last columns carry nothing.
	s := b.String()
	b.Reset()
	for _, l := range strings.SplitAfter(s, "\n") {
		b.WriteString(strings.TrimRight(l, " \n"))
		if strings.HasSuffix(l, "\n") {
			b.WriteString("\n")
		}
	}
}

func width(s string) int { return utf8.RuneCountInString(s) }

func maxWidth(ss []string) int {
	w := 0
	for _, s := range ss {
		w = max(w, width(s))
	}
	return w
}

// pad pads s to w runes, on the left when right is set.
func pad(right bool, s string, w int) string {
	n := w - width(s)
	if n <= 0 {
		return s
	}
	if right {
		return strings.Repeat(" ", n) + s
	}
	return s + strings.Repeat(" ", n)
}

func center(s string, w int) string {
	n := w - width(s)
	if n <= 0 {
		return s
	}
	return strings.Repeat(" ", n/2) + s + strings.Repeat(" ", n-n/2)
}

// unitLabel is the unit heading t's value columns.
func unitLabel(t Table) string {
	switch t.Unit {
	case metrics.UnitPercent:
		return "%"
	case metrics.UnitCount, "":
		return "count"
	case metrics.UnitSeconds:
		return "sec"
	case metrics.UnitBytes:
		return "bytes" // not "B", which names a run
	}
	return t.Unit
}

// formatValue writes a cell's value with its interval: accuracy ± its
// half-width in points, other measurements ± percent of the value as
// benchstat does; exact metrics and summaries without one.
func formatValue(t Table, c Cell, summary bool) string {
	if !c.Present {
		return ""
	}
	v := FormatValue(t.Unit, c.Value)
	if summary || math.IsNaN(c.Lo) || math.IsNaN(c.Hi) {
		return v
	}
	half := math.Max(c.Hi-c.Value, c.Value-c.Lo)
	switch {
	case math.IsInf(half, 0):
		return v + " ± ∞"
	case t.Unit == metrics.UnitPercent:
		return fmt.Sprintf("%s ± %.2f", v, half)
	case c.Value == 0:
		return v
	}
	return fmt.Sprintf("%s ± %.0f%%", v, 100*half/math.Abs(c.Value))
}

// formatDelta writes a later run's delta ("~" when not significant) and
// its test: "(p=0.012 n=10000)", "(exact)", or why there is none.
func formatDelta(t Table, c Cell, summary bool) (delta, test string) {
	if !c.Present || math.IsNaN(c.Delta) {
		return "", ""
	}
	d := fmt.Sprintf("%+.2f%%", c.Delta)
	if t.Kind == Accuracy {
		d = fmt.Sprintf("%+.2fpt", c.Delta)
	}
	if c.Delta == 0 {
		d = strings.TrimPrefix(d, "+")
	}
	switch {
	case summary:
		return d, ""
	case c.Test == "exact":
		if !c.Significant {
			return "~", "(exact)"
		}
		return d, "(exact)"
	case c.Test == "" || math.IsNaN(c.P):
		return d, "(" + noTest(t.Kind) + ")"
	}
	n := fmt.Sprintf("n=%d", c.N)
	if c.BaseN != c.N {
		n = fmt.Sprintf("n=%d+%d", c.BaseN, c.N)
	}
	if !c.Significant {
		d = "~"
	}
	return d, fmt.Sprintf("(p=%.3f %s)", c.P, n)
}

// noTest says why a delta of kind k has no p-value.
func noTest(k Kind) string {
	switch k {
	case Accuracy:
		return "no outcomes"
	case Timing:
		return "no samples"
	}
	return "no test"
}

// FormatValue writes v, stored in unit, with four significant digits and a
// scale suffix: 71.23 (%), 3.201ms, 21.91MiB, 5.717M, 312.5 (img/s).
func FormatValue(unit string, v float64) string {
	switch unit {
	case metrics.UnitPercent:
		return fmt.Sprintf("%.2f", v)
	case metrics.UnitSeconds:
		return scaled(v, 1000, []string{"s", "ms", "µs", "ns"}, true)
	case metrics.UnitBytes:
		return scaled(v, 1024, []string{"B", "KiB", "MiB", "GiB", "TiB"}, false)
	case metrics.UnitCount, metrics.UnitOps:
		return scaled(v, 1000, []string{"", "K", "M", "G", "T"}, false)
	}
	return sig4(v)
}

// scaled divides (or, for down, multiplies) v by base until it reads in
// [1, base), and appends that step's suffix.
func scaled(v, base float64, suffixes []string, down bool) string {
	i := 0
	a := math.Abs(v)
	if down {
		for i < len(suffixes)-1 && a != 0 && a < 1 {
			a, v, i = a*base, v*base, i+1
		}
	} else {
		for i < len(suffixes)-1 && a >= base {
			a, v, i = a/base, v/base, i+1
		}
	}
	if i == 0 && !down && v == math.Trunc(v) {
		return fmt.Sprintf("%.0f%s", v, suffixes[0])
	}
	return sig4(v) + suffixes[i]
}

// sig4 writes v with four significant digits, without an exponent.
func sig4(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Sprint(v)
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 10:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}
