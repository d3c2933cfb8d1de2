package train

import (
	"fmt"
	"runtime"
	"sort"

	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// Data-parallel training on one machine, as PyTorch's DistributedDataParallel
// does it across processes: each worker holds a replica of the model, takes
// an even share of every batch on its own OS thread, and computes that
// share's gradient; the gradients are summed into the model's (each share's
// loss weighted by its size, so the sum is the whole batch's gradient), the
// optimizer steps the model alone, and the replicas take its weights back.
// A ViT has no batch statistics, so this trains the same model as one
// worker would, up to the order of floating-point sums.
//
// Why: libtorch scales poorly across cores on a model this small, so two
// single-threaded workers side by side take more steps a second than one
// loop on two intra-op threads (BenchmarkTrainStep, workers=1 against
// workers=2; docs/performance.md, "Data-parallel training", has the
// numbers).

// replicable is implemented by losses that hold a model of their own (a
// teacher): each data-parallel worker gets its own copy instead of sharing
// one across threads. release frees the copy.
type replicable interface {
	Replicate() (loss Loss, release func(), err error)
}

// Replicate implements replicable: the copy has its own teacher.
func (k KD) Replicate() (Loss, func(), error) {
	t, err := k.Teacher.Replicate()
	if err != nil {
		return nil, nil, fmt.Errorf("teacher: %w", err)
	}
	c := k
	c.Teacher = t
	return c, t.Drop, nil
}

// paramPair is one trainable tensor of the model and the same tensor of a
// replica.
type paramPair struct{ main, rep *ts.Tensor }

// shard is one worker's share of a batch and its weight in the batch's
// loss (its share of the images).
type shard struct {
	x, y   *ts.Tensor
	weight float64
}

type shardResult struct {
	loss float64
	err  error
}

// worker runs one replica on its own locked OS thread.
type worker struct {
	model   *vit.Model
	loss    Loss
	release func()
	pairs   []paramPair
	jobs    chan shard
	results chan shardResult
}

// parallel is the set of workers of one Fit; the caller's goroutine is
// worker 0 on the model itself.
type parallel struct {
	m       *vit.Model
	loss    Loss
	workers []*worker
	threads int // intra-op threads of each worker
}

// newParallel builds n-1 replicas of m beside m (n >= 2) and starts their
// goroutines, each running threads intra-op threads.
func newParallel(m *vit.Model, loss Loss, n, threads int) (*parallel, error) {
	p := &parallel{m: m, loss: loss, threads: max(1, threads)}
	for range n - 1 {
		rep, err := m.Replicate()
		if err != nil {
			p.close()
			return nil, err
		}
		w := &worker{model: rep, loss: loss, jobs: make(chan shard), results: make(chan shardResult)}
		if r, ok := loss.(replicable); ok {
			if w.loss, w.release, err = r.Replicate(); err != nil {
				rep.Drop()
				p.close()
				return nil, err
			}
		}
		if w.pairs, err = trainablePairs(m, rep); err != nil {
			w.drop()
			p.close()
			return nil, err
		}
		p.workers = append(p.workers, w)
		go w.run(p.threads)
	}
	return p, nil
}

// trainablePairs pairs the trainable tensors of m and rep by name, in name
// order.
func trainablePairs(m, rep *vit.Model) ([]paramPair, error) {
	vars := m.VS.Variables()
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	sort.Strings(names)
	var pairs []paramPair
	for _, name := range names {
		a, _ := m.VS.Root().Get(name)
		b, err := rep.VS.Root().Get(name)
		if err != nil {
			return nil, fmt.Errorf("replica lacks %s", name)
		}
		if !a.MustRequiresGrad() {
			if b.MustRequiresGrad() {
				b.MustRequiresGrad_(false)
			}
			continue
		}
		pairs = append(pairs, paramPair{a, b})
	}
	return pairs, nil
}

func (w *worker) run(threads int) {
	// libtorch's grad mode and thread count are per OS thread; the thread
	// ends with the goroutine (never unlocked), and its state with it.
	runtime.LockOSThread()
	torchrt.SetNumThreads(threads)
	for s := range w.jobs {
		w.results <- w.compute(s)
	}
}

// compute runs the forward and backward pass of one shard, its loss
// weighted by the caller. A libtorch error (a panic in gotch's Must
// functions) is returned, not raised on this goroutine.
func (w *worker) compute(s shard) (res shardResult) {
	defer func() {
		if r := recover(); r != nil {
			res.err = fmt.Errorf("data-parallel worker: %v", r)
		}
	}()
	res.loss = shardBackward(w.loss, w.model, s)
	return res
}

// shardBackward computes loss on s, weighted by s.weight, backpropagates
// it and returns its value. It frees s.
func shardBackward(loss Loss, m *vit.Model, s shard) float64 {
	l := loss.Loss(m, s.x, s.y).MustMulScalar(ts.FloatScalar(s.weight), true)
	s.x.MustDrop()
	s.y.MustDrop()
	defer l.MustDrop()
	l.MustBackward()
	return l.Float64Values()[0]
}

// gradients computes the batch's gradient into m's parameters (whose
// gradients the caller has zeroed) and returns the batch's loss. x and y
// are freed.
func (p *parallel) gradients(x, y *ts.Tensor) (float64, error) {
	n := x.MustSize()[0]
	parts := int64(len(p.workers) + 1)
	if n < parts {
		parts = n
	}
	shards := make([]shard, parts)
	for i, s := range vit.EvenSpans(n, parts) {
		shards[i] = shard{x.MustNarrow(0, s.Start, s.Size, false), y.MustNarrow(0, s.Start, s.Size, false), float64(s.Size) / float64(n)}
	}
	x.MustDrop()
	y.MustDrop()
	for i := int64(1); i < parts; i++ {
		p.workers[i-1].jobs <- shards[i]
	}
	total, err := p.own(shards[0])
	firstErr := err
	for i := int64(1); i < parts; i++ {
		r := <-p.workers[i-1].results
		total += r.loss
		if r.err != nil && firstErr == nil {
			firstErr = r.err
		}
	}
	if firstErr != nil {
		return 0, firstErr
	}
	torchrt.NoGrad(func() {
		for i := int64(1); i < parts; i++ {
			for _, pp := range p.workers[i-1].pairs {
				gr := pp.rep.MustGrad(false)
				if gr.MustDefined() {
					gm := pp.main.MustGrad(false)
					if gm.MustDefined() {
						gm.MustAdd_(gr)
					}
					gr.MustZero_()
					gm.MustDrop()
				}
				gr.MustDrop()
			}
		}
	})
	return total, nil
}

// own runs the caller's shard on the model itself, recovering a libtorch
// error so that the workers' results are still collected.
func (p *parallel) own(s shard) (loss float64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("data-parallel worker 0: %v", r)
		}
	}()
	return shardBackward(p.loss, p.m, s), nil
}

// broadcast copies the model's trainable tensors into every replica, after
// the optimizer step and AfterStep (which may re-apply pruning masks or
// re-quantize weights) changed them.
func (p *parallel) broadcast() {
	torchrt.NoGrad(func() {
		for _, w := range p.workers {
			for _, pp := range w.pairs {
				pp.rep.Copy_(pp.main)
			}
		}
	})
}

// close stops the workers and frees the replicas.
func (p *parallel) close() {
	for _, w := range p.workers {
		w.drop()
	}
	p.workers = nil
}

func (w *worker) drop() {
	if w.jobs != nil {
		close(w.jobs)
		w.jobs = nil
	}
	if w.release != nil {
		w.release()
	}
	w.model.Drop()
}
