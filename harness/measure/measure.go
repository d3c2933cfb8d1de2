// Package measure times a model's forward pass the way timm's benchmark
// script does: fixed threads, untimed warm-up, then per-iteration wall
// times under no-grad, summarised by percentiles; throughput from a larger
// batch. Timing happens on one pinned OS thread so libtorch's thread-local
// state (grad mode, OpenMP's thread count) stays put.
package measure

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sort"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
)

// Options of a latency measurement.
type Options struct {
	Batch  int
	Warmup int
	Iters  int
	Device gotch.Device
}

// Latency is the outcome of a measurement.
type Latency struct {
	Batch      int       `json:"batch"`
	Device     string    `json:"device"`
	Samples    []float64 `json:"-"` // seconds per iteration
	P50        float64   `json:"p50_s"`
	P90        float64   `json:"p90_s"`
	P99        float64   `json:"p99_s"`
	Throughput float64   `json:"throughput_ips"` // batch / median time
}

// Percentile returns the p-th percentile (0..100) of sorted values, by
// linear interpolation between closest ranks.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	if len(sorted) == 1 {
		return sorted[0]
	}
	pos := p / 100 * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return sorted[lo] + (sorted[hi]-sorted[lo])*(pos-float64(lo))
}

// Forward measures m on random input of the model's shape.
func Forward(ctx context.Context, m *vit.Model, o Options) (*Latency, error) {
	if o.Batch <= 0 || o.Iters <= 0 || o.Warmup < 0 {
		return nil, fmt.Errorf("measure: batch %d, iters %d, warmup %d: want batch, iters >= 1", o.Batch, o.Iters, o.Warmup)
	}
	if o.Device.Name == "" {
		o.Device = gotch.CPU
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c := m.Cfg
	x := ts.MustRandn([]int64{int64(o.Batch), int64(c.InChans), int64(c.ImgSize), int64(c.ImgSize)}, gotch.Float, o.Device)
	defer x.MustDrop()
	samples := make([]float64, 0, o.Iters)
	// Collect the garbage earlier work left (a data set just loaded is
	// hundreds of MB) now, as testing.B does before a benchmark: a
	// collection during the timed passes takes a core from libtorch's
	// threads. (It did not cure the slow first experiment of a warm run
	// on this VM, 4.7-7.3 ms against 2.5 ms; that cause is still open.)
	runtime.GC()
	var err error
	ts.NoGrad(func() {
		for i := 0; i < o.Warmup+o.Iters; i++ {
			if err = ctx.Err(); err != nil {
				return
			}
			start := time.Now()
			y := m.Forward(x)
			if o.Device.IsCuda() {
				// Kernels run asynchronously; reading a value waits for them.
				_ = y.MustSum(gotch.Float, false).Float64Values(true)
			}
			elapsed := time.Since(start).Seconds()
			y.MustDrop()
			if i >= o.Warmup {
				samples = append(samples, elapsed)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	sorted := append([]float64(nil), samples...)
	sort.Float64s(sorted)
	l := &Latency{Batch: o.Batch, Device: o.Device.Name, Samples: samples,
		P50: Percentile(sorted, 50), P90: Percentile(sorted, 90), P99: Percentile(sorted, 99)}
	l.Throughput = float64(o.Batch) / l.P50
	return l, nil
}
