package stats

import (
	"math"
	"testing"
)

func TestTwoProportions(t *testing.T) {
	for _, c := range []struct {
		name           string
		k1, n1, k2, n2 int
		p              float64 // NaN: want NaN
	}{
		// p = erfc(z/sqrt 2) with the pooled z, computed independently in Python.
		{"different", 700, 1000, 600, 1000, 2.757906e-06},
		{"close", 700, 1000, 710, 1000, 0.623908},
		{"unequal n", 3500, 5000, 7000, 10000, 1},
		{"all correct", 10, 10, 20, 20, 1},
		{"none", 0, 0, 5, 10, math.NaN()},
	} {
		p := TwoProportions(c.k1, c.n1, c.k2, c.n2)
		switch {
		case math.IsNaN(c.p):
			if !math.IsNaN(p) {
				t.Errorf("%s: p = %v, want NaN", c.name, p)
			}
		case !near(p, c.p, 1e-4*math.Max(c.p, 1e-3)):
			t.Errorf("%s: p = %v, want %v", c.name, p, c.p)
		}
	}
}
