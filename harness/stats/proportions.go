package stats

import (
	"math"

	"github.com/aclements/go-moremath/stats"
)

// TwoProportions is the two-sided p-value of the pooled two-proportion z
// test that k1 of n1 and k2 of n2 come from the same rate: the test for
// accuracies measured on different images, where no pairing is possible.
// It is NaN when either n is not positive, and 1 when the pooled rate is 0
// or 1 (no difference can be seen).
func TwoProportions(k1, n1, k2, n2 int) float64 {
	if n1 <= 0 || n2 <= 0 {
		return math.NaN()
	}
	p1, p2 := float64(k1)/float64(n1), float64(k2)/float64(n2)
	pool := float64(k1+k2) / float64(n1+n2)
	se := math.Sqrt(pool * (1 - pool) * (1/float64(n1) + 1/float64(n2)))
	if se == 0 {
		return 1
	}
	z := math.Abs(p1-p2) / se
	return math.Min(1, 2*(1-stats.NormalDist{Mu: 0, Sigma: 1}.CDF(z)))
}
