package reports

import (
	"fmt"
	"math"
	"strings"
)

// geomean is the geometric mean of per-row ratios, benchstat style: rows
// without a ratio are left out and named in a warning rather than
// failing, so a reader knows when two means cover different row sets.
type geomean struct {
	Value    float64 // NaN when no row has a ratio
	N        int     // rows that contributed
	Total    int     // rows considered
	Warnings []error
}

// geomeanOf takes the geometric mean of ratio(row) over the named rows.
// Ratios that are missing, zero or negative are left out with a warning
// that names the rows.
func geomeanOf(what string, names []string, ratio func(i int) (float64, bool)) geomean {
	g := geomean{Value: math.NaN(), Total: len(names)}
	var sum float64
	var missing, invalid []string
	for i, name := range names {
		v, ok := ratio(i)
		switch {
		case !ok:
			missing = append(missing, name)
			continue
		case v <= 0 || math.IsNaN(v) || math.IsInf(v, 0):
			invalid = append(invalid, name)
			continue
		}
		sum += math.Log(v)
		g.N++
	}
	if g.N > 0 {
		g.Value = math.Exp(sum / float64(g.N))
	}
	if len(missing) > 0 {
		g.Warnings = append(g.Warnings, fmt.Errorf("%s: geomean over %d of %d rows; no ratio for %s", what, g.N, g.Total, nameList(missing, 5)))
	}
	if len(invalid) > 0 {
		g.Warnings = append(g.Warnings, fmt.Errorf("%s: ratio not positive for %s, left out", what, nameList(invalid, 5)))
	}
	return g
}

// setDiff warns when two row sets differ, the way benchstat warns that a
// geomean compares different benchmark sets.
func setDiff(what, aLabel, bLabel string, a, b []string) error {
	inA := map[string]bool{}
	for _, x := range a {
		inA[x] = true
	}
	inB := map[string]bool{}
	for _, x := range b {
		inB[x] = true
	}
	var onlyA, onlyB []string
	for _, x := range a {
		if !inB[x] {
			onlyA = append(onlyA, x)
		}
	}
	for _, x := range b {
		if !inA[x] {
			onlyB = append(onlyB, x)
		}
	}
	if len(onlyA) == 0 && len(onlyB) == 0 {
		return nil
	}
	var parts []string
	if len(onlyA) > 0 {
		parts = append(parts, fmt.Sprintf("%d only in %s (%s)", len(onlyA), aLabel, nameList(onlyA, 5)))
	}
	if len(onlyB) > 0 {
		parts = append(parts, fmt.Sprintf("%d only in %s (%s)", len(onlyB), bLabel, nameList(onlyB, 5)))
	}
	return fmt.Errorf("%s: experiment sets differ: %s; the geomean covers the %d in both", what, strings.Join(parts, ", "), len(a)-len(onlyA))
}

// nameList joins up to max names and says how many more there are.
func nameList(names []string, max int) string {
	if len(names) <= max {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:max], ", "), len(names)-max)
}
