package runner

import (
	"context"
	"fmt"

	"github.com/vitbench/vitbench/harness/measure"
	"github.com/vitbench/vitbench/harness/vit"
)

// graphTiming is one executed graph's latency and throughput.
type graphTiming struct {
	key      string // vit.Config.GraphKey
	hash     string // the artifact it is timed on: the first experiment's
	lat, thr *measure.Latency
	err      error
}

// timeGraphs measures latency and throughput once for each distinct
// graph the evaluated experiments run, and shares the result: a
// fake-quantized model runs its float32 graph and an unstructured-pruned
// one the dense graph, so their timings are the baseline's and must read
// the same, not differ by the minute each was timed in. The graphs are
// timed together in interleaved rounds for the same reason.
func (r *Runner) timeGraphs(ctx context.Context, evals []*evaluation) {
	var graphs []*graphTiming
	byKey := map[string]*graphTiming{}
	for _, ev := range evals {
		if ev == nil || ev.err != nil {
			continue
		}
		if g, ok := byKey[ev.timing.key]; ok {
			ev.timing = g
			continue
		}
		byKey[ev.timing.key] = ev.timing
		graphs = append(graphs, ev.timing)
	}
	if len(graphs) == 0 {
		return
	}
	ms := r.Plan.Suite.Measure
	auto := r.Run.Engine == measure.EngineAuto
	opts := []measure.Options{
		{Batch: ms.LatencyBatch, Warmup: ms.Warmup, Iters: ms.Iters, Device: r.Device, Split: r.split, Auto: auto},
		{Batch: ms.ThroughputBatch, Warmup: max(1, ms.Warmup/5), Iters: max(3, ms.Iters/5), Device: r.Device, Split: r.split, Auto: auto},
	}
	fmt.Fprintf(r.Log, "timing %d distinct graphs for %d experiments: batch %d x %d and batch %d x %d passes each, in %d interleaved rounds, engine %s\n",
		len(graphs), countOK(evals), opts[0].Batch, opts[0].Iters, opts[1].Batch, opts[1].Iters, timingRounds, r.Run.Engine)
	loads := 0
	load := func(i int) (*vit.Model, error) {
		if r.Progress != nil {
			r.Progress("time graphs", loads, len(graphs)*timingRounds, "")
		}
		loads++
		var m *vit.Model
		err := protect(func() error {
			model, _, err := r.cache.load(graphs[i].hash, r.Device)
			if err != nil {
				return err
			}
			// A simulated model is timed on its int8 kernels when they
			// execute it (evaluate decided the same), otherwise on its
			// float32 graph, labelled so: fake quantization is not
			// low-precision speed.
			if _, err := r.execute(model); err != nil {
				model.Drop()
				return err
			}
			g, copied, err := model.TimedGraph()
			if copied || err != nil {
				model.Drop()
			}
			m = g
			return err
		})
		return m, err
	}
	var lats [][]*measure.Latency
	var errs []error
	err := protect(func() error {
		lats, errs = measure.Interleaved(ctx, len(graphs), load, opts, timingRounds)
		return nil
	})
	if r.Progress != nil {
		r.Progress("time graphs", loads, loads, "")
	}
	for i, g := range graphs {
		switch {
		case err != nil:
			g.err = err
		case errs[i] != nil:
			g.err = fmt.Errorf("timing: %w", errs[i])
		default:
			g.lat, g.thr = lats[i][0], lats[i][1]
		}
	}
}

// timingRounds is how many interleaved rounds timeGraphs splits each
// graph's passes into.
const timingRounds = 5

func countOK(evals []*evaluation) int {
	n := 0
	for _, ev := range evals {
		if ev != nil && ev.err == nil {
			n++
		}
	}
	return n
}
