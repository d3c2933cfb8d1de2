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
	"slices"
	"sort"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// Options of a latency measurement.
type Options struct {
	Batch  int
	Warmup int
	Iters  int
	Device gotch.Device
	// Split, when above 1 on the CPU, runs each pass split over that many
	// threads of one intra-op thread each (vit.Parallel), OpenBLAS's pool
	// set to one thread meanwhile. Otherwise the pass runs on the
	// caller's thread with its libtorch thread count, as PyTorch eager
	// runs it.
	Split int
	// Auto, with Split, times autoProbe passes split and as many eager
	// after the warm-up and runs the faster way (Latency.Split says
	// which).
	Auto bool
}

// autoProbe is how many passes each way Auto times to choose.
const autoProbe = 5

// choose returns o with the faster of splitting and eager for m at
// o.Batch: autoProbe alternating passes each, the lower median wins (a
// tie keeps eager, the simpler).
func choose(ctx context.Context, m *vit.Model, o Options) (Options, error) {
	if !o.Auto || splitOf(o) == 0 {
		o.Auto = false
		return o, nil
	}
	split, eager := o, o
	split.Auto, eager.Auto, eager.Split = false, false, 0
	for _, w := range []Options{split, eager} {
		if _, err := passes(ctx, m, w, 2, 0); err != nil { // both warm before either is timed
			return o, err
		}
	}
	var sp, ea []float64
	for range autoProbe {
		s, err := passes(ctx, m, split, 0, 1)
		if err != nil {
			return o, err
		}
		e, err := passes(ctx, m, eager, 0, 1)
		if err != nil {
			return o, err
		}
		sp, ea = append(sp, s...), append(ea, e...)
	}
	if splitFaster(sp, ea) {
		return split, nil
	}
	return eager, nil
}

// splitFaster reports whether the split passes' median is below the eager
// ones' (a tie keeps eager, the simpler).
func splitFaster(split, eager []float64) bool {
	sp, ea := slices.Sorted(slices.Values(split)), slices.Sorted(slices.Values(eager))
	return percentile(sp, 50) < percentile(ea, 50)
}

// Latency is the outcome of a measurement.
type Latency struct {
	Batch      int       `json:"batch"`
	Device     string    `json:"device"`
	Samples    []float64 `json:"-"` // seconds per iteration
	Rounds     []int     `json:"-"` // the interleaved round of each sample; nil when not interleaved
	P50        float64   `json:"p50_s"`
	P90        float64   `json:"p90_s"`
	P99        float64   `json:"p99_s"`
	Throughput float64   `json:"throughput_ips"`  // batch / median time
	Split      int       `json:"split,omitempty"` // threads each pass was split over (Options.Split); 0: not split
}

// percentile returns the p-th percentile (0..100) of sorted values, by
// linear interpolation between closest ranks.
func percentile(sorted []float64, p float64) float64 {
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
	if err := o.check(); err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	collectGarbage()
	o, err := choose(ctx, m, o)
	if err != nil {
		return nil, err
	}
	samples, err := passes(ctx, m, o, o.Warmup, o.Iters)
	if err != nil {
		return nil, err
	}
	return summarize(o, samples), nil
}

// splitOf is the number of threads o splits a pass over, 0 for none.
func splitOf(o Options) int {
	if o.Device.IsCuda() || o.Split < 2 {
		return 0
	}
	return o.Split
}

func (o *Options) check() error {
	if o.Batch <= 0 || o.Iters <= 0 || o.Warmup < 0 {
		return fmt.Errorf("measure: batch %d, iters %d, warmup %d: want batch, iters >= 1", o.Batch, o.Iters, o.Warmup)
	}
	if o.Device.Name == "" {
		o.Device = gotch.CPU
	}
	return nil
}

// passes runs warmup untimed and iters timed forward passes of m at
// o.Batch and returns the timed ones in seconds. The caller has locked
// the OS thread and collected the garbage (collectGarbage).
func passes(ctx context.Context, m *vit.Model, o Options, warmup, iters int) ([]float64, error) {
	c := m.Cfg
	x := ts.MustRandn([]int64{int64(o.Batch), int64(c.InChans), int64(c.ImgSize), int64(c.ImgSize)}, gotch.Float, o.Device)
	defer x.MustDrop()
	forward, done, err := forwarder(m, o)
	if err != nil {
		return nil, err
	}
	defer done()
	samples := make([]float64, 0, iters)
	pace := torchrt.NewPacer() // between passes too: see torchrt.Pacer
	ts.NoGrad(func() {
		for i := 0; i < warmup+iters; i++ {
			if err = ctx.Err(); err != nil {
				return
			}
			start := time.Now()
			var y *ts.Tensor
			if y, err = forward(x); err != nil {
				return
			}
			if o.Device.IsCuda() {
				// Kernels run asynchronously; reading a value waits for them.
				_ = y.MustSum(gotch.Float, false).Float64Values(true)
			}
			elapsed := time.Since(start).Seconds()
			y.MustDrop()
			if i >= warmup {
				samples = append(samples, elapsed)
			}
			pace.Tick()
		}
	})
	return samples, err
}

// forwarder returns the forward pass o asks for and a function that
// undoes its set-up. With o.Split it sets the calling thread's libtorch
// thread count and OpenBLAS's pool to one thread until done.
func forwarder(m *vit.Model, o Options) (forward func(*ts.Tensor) (*ts.Tensor, error), done func(), err error) {
	if splitOf(o) == 0 {
		return func(x *ts.Tensor) (*ts.Tensor, error) { return m.Forward(x), nil }, func() {}, nil
	}
	p, err := vit.NewParallel(m, o.Split)
	if err != nil {
		return nil, nil, err
	}
	restore := torchrt.UseThreads(1)
	return p.Forward, func() {
		p.Close()
		restore()
	}, nil
}

// collectGarbage collects the garbage earlier work left (a data set just
// loaded is hundreds of MB) before timing, as testing.B does before a
// benchmark: a collection during the timed passes takes a core from
// libtorch's threads.
func collectGarbage() { runtime.GC() }

func summarize(o Options, samples []float64) *Latency {
	sorted := append([]float64(nil), samples...)
	sort.Float64s(sorted)
	l := &Latency{Batch: o.Batch, Device: o.Device.Name, Samples: samples,
		P50: percentile(sorted, 50), P90: percentile(sorted, 90), P99: percentile(sorted, 99)}
	l.Throughput = float64(o.Batch) / l.P50
	l.Split = splitOf(o)
	return l
}

// Interleaved measures n models under each of opts, in rounds: every
// round loads each model in turn (load(i); Interleaved drops it), runs
// a share of each option's iterations on it, and moves on, so a burst of
// load from elsewhere on the machine spreads over all the models instead
// of landing on whichever one was being timed. It is how alternating
// rounds keep a side-by-side benchmark fair on a noisy machine; here it
// keeps the differences between a suite's models from being differences
// between the minutes they were timed in.
//
// Each option's Iters are split over the rounds (a round gets none once
// they run out), and its samples from all rounds are pooled. The first
// round warms each model up by Warmup passes per option, later rounds,
// with the model freshly loaded, by Warmup/rounds (at least one).
// lats[i][j] is model i under opts[j]; errs[i] says why model i has no
// results, and a model that fails is not loaded again.
func Interleaved(ctx context.Context, n int, load func(i int) (*vit.Model, error), opts []Options, rounds int) (lats [][]*Latency, errs []error) {
	lats = make([][]*Latency, n)
	errs = make([]error, n)
	opts = append([]Options(nil), opts...)
	for j := range opts {
		if err := opts[j].check(); err != nil {
			for i := range errs {
				errs[i] = err
			}
			return lats, errs
		}
	}
	maxIters := 0
	for _, o := range opts {
		maxIters = max(maxIters, o.Iters)
	}
	rounds = max(1, min(rounds, maxIters))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	samples := make([][][]float64, n)
	roundOf := make([][][]int, n)
	chosen := make([][]Options, n) // each model's options, Auto resolved in its first round
	for i := range samples {
		samples[i] = make([][]float64, len(opts))
		roundOf[i] = make([][]int, len(opts))
		chosen[i] = append([]Options(nil), opts...)
	}
	for r := 0; r < rounds; r++ {
		for i := 0; i < n; i++ {
			if errs[i] != nil {
				continue
			}
			if err := ctx.Err(); err != nil {
				errs[i] = err
				continue
			}
			m, err := load(i)
			if err != nil {
				errs[i] = err
				continue
			}
			collectGarbage()
			for j := range opts {
				o := chosen[i][j]
				iters := share(o.Iters, rounds, r)
				if iters == 0 {
					continue
				}
				if o.Auto {
					if o, err = choose(ctx, m, o); err != nil {
						errs[i] = err
						break
					}
					chosen[i][j] = o
				}
				warmup := o.Warmup
				if r > 0 && warmup > 0 {
					warmup = max(1, o.Warmup/rounds)
				}
				s, err := passes(ctx, m, o, warmup, iters)
				if err != nil {
					errs[i] = err
					break
				}
				samples[i][j] = append(samples[i][j], s...)
				for range s {
					roundOf[i][j] = append(roundOf[i][j], r)
				}
			}
			m.Drop()
		}
	}
	for i := range lats {
		if errs[i] != nil {
			continue
		}
		lats[i] = make([]*Latency, len(opts))
		for j, o := range chosen[i] {
			lats[i][j] = summarize(o, samples[i][j])
			lats[i][j].Rounds = roundOf[i][j]
		}
	}
	return lats, errs
}

// share is round r's part of iters split over rounds, the remainder
// going to the first rounds.
func share(iters, rounds, r int) int {
	n := iters / rounds
	if r < iters%rounds {
		n++
	}
	return n
}
