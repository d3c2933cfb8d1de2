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
// while it uses Parallel (torchrt.UseThreads). A batch at least as
// large as the thread count is split into data-parallel shards of images;
// a smaller one (latency at batch 1) is split by tokens: every thread
// computes queries, keys and values of its tokens, the threads meet once
// per block so that each sees every token's keys and values, and each
// then attends from its own tokens and runs the MLP on them; at a token
// reduction they meet twice more while thread 0 reduces the sequence.
// Both splits compute the logits of one pass, up to the order in which
// BLAS sums within a product (TestParallelMatchesOnePass).
//
// Why: on few cores libtorch spends much of a pass keeping its threads in
// step. Every op is its own OpenMP region and every GEMM its own job for
// OpenBLAS's pool, so a 2-thread pass of deit_tiny wakes and waits for a
// thread hundreds of times, in PyTorch as in gotch. Threads that each own
// their share of a pass meet once per block, or never, and finish it
// sooner than libtorch's pool does (BenchmarkForwardParallel, and `make
// bench` against PyTorch eager; docs/performance.md has the numbers).
//
// Parallel is for inference of a finished model: taps that record
// (calibration observers) would be called from several threads at once,
// each seeing only its share.
type Parallel struct {
	models   []*Model // the model each thread runs; models[0] is the caller's
	replicas []*Model // those of models made for this Parallel
	jobs     []chan job
	results  chan jobResult
}

// job is one thread's share of a pass, run on that thread's model.
type job func(m *Model) error

type jobResult struct {
	worker int
	err    error
}

// NewParallel prepares n-way inference of m: n-1 goroutines, each locked
// to an OS thread with one intra-op thread and autograd off. n < 2 makes a
// Parallel that runs m alone. The threads share m's tensors, which a pass
// only reads, except when m reduces tokens: a token reducer keeps per-pass
// state in its model, so for image shards every thread then gets a
// replica of its own (split by tokens they all run m, whose state thread 0
// updates between barriers).
func NewParallel(m *Model, n int) (*Parallel, error) {
	p := &Parallel{models: []*Model{m}, results: make(chan jobResult)}
	for i := 1; i < n; i++ {
		w := m
		if m.reducesTokens() {
			rep, err := m.Replicate()
			if err != nil {
				p.Close()
				return nil, fmt.Errorf("parallel inference: %w", err)
			}
			p.replicas = append(p.replicas, rep)
			w = rep
		}
		jobs := make(chan job)
		p.models = append(p.models, w)
		p.jobs = append(p.jobs, jobs)
		go p.work(i, w, jobs)
	}
	return p, nil
}

func (m *Model) reducesTokens() bool {
	for _, b := range m.Blocks {
		if b.Reducer != nil {
			return true
		}
	}
	return false
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
	case n >= ways:
		return p.forwardImages(x, ways)
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
	for i, r := range EvenSpans(n, ways) {
		jobs[i] = func(m *Model) error {
			shard := x.MustNarrow(0, r.Start, r.Size, false)
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
// Parallel). Every thread runs the caller's model: a token reducer's
// per-pass state must be the one the pass's reductions update.
func (p *Parallel) forwardTokens(x *ts.Tensor) (*ts.Tensor, error) {
	m := p.models[0]
	ways := len(p.models)
	tp := &tokenPass{seq: m.embed(x)} // a small share of the pass: one thread
	defer tp.free()
	tp.layout(m, 0, ways)
	bar := newBarrier(ways)
	jobs := make([]job, ways)
	for w := range jobs {
		jobs[w] = func(*Model) error { return tp.run(m, w, bar) }
	}
	if err := p.runAll(jobs, bar); err != nil {
		return nil, err
	}
	f := m.finalNorm(tp.seq)
	defer f.MustDrop()
	return averageHeads(m.heads(f)), nil
}

// tokenPass is what the threads of a pass split by tokens share. Thread 0
// changes it (a token reduction) only while the others wait at a barrier.
type tokenPass struct {
	seq   *ts.Tensor // [B,N,D], the residual stream
	spans []Span     // the tokens of seq each thread owns
	// Every token's keys and values, per block, filled by all threads:
	// [B,heads,N,hd] for the N tokens entering the block.
	keys, values []*ts.Tensor
}

// layout splits seq's tokens over ways threads and makes the key and
// value buffers of blocks from on for seq's token count.
func (tp *tokenPass) layout(m *Model, from, ways int) {
	size := tp.seq.MustSize()
	bs, tokens := size[0], size[1]
	tp.spans = EvenSpans(tokens, int64(ways))
	if tp.keys == nil {
		tp.keys = make([]*ts.Tensor, len(m.Blocks))
		tp.values = make([]*ts.Tensor, len(m.Blocks))
	}
	dtype, dev := tp.seq.DType(), tp.seq.MustDevice()
	for i := from; i < len(m.Blocks); i++ {
		b := m.Blocks[i]
		shape := []int64{bs, int64(b.Heads), tokens, int64(b.HeadDim)}
		for _, t := range []**ts.Tensor{&tp.keys[i], &tp.values[i]} {
			if *t != nil {
				(*t).MustDrop()
			}
			*t = ts.MustEmpty(shape, dtype, dev)
		}
	}
}

func (tp *tokenPass) free() {
	tp.seq.MustDrop()
	for i := range tp.keys {
		tp.keys[i].MustDrop()
		tp.values[i].MustDrop()
	}
}

// run is thread w's share of the pass. In inference the blocks add in
// place, so the thread's tokens stay one view of seq from block to block,
// until a reduction makes a new seq.
func (tp *tokenPass) run(m *Model, w int, bar *barrier) error {
	r := tp.spans[w]
	x := tp.seq.MustNarrow(1, r.Start, r.Size, false)
	defer func() { x.MustDrop() }()
	inPlace := func(i int, y *ts.Tensor) error {
		if y != x {
			y.MustDrop()
			return fmt.Errorf("block %d did not update its tokens in place", i)
		}
		return nil
	}
	for i, b := range m.Blocks {
		var q *ts.Tensor
		if r.Size > 0 {
			var k, v *ts.Tensor
			q, k, v = b.queryKeyValue(x)
			fill(tp.keys[i], k, r)
			fill(tp.values[i], v, r)
		}
		if !bar.wait() {
			if q != nil {
				q.MustDrop()
			}
			return errAborted
		}
		if b.Reducer == nil {
			if r.Size > 0 {
				if err := inPlace(i, b.attendAndMLP(x, q, tp.keys[i], tp.values[i], true, false)); err != nil {
					return err
				}
			}
			continue
		}
		// The reducer reads the class token's attention: thread 0's
		// first query, as thread 0's tokens start at the first.
		lead := w == 0
		var keys, clsAttn *ts.Tensor
		if r.Size > 0 {
			var y *ts.Tensor
			y, keys, clsAttn = b.attend(x, q, tp.keys[i], tp.values[i], true, false, lead && b.Reducer.NeedsAttention())
			if err := inPlace(i, y); err != nil {
				return err
			}
		}
		if !bar.wait() {
			if keys != nil {
				keys.MustDrop()
				clsAttn.MustDrop()
			}
			return errAborted
		}
		if lead {
			tp.seq = b.reduce(tp.seq, keys, clsAttn)
			tp.layout(m, i+1, len(tp.spans))
		}
		if !bar.wait() {
			return errAborted
		}
		x.MustDrop()
		r = tp.spans[w]
		x = tp.seq.MustNarrow(1, r.Start, r.Size, false)
		if r.Size > 0 {
			if err := inPlace(i, b.mlp(x, true)); err != nil {
				return err
			}
		}
	}
	return nil
}

// fill copies src, the keys or values of the tokens in r, into their
// place in all, and frees src.
func fill(all, src *ts.Tensor, r Span) {
	dst := all.MustNarrow(2, r.Start, r.Size, false)
	dst.Copy_(src)
	dst.MustDrop()
	src.MustDrop()
}

var errAborted = errors.New("aborted: another thread failed")

// runAll runs jobs[0] on the caller's thread and the others on the
// workers, and returns the first error. A failing job breaks bar, if any,
// so that the others stop waiting for it.
func (p *Parallel) runAll(jobs []job, bar *barrier) error {
	guarded := func(j job) job {
		return func(m *Model) error {
			err := run(j, m)
			if err != nil && bar != nil {
				bar.abort()
			}
			return err
		}
	}
	for i := 1; i < len(jobs); i++ {
		p.jobs[i-1] <- guarded(jobs[i])
	}
	var errs []error
	if err := guarded(jobs[0])(p.models[0]); err != nil {
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

// Span is a range of indices along one dimension.
type Span struct{ Start, Size int64 }

// EvenSpans divides n indices into ways contiguous spans as even as can
// be, the first ones one longer when ways does not divide n.
func EvenSpans(n, ways int64) []Span {
	spans := make([]Span, ways)
	var start int64
	for i := range ways {
		size := n / ways
		if i < n%ways {
			size++
		}
		spans[i] = Span{start, size}
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

// Close stops the workers and frees the replicas, if any (not the
// caller's model).
func (p *Parallel) Close() {
	for _, j := range p.jobs {
		close(j)
	}
	p.jobs = nil
	for _, m := range p.replicas {
		m.Drop()
	}
	p.replicas = nil
	p.models = p.models[:1]
}
