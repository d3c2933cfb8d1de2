package vit

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// Parallel runs a finished model's inference forward pass on several OS
// threads, each computing its share alone: libtorch intra-op threads 1 on
// every one of them, and the caller sets OpenBLAS's pool to one thread
// while it uses Parallel (torchrt.SetBLASThreads). A batch at least as
// large as the thread count is split into data-parallel shards of images;
// a smaller one (latency at batch 1) is split by tokens: every thread
// computes queries, keys and values of its tokens, the threads meet once
// per block so that each sees every token's keys and values, and each
// then attends from its own tokens and runs the MLP on them. Both splits
// compute the logits of one pass, up to the order in which BLAS sums
// within a product (TestParallelMatchesOnePass).
//
// Why: on few cores libtorch spends much of a pass keeping its threads in
// step. Every op is its own OpenMP region and every GEMM its own job for
// OpenBLAS's pool, so a 2-thread pass of deit_tiny wakes and waits for a
// thread hundreds of times; on this project's 2-core VMs about a fifth of
// the CPU time of a batch-64 pass went to the scheduler (perf: __schedule,
// sched_yield), in PyTorch as in gotch. Threads that each own their share
// of a pass meet once per block, or never: deit_tiny on 2 threads took
// 0.71 (batch 1) and 0.80 (batch 64) of PyTorch eager's time, where one
// pass on libtorch's 2-thread pool took 0.91 and 1.00 (make bench, five
// alternating rounds).
//
// Parallel is for inference of a finished model: taps that record
// (calibration observers) would see only their own thread's share.
type Parallel struct {
	models  []*Model // models[0] is the caller's; the others are replicas
	jobs    []chan job
	results chan jobResult
	// byTokens says whether a batch smaller than the thread count may be
	// split by tokens: not when a block reduces tokens, since the reducer
	// needs every token of its image.
	byTokens bool
}

// job is one thread's share of a pass, run on that thread's model.
type job func(m *Model) error

type jobResult struct {
	worker int
	err    error
}

// NewParallel prepares n-way inference of m: n-1 replicas of m, each on
// its own goroutine locked to an OS thread with one intra-op thread and
// autograd off. n < 2 makes a Parallel that runs m alone. Replicas, not m
// shared, because a token reducer keeps per-pass state in its model.
func NewParallel(m *Model, n int) (*Parallel, error) {
	p := &Parallel{models: []*Model{m}, results: make(chan jobResult), byTokens: Splits(m, 1, 2)}
	for i := 1; i < n; i++ {
		rep, err := m.Replicate()
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("parallel inference: %w", err)
		}
		jobs := make(chan job)
		p.models = append(p.models, rep)
		p.jobs = append(p.jobs, jobs)
		go p.work(i, rep, jobs)
	}
	return p, nil
}

// Splits reports whether n-way Parallel would split a pass of m over a
// batch of batch images, rather than run it on one thread: n > 1 and
// there are two images or more, or m reduces no tokens.
func Splits(m *Model, batch, n int) bool {
	if n < 2 {
		return false
	}
	if batch >= 2 {
		return true
	}
	for _, b := range m.Blocks {
		if b.Reducer != nil {
			return false
		}
	}
	return true
}

func (p *Parallel) work(i int, m *Model, jobs <-chan job) {
	// The thread ends with the goroutine (never unlocked), and its
	// libtorch state with it.
	runtime.LockOSThread()
	torchrt.SetNumThreads(1)
	ts.MustGradSetEnabled(false)
	for j := range jobs {
		p.results <- jobResult{i, run(j, m)}
	}
}

// run runs j on m, returning a libtorch error (a panic in gotch's Must
// functions) instead of raising it on a worker's goroutine.
func run(j job, m *Model) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return j(m)
}

// Forward returns the logits of x. The caller's goroutine computes the
// first share: it must be locked to its OS thread, with autograd off and,
// for the shares to run side by side, one intra-op thread. x is not freed.
func (p *Parallel) Forward(x *ts.Tensor) (*ts.Tensor, error) {
	n := x.MustSize()[0]
	ways := int64(len(p.models))
	switch {
	case ways <= 1:
		var y *ts.Tensor
		err := run(func(m *Model) error { y = m.Forward(x); return nil }, p.models[0])
		return y, err
	case n >= ways || !p.byTokens:
		return p.forwardImages(x, min(n, ways))
	default:
		return p.forwardTokens(x)
	}
}

// forwardImages splits x's batch into ways shards, one per thread.
func (p *Parallel) forwardImages(x *ts.Tensor, ways int64) (*ts.Tensor, error) {
	n := x.MustSize()[0]
	outs := make([]*ts.Tensor, ways)
	defer func() {
		for _, o := range outs {
			if o != nil {
				o.MustDrop()
			}
		}
	}()
	jobs := make([]job, ways)
	for i, r := range split(n, ways) {
		jobs[i] = func(m *Model) error {
			shard := x.MustNarrow(0, r.start, r.size, false)
			defer shard.MustDrop()
			outs[i] = m.Forward(shard)
			return nil
		}
	}
	if err := p.runAll(jobs, nil); err != nil {
		return nil, err
	}
	return ts.MustCat(outs, 0), nil
}

// forwardTokens splits x's tokens over the threads, block by block (see
// Parallel).
func (p *Parallel) forwardTokens(x *ts.Tensor) (*ts.Tensor, error) {
	m := p.models[0]
	seq := m.embed(x) // [B, N, D], a small share of the pass: one thread
	defer seq.MustDrop()
	size := seq.MustSize()
	bs, tokens := size[0], size[1]
	ways := min(int64(len(p.models)), tokens)
	// Every token's keys and values, per block, filled by all threads.
	keys := make([]*ts.Tensor, len(m.Blocks))
	values := make([]*ts.Tensor, len(m.Blocks))
	defer func() {
		for i := range keys {
			keys[i].MustDrop()
			values[i].MustDrop()
		}
	}()
	dtype, dev := seq.DType(), seq.MustDevice()
	for i, b := range m.Blocks {
		shape := []int64{bs, int64(b.Heads), tokens, int64(b.HeadDim)}
		keys[i] = ts.MustEmpty(shape, dtype, dev)
		values[i] = ts.MustEmpty(shape, dtype, dev)
	}
	bar := newBarrier(int(ways))
	jobs := make([]job, ways)
	for w, r := range split(tokens, ways) {
		jobs[w] = func(m *Model) error {
			// In inference the blocks add in place, so x stays this view
			// of seq from block to block.
			x := seq.MustNarrow(1, r.start, r.size, false)
			defer x.MustDrop()
			for i, b := range m.Blocks {
				q, k, v := b.queryKeyValue(x)
				fill(keys[i], k, r)
				fill(values[i], v, r)
				if !bar.wait() {
					q.MustDrop()
					return errAborted
				}
				if y := b.attendAndMLP(x, q, keys[i], values[i], true, false); y != x {
					y.MustDrop()
					return fmt.Errorf("block %d did not update its tokens in place", i)
				}
			}
			return nil
		}
	}
	if err := p.runAll(jobs, bar); err != nil {
		return nil, err
	}
	f := m.finalNorm(seq)
	defer f.MustDrop()
	return averageHeads(m.heads(f)), nil
}

// fill copies src, the keys or values of the tokens in r, into their
// place in all, and frees src.
func fill(all, src *ts.Tensor, r span) {
	dst := all.MustNarrow(2, r.start, r.size, false)
	dst.Copy_(src)
	dst.MustDrop()
	src.MustDrop()
}

var errAborted = errors.New("aborted: another thread failed")

// runAll runs jobs[0] on the caller's thread and the others on the
// workers, and returns the first error. A failing job breaks bar, if any,
// so that the others stop waiting for it.
func (p *Parallel) runAll(jobs []job, bar *barrier) error {
	for i := 1; i < len(jobs); i++ {
		p.jobs[i-1] <- func(m *Model) error {
			err := run(jobs[i], m)
			if err != nil && bar != nil {
				bar.abort()
			}
			return err
		}
	}
	var errs []error
	if err := run(jobs[0], p.models[0]); err != nil {
		if bar != nil {
			bar.abort()
		}
		errs = append(errs, fmt.Errorf("thread 0: %w", err))
	}
	for range len(jobs) - 1 {
		if r := <-p.results; r.err != nil {
			errs = append(errs, fmt.Errorf("thread %d: %w", r.worker, r.err))
		}
	}
	for _, err := range errs {
		if !errors.Is(err, errAborted) {
			return fmt.Errorf("parallel inference: %w", err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("parallel inference: %w", errs[0])
	}
	return nil
}

// span is a range of indices along one dimension.
type span struct{ start, size int64 }

// split divides n into ways contiguous spans as even as can be.
func split(n, ways int64) []span {
	spans := make([]span, ways)
	var start int64
	for i := range ways {
		size := n / ways
		if i < n%ways {
			size++
		}
		spans[i] = span{start, size}
		start += size
	}
	return spans
}

// barrier lets n threads wait for each other, again and again; abort
// releases every waiter, now and later, with false.
type barrier struct {
	mu      sync.Mutex
	n       int
	arrived int
	release chan struct{}
	aborted bool
}

func newBarrier(n int) *barrier { return &barrier{n: n, release: make(chan struct{})} }

// wait blocks until all n threads have called it, and reports whether
// they all did (false after abort).
func (b *barrier) wait() bool {
	b.mu.Lock()
	if b.aborted {
		b.mu.Unlock()
		return false
	}
	b.arrived++
	if b.arrived == b.n {
		b.arrived = 0
		close(b.release)
		b.release = make(chan struct{})
		b.mu.Unlock()
		return true
	}
	release := b.release
	b.mu.Unlock()
	<-release
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.aborted
}

func (b *barrier) abort() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.aborted {
		b.aborted = true
		close(b.release)
	}
}

// Close stops the workers and frees the replicas (not the caller's model).
func (p *Parallel) Close() {
	for _, j := range p.jobs {
		close(j)
	}
	p.jobs = nil
	for _, m := range p.models[1:] {
		m.Drop()
	}
	p.models = p.models[:1]
}
