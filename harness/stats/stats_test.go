package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestProportion(t *testing.T) {
	for _, c := range []struct {
		k, n          int
		value, lo, hi float64
	}{
		// Wilson score intervals, computed independently in Python from the formula.
		{7, 10, 70, 39.678, 89.221},
		{0, 10, 0, 0, 27.753},
		{10, 10, 100, 72.247, 100},
		{7022, 10000, 70.22, 69.316, 71.108},
	} {
		e := Proportion(c.k, c.n)
		if !near(e.Value, c.value, 1e-9) || !near(e.Lo, c.lo, 1e-3) || !near(e.Hi, c.hi, 1e-3) {
			t.Errorf("Proportion(%d, %d) = %+v, want %v [%v, %v]", c.k, c.n, e, c.value, c.lo, c.hi)
		}
	}
	if e := Proportion(0, 0); !math.IsNaN(e.Value) {
		t.Errorf("Proportion(0, 0) = %+v, want NaN", e)
	}
}

func TestMcNemar(t *testing.T) {
	for _, c := range []struct {
		b, c int
		p    float64
	}{
		{10, 2, 2 * (1 + 12 + 66) / 4096.0},
		{2, 10, 2 * (1 + 12 + 66) / 4096.0},
		{5, 5, 1},
		{0, 0, 1},
		{0, 6, 2 / 64.0},
	} {
		if p := McNemar(c.b, c.c); !near(p, c.p, 1e-12) {
			t.Errorf("McNemar(%d, %d) = %v, want %v", c.b, c.c, p, c.p)
		}
	}
}

func TestMean(t *testing.T) {
	e := Mean([]float64{1, 2, 3})
	// t(0.975, 2) = 4.302653; sd 1, se 1/sqrt(3).
	half := 4.302653 / math.Sqrt(3)
	if !near(e.Value, 2, 1e-12) || !near(e.Lo, 2-half, 1e-4) || !near(e.Hi, 2+half, 1e-4) {
		t.Errorf("Mean = %+v, want 2 ± %v", e, half)
	}
	if e := Mean([]float64{5}); e.Value != 5 || !math.IsNaN(e.Lo) {
		t.Errorf("Mean of one = %+v, want 5 with no interval", e)
	}
}

// outcomes draws n images' correctness for two models: both right with
// probability both, only the first with onlyA, only the second with onlyB.
func outcomes(n int, both, onlyA, onlyB float64, seed uint64) (Bits, Bits) {
	rng := rand.New(rand.NewPCG(seed, 7))
	a, b := NewBits(n), NewBits(n)
	for i := 0; i < n; i++ {
		u := rng.Float64()
		switch {
		case u < both:
			a.Set(i)
			b.Set(i)
		case u < both+onlyA:
			a.Set(i)
		case u < both+onlyA+onlyB:
			b.Set(i)
		}
	}
	return a, b
}

func TestPairedDelta(t *testing.T) {
	const n = 10000
	for _, c := range []struct {
		name               string
		both, onlyA, onlyB float64
		significant        bool
	}{
		// A true 2-point loss among 6% discordant images.
		{"true difference", 0.66, 0.04, 0.02, true},
		// The same accuracy: discordant images split evenly.
		{"null", 0.66, 0.03, 0.03, false},
		{"identical", 0.70, 0, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := outcomes(n, c.both, c.onlyA, c.onlyB, 1)
			d, p := PairedDelta(a, b, n)
			want := 100 * float64(b.Count(n)-a.Count(n)) / n
			if !near(d.Value, want, 1e-9) {
				t.Errorf("delta %v, want %v", d.Value, want)
			}
			if Significant(p) != c.significant {
				t.Errorf("p = %v: significant %v, want %v", p, Significant(p), c.significant)
			}
			if !(d.Lo <= d.Value && d.Value <= d.Hi) {
				t.Errorf("interval [%v, %v] does not hold %v", d.Lo, d.Hi, d.Value)
			}
			// The interval excludes 0 exactly when the test rejects, up
			// to the two methods' small disagreement near the edge.
			if c.significant && !(d.Hi < 0 || d.Lo > 0) {
				t.Errorf("interval [%v, %v] holds 0 for a true difference", d.Lo, d.Hi)
			}
			if !c.significant && c.onlyA > 0 && !(d.Lo < 0 && d.Hi > 0) {
				t.Errorf("interval [%v, %v] excludes 0 under the null", d.Lo, d.Hi)
			}
			// Paired resampling is much tighter than two independent
			// 95% Wilson intervals would suggest (about ±1.3 points each).
			if c.onlyA > 0 && d.Hi-d.Lo > 1.5 {
				t.Errorf("paired interval width %v, want under 1.5 points", d.Hi-d.Lo)
			}
		})
	}
	if d, p := PairedDelta(nil, nil, 0); !math.IsNaN(d.Value) || !math.IsNaN(p) {
		t.Errorf("no images: %+v p=%v, want NaN", d, p)
	}
}

func TestMedianAndCompare(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	draw := func(n int, centre float64) []float64 {
		s := make([]float64, n)
		for i := range s {
			s[i] = centre * (1 + 0.05*rng.NormFloat64())
		}
		return s
	}
	a, b, a2 := draw(20, 10e-3), draw(20, 12e-3), draw(20, 10e-3)
	m := Median(a)
	if !(m.Lo <= m.Value && m.Value <= m.Hi) || math.IsInf(m.Lo, 0) {
		t.Errorf("Median = %+v, want a finite interval around the median", m)
	}
	if p := Compare(a, b); !Significant(p) {
		t.Errorf("Compare of a 20%% slower sample: p = %v, want significant", p)
	}
	if p := Compare(a, a2); Significant(p) {
		t.Errorf("Compare of two samples of one distribution: p = %v, want not significant", p)
	}
	if m := Median(a[:3]); !math.IsInf(m.Lo, -1) {
		t.Errorf("Median of 3 = %+v, want an unbounded interval", m)
	}
	if p := Compare(nil, a); !math.IsNaN(p) {
		t.Errorf("Compare with no samples = %v, want NaN", p)
	}
}

func TestProportionDelta(t *testing.T) {
	// 70% of 5,000 against 68% of 5,000: pooled 69%, z = 2.162, p = 0.0306.
	d, p := ProportionDelta(3500, 5000, 3400, 5000)
	if !near(d.Value, -2, 1e-9) || !near(p, 0.0306, 1e-4) || !(d.Lo < -2 && d.Hi > -2 && d.Hi < 0) {
		t.Errorf("ProportionDelta = %+v p=%v, want -2 with an interval below 0 and p 0.0306", d, p)
	}
	if _, p := ProportionDelta(3500, 5000, 3480, 5000); Significant(p) {
		t.Errorf("0.4 points apart on 5,000 images: p = %v, want not significant", p)
	}
}

func TestRatioOfMedians(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	draw := func(n int, centre float64) []float64 {
		s := make([]float64, n)
		for i := range s {
			s[i] = centre * (1 + 0.03*rng.NormFloat64())
		}
		return s
	}
	base, fast := draw(50, 10e-3), draw(50, 8e-3)
	r, p := RatioOfMedians(base, fast)
	if !(r.Lo < r.Value && r.Value < r.Hi) || !near(r.Value, 1.25, 0.03) || r.Lo < 1.15 || !Significant(p) {
		t.Errorf("speed-up of a 20%% faster graph = %+v p=%v, want about 1.25, interval above 1.15, significant", r, p)
	}
	same, p := RatioOfMedians(base, base)
	if same.Value != 1 || Significant(p) {
		t.Errorf("a graph against itself = %+v p=%v, want 1 and not significant", same, p)
	}
}
