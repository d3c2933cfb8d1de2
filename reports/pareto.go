package reports

import (
	"math"
	"sort"

	"github.com/vitbench/vitbench/harness/metrics"
)

// point is one experiment on a trade-off plane: x is a cost (lower is
// better), y is top-1 (higher is better).
type point struct {
	x, y float64
	r    *row
}

// paretoFront returns the points no other point dominates (at most the
// cost and at least the accuracy, one of them strictly), sorted by cost.
// Of points equal in both, the first is kept.
func paretoFront(pts []point) []point {
	s := make([]point, 0, len(pts))
	for _, p := range pts {
		if !math.IsNaN(p.x) && !math.IsNaN(p.y) {
			s = append(s, p)
		}
	}
	sort.SliceStable(s, func(i, j int) bool {
		if s[i].x != s[j].x {
			return s[i].x < s[j].x
		}
		return s[i].y > s[j].y
	})
	var front []point
	best := math.Inf(-1)
	for _, p := range s {
		if p.y > best {
			front = append(front, p)
			best = p.y
		}
	}
	return front
}

// layeredPoint is a point with its Pareto layer.
type layeredPoint struct {
	point
	layer int
}

// paretoLayers sorts points by non-dominated layer (1 is the Pareto
// front, 2 the front of what remains, and so on) and within a layer by
// cost.
func paretoLayers(pts []point) []layeredPoint {
	rest := append([]point(nil), pts...)
	var out []layeredPoint
	for layer := 1; len(rest) > 0; layer++ {
		front := paretoFront(rest)
		if len(front) == 0 {
			break // only NaN points remain
		}
		in := map[*row]bool{}
		for _, p := range front {
			in[p.r] = true
			out = append(out, layeredPoint{p, layer})
		}
		next := rest[:0]
		for _, p := range rest {
			if !in[p.r] {
				next = append(next, p)
			}
		}
		rest = next
	}
	return out
}

// axisPoints returns the successful rows that have top-1 and the axis's
// cost as points.
func axisPoints(rows []*row, a *costAxis) []point {
	var pts []point
	for _, r := range rows {
		if !r.ok() {
			continue
		}
		y, ok := r.get(metrics.Top1)
		if !ok {
			continue
		}
		x, ok := a.value(r)
		if !ok {
			continue
		}
		pts = append(pts, point{x: x, y: y, r: r})
	}
	return pts
}

// dominates reports whether a is at least as accurate as b and no more
// costly on every axis both have, and strictly better on one. Rows that
// share no cost axis do not dominate each other.
func dominates(a, b *row, axes []*costAxis) bool {
	ya, ok1 := a.get(metrics.Top1)
	yb, ok2 := b.get(metrics.Top1)
	if !ok1 || !ok2 || ya < yb {
		return false
	}
	strict := ya > yb
	compared := 0
	for _, ax := range axes {
		if ax == axisLatency && latencySetup(a.run) != latencySetup(b.run) {
			continue // measured on different machines
		}
		xa, ok1 := ax.value(a)
		xb, ok2 := ax.value(b)
		if !ok1 || !ok2 {
			continue
		}
		compared++
		if xa > xb {
			return false
		}
		if xa < xb {
			strict = true
		}
	}
	return compared > 0 && strict
}
