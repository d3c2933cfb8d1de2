package sysinfo

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Defaults of the sgemm measurement.
const (
	defaultSgemmSize   = 1024 // side of the square float32 matrices
	defaultSgemmRuns   = 10   // timed multiplies; the median is reported
	defaultSgemmWarmup = 3    // untimed multiplies first (thread pools, caches, page faults)

	// sgemmBudget bounds the timed part: on the reference BLAS each
	// 1024x1024 multiply takes a good part of a second, and ten of them
	// would make `bench env` slow for no more information.
	sgemmBudget = 2 * time.Second
)

// sgemm measures the float32 matrix multiply speed libtorch reaches on
// the CPU, through gotch: C = A·B with n×n matrices, warmup untimed runs,
// then the median of runs timed ones (fewer when each is so slow that the
// runs would exceed about two seconds, but at least three). It returns
// GFLOP/s counted as 2n³ floating-point operations per multiply.
func sgemm(ctx context.Context, n, warmup, runs int) (float64, error) {
	if n < 1 || runs < 1 || warmup < 0 {
		return 0, fmt.Errorf("sgemm: bad size %d, runs %d or warm-up %d", n, runs, warmup)
	}
	a, err := ts.Rand([]int64{int64(n), int64(n)}, gotch.Float, gotch.CPU)
	if err != nil {
		return 0, fmt.Errorf("sgemm: random %dx%d matrix: %w", n, n, err)
	}
	defer a.MustDrop()
	b, err := ts.Rand([]int64{int64(n), int64(n)}, gotch.Float, gotch.CPU)
	if err != nil {
		return 0, fmt.Errorf("sgemm: random %dx%d matrix: %w", n, n, err)
	}
	defer b.MustDrop()

	once := func() (time.Duration, error) {
		start := time.Now()
		c, err := a.Matmul(b, false)
		d := time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("sgemm: %dx%d matmul: %w", n, n, err)
		}
		c.MustDrop()
		return d, nil
	}
	for range warmup {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if _, err := once(); err != nil {
			return 0, err
		}
	}
	var times []time.Duration
	for i := 0; i < runs; i++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		d, err := once()
		if err != nil {
			return 0, err
		}
		times = append(times, d)
		if i == 0 && d > 0 && time.Duration(runs)*d > sgemmBudget {
			runs = max(3, int(sgemmBudget/d))
		}
	}
	median := medianDuration(times)
	if median <= 0 {
		return 0, fmt.Errorf("sgemm: %dx%d matmul took no measurable time", n, n)
	}
	return 2 * float64(n) * float64(n) * float64(n) / median.Seconds() / 1e9, nil
}

// medianDuration returns the median of ds (the mean of the middle two for
// an even count); ds is sorted in place.
func medianDuration(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	m := len(ds) / 2
	if len(ds)%2 == 1 {
		return ds[m]
	}
	return (ds[m-1] + ds[m]) / 2
}
