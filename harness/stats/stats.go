// Package stats gives vitbench's numbers their intervals and its
// differences their p-values: accuracy from per-image outcomes (Wilson
// intervals; paired bootstrap intervals and exact McNemar tests on the same
// images), means across seeds (Student's t), and timings the way benchstat
// treats them (golang.org/x/perf/benchmath: medians with order-statistic
// intervals, Mann-Whitney U tests). Every interval is 95%.
package stats

import (
	"math"
	"math/rand/v2"
	"sort"

	"github.com/aclements/go-moremath/stats"
	"golang.org/x/perf/benchmath"
)

// Confidence is the level of every interval; Alpha the level below which
// a p-value marks a difference as significant.
const (
	Confidence = 0.95
	Alpha      = 1 - Confidence
)

// Significant reports whether p marks a difference as real at Alpha. A NaN
// p (no test possible) is not significant.
func Significant(p float64) bool { return p < Alpha }

// Estimate is a value with its 95% interval. Lo and Hi are NaN when no
// interval can be given (too few observations), and ±Inf where benchmath
// says the interval is unbounded.
type Estimate struct {
	Value, Lo, Hi float64
}

// Proportion is k successes in n trials in percent, with Wilson's score
// interval, which keeps its coverage near 0% and 100% where the normal
// approximation does not.
func Proportion(k, n int) Estimate {
	if n <= 0 {
		return Estimate{math.NaN(), math.NaN(), math.NaN()}
	}
	z := stats.NormalDist{Mu: 0, Sigma: 1}.InvCDF(1 - Alpha/2)
	p := float64(k) / float64(n)
	nf := float64(n)
	den := 1 + z*z/nf
	centre := (p + z*z/(2*nf)) / den
	half := z * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf)) / den
	return Estimate{100 * p, 100 * math.Max(0, centre-half), 100 * math.Min(1, centre+half)}
}

// Bits is per-image correctness: bit i (byte i/8, least significant bit
// first) is set when image i was classified correctly.
type Bits []byte

// NewBits returns room for n outcomes, all incorrect.
func NewBits(n int) Bits { return make(Bits, (n+7)/8) }

// Set records image i as correct.
func (b Bits) Set(i int) { b[i/8] |= 1 << (i % 8) }

// Get reports whether image i was correct.
func (b Bits) Get(i int) bool { return b[i/8]&(1<<(i%8)) != 0 }

// Count is the number of correct images among the first n.
func (b Bits) Count(n int) int {
	k := 0
	for i := 0; i < n; i++ {
		if b.Get(i) {
			k++
		}
	}
	return k
}

// bootstrapResamples is how many paired resamples PairedDelta draws; the
// interval's ends move by well under 0.1 points between seeds at 10,000
// images.
const bootstrapResamples = 2000

// PairedDelta compares two models on the same n images: the difference of
// their accuracies (other minus base) in percentage points, with a paired
// bootstrap interval (images resampled together, so what both get right or
// wrong cancels), and the exact McNemar p-value of the discordant images.
// The resampling is seeded, so the same outcomes give the same interval.
func PairedDelta(base, other Bits, n int) (Estimate, float64) {
	if n <= 0 || len(base) < (n+7)/8 || len(other) < (n+7)/8 {
		nan := math.NaN()
		return Estimate{nan, nan, nan}, nan
	}
	// Only discordant images change the difference: +1 where other alone
	// is right, -1 where base alone is.
	var gain, loss int
	for i := 0; i < n; i++ {
		a, b := base.Get(i), other.Get(i)
		switch {
		case b && !a:
			gain++
		case a && !b:
			loss++
		}
	}
	delta := 100 * float64(gain-loss) / float64(n)
	// A resample of n images is multinomial over three kinds (gain, loss,
	// tie); drawing the counts directly is the same bootstrap at a
	// fraction of the cost.
	rng := rand.New(rand.NewPCG(uint64(n), uint64(gain)<<32|uint64(loss)))
	pg, pl := float64(gain)/float64(n), float64(loss)/float64(n)
	ds := make([]float64, bootstrapResamples)
	for r := range ds {
		g, l := 0, 0
		for i := 0; i < n; i++ {
			u := rng.Float64()
			if u < pg {
				g++
			} else if u < pg+pl {
				l++
			}
		}
		ds[r] = 100 * float64(g-l) / float64(n)
	}
	sort.Float64s(ds)
	lo := ds[int(math.Floor(Alpha/2*float64(len(ds))))]
	hi := ds[int(math.Ceil((1-Alpha/2)*float64(len(ds))))-1]
	return Estimate{delta, lo, hi}, McNemar(gain, loss)
}

// McNemar is the exact two-sided McNemar p-value for b and c discordant
// pairs: a binomial test of b against b+c trials at one half.
func McNemar(b, c int) float64 {
	n := b + c
	if n == 0 {
		return 1
	}
	k := min(b, c)
	p := 2 * stats.BinomialDist{N: n, P: 0.5}.CDF(float64(k))
	return math.Min(1, p)
}

// Mean is the mean of values (one per seed) with Student's t interval; a
// single value has no interval.
func Mean(values []float64) Estimate {
	n := len(values)
	if n == 0 {
		return Estimate{math.NaN(), math.NaN(), math.NaN()}
	}
	var sum float64
	for _, v := range values {
		sum += v
	}
	mean := sum / float64(n)
	if n == 1 {
		return Estimate{mean, math.NaN(), math.NaN()}
	}
	var ss float64
	for _, v := range values {
		ss += (v - mean) * (v - mean)
	}
	se := math.Sqrt(ss/float64(n-1)) / math.Sqrt(float64(n))
	t := stats.InvCDF(stats.TDist{V: float64(n - 1)})(1 - Alpha/2)
	return Estimate{mean, mean - t*se, mean + t*se}
}

// thresholds are benchmath's, at this package's Alpha.
var thresholds = &benchmath.Thresholds{CompareAlpha: Alpha}

// Median is the median of timed samples with benchmath's distribution-free
// interval (order statistics), as benchstat reports it; the interval is
// unbounded (±Inf) below 6 samples.
func Median(samples []float64) Estimate {
	if len(samples) == 0 {
		return Estimate{math.NaN(), math.NaN(), math.NaN()}
	}
	s := benchmath.NewSample(append([]float64(nil), samples...), thresholds)
	sum := benchmath.AssumeNothing.Summary(s, Confidence)
	return Estimate{sum.Center, sum.Lo, sum.Hi}
}

// Compare is the p-value of benchmath's Mann-Whitney U test that a and b
// come from the same distribution, as benchstat tests timings; NaN when
// either is empty.
func Compare(a, b []float64) float64 {
	if len(a) == 0 || len(b) == 0 {
		return math.NaN()
	}
	sa := benchmath.NewSample(append([]float64(nil), a...), thresholds)
	sb := benchmath.NewSample(append([]float64(nil), b...), thresholds)
	// The U test's normal approximation can exceed 1 by a rounding error.
	return math.Min(1, benchmath.AssumeNothing.Compare(sa, sb).P)
}

// ProportionDelta compares accuracies measured on different images (kb of
// nb for the base, ko of no for the other): the difference in points with
// Newcombe's interval from the two Wilson intervals, and the two-sided
// p-value of the pooled two-proportion z-test. Use PairedDelta when the
// images are the same: it is far more powerful.
func ProportionDelta(kb, nb, ko, no int) (Estimate, float64) {
	if nb <= 0 || no <= 0 {
		nan := math.NaN()
		return Estimate{nan, nan, nan}, nan
	}
	b, o := Proportion(kb, nb), Proportion(ko, no)
	d := o.Value - b.Value
	lo := d - math.Sqrt(sq(o.Value-o.Lo)+sq(b.Hi-b.Value))
	hi := d + math.Sqrt(sq(o.Hi-o.Value)+sq(b.Value-b.Lo))
	return Estimate{d, lo, hi}, TwoProportions(kb, nb, ko, no)
}

func sq(x float64) float64 { return x * x }

// RatioOfMedians is median(num)/median(den) with a bootstrap interval
// (each sample resampled on its own, seeded by the data), and the
// Mann-Whitney p-value that the two differ: a measured speed-up is
// RatioOfMedians(baseline times, times).
func RatioOfMedians(num, den []float64) (Estimate, float64) {
	if len(num) == 0 || len(den) == 0 {
		nan := math.NaN()
		return Estimate{nan, nan, nan}, nan
	}
	value := median(num) / median(den)
	seed := uint64(len(num))<<32 | uint64(len(den))
	seed ^= math.Float64bits(num[0]) ^ math.Float64bits(den[0])
	rng := rand.New(rand.NewPCG(seed, 11))
	rs := make([]float64, bootstrapResamples)
	bn, bd := make([]float64, len(num)), make([]float64, len(den))
	for r := range rs {
		for i := range bn {
			bn[i] = num[rng.IntN(len(num))]
		}
		for i := range bd {
			bd[i] = den[rng.IntN(len(den))]
		}
		rs[r] = median(bn) / median(bd)
	}
	sort.Float64s(rs)
	lo := rs[int(math.Floor(Alpha/2*float64(len(rs))))]
	hi := rs[int(math.Ceil((1-Alpha/2)*float64(len(rs))))-1]
	return Estimate{value, lo, hi}, Compare(num, den)
}

// median of xs, which it sorts.
func median(xs []float64) float64 {
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}
