package runner

import (
	"context"
	"fmt"

	"github.com/vitbench/vitbench/harness/plan"
	"github.com/vitbench/vitbench/harness/qexec"
	"github.com/vitbench/vitbench/harness/stats"
	"github.com/vitbench/vitbench/harness/store"
	"github.com/vitbench/vitbench/harness/sysinfo"
	"github.com/vitbench/vitbench/harness/train"
	"github.com/vitbench/vitbench/harness/vit"
)

// evaluation is what the measuring of one experiment found before its
// graph is timed.
type evaluation struct {
	hash     string    // the experiment's final artifact
	eval     *evalJSON // of the graph that executes (and is timed)
	simEval  *evalJSON // of the simulated model, when an executed one replaced it
	counts   vit.Counts
	executed string
	detail   string // what executed how (qexec.Report.Summary), or why not
	quant    *store.Quantization
	bytes    int64
	bitOps   int64
	peak     int64
	timing   *graphTiming // shared by every experiment that runs the same graph
	err      error
}

// evaluateExperiment evaluates the experiment's final model on the test
// split (or takes the evaluation cached beside it) and counts it; nil
// when the run was interrupted before.
func (r *Runner) evaluateExperiment(ctx context.Context, e *plan.Experiment, rec *store.Experiment) *evaluation {
	ev := &evaluation{hash: e.Hash()}
	for _, h := range e.Nodes {
		if err, bad := r.state.failed[h]; bad {
			ev.err = err
			return ev
		}
	}
	sysinfo.ResetPeakRSS()
	ev.err = protect(func() error { return r.evaluate(ctx, e, ev) })
	ev.peak = sysinfo.PeakRSS()
	return ev
}

func (r *Runner) evaluate(ctx context.Context, e *plan.Experiment, ev *evaluation) error {
	model, meta, err := r.cache.load(ev.hash, r.Device)
	if err != nil {
		return err
	}
	defer func() { model.Drop() }()
	ev.counts = model.Count()
	ev.bytes = modelBytes(model)
	ev.bitOps = model.BitOps()
	ev.quant = quantization(model.Cfg.Quant)
	// A timed-only model is never evaluated (ds stays nil): its costs and
	// the graph that executes are all it records.
	var ds *dataset
	changed := false
	if m := r.Plan.Suite.Model(e.Model); !m.TimedOnly {
		if ds, err = r.dataset(ctx, m); err != nil {
			return err
		}
		if !meta.Eval.current(ds.images) {
			if meta.Eval, err = r.accuracy(ctx, ds, model); err != nil {
				return err
			}
			changed = true
		}
		ev.eval = meta.Eval
	}
	ev.detail, err = r.execute(model)
	if err != nil {
		return err
	}
	if ds != nil && model.Cfg.Executed == qexec.Int8 {
		// The cached executed evaluation holds only for the same kernels.
		if x := meta.ExecEval; !x.current(ds.images) || x.Detail != ev.detail {
			if meta.ExecEval, err = r.accuracy(ctx, ds, model); err != nil {
				return err
			}
			meta.ExecEval.Detail = ev.detail
			changed = true
		}
		ev.simEval, ev.eval = meta.Eval, meta.ExecEval
	}
	if changed {
		if err := r.cache.writeMeta(ev.hash, meta); err != nil {
			return err
		}
	}
	ev.executed = model.Cfg.Executed
	if ev.executed == "" {
		ev.executed = "fp32"
	}
	ev.timing = &graphTiming{key: model.Cfg.GraphKey(), hash: ev.hash}
	return nil
}

// accuracy evaluates model on the test split of ds.
func (r *Runner) accuracy(ctx context.Context, ds *dataset, model *vit.Model) (*evalJSON, error) {
	src, err := ds.testSource(r.Device, r.Plan.Suite.Measure.EvalBatch)
	if err != nil {
		return nil, err
	}
	acc, err := train.Evaluate(ctx, model, src)
	if err == nil {
		err = src.err()
	}
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	return &evalJSON{Top1: acc.Top1, Top5: acc.Top5, N: acc.N, Seconds: acc.Seconds, Version: evalVersion,
		Images: ds.images, Top1Bits: packBits(acc.Correct1), Top5Bits: packBits(acc.Correct5)}, nil
}

// packBits packs per-image outcomes into stats.Bits.
func packBits(correct []bool) []byte {
	b := stats.NewBits(len(correct))
	for i, c := range correct {
		if c {
			b.Set(i)
		}
	}
	return b
}

// execute runs a simulated model on int8 kernels where the suite's
// int8_engine and the machine allow (qexec.Prepare).
func (r *Runner) execute(model *vit.Model) (string, error) {
	return qexec.Prepare(model, r.Plan.Suite.Measure.Int8Engine)
}

// modelBytes is the model's size as stored: every tensor at 4 bytes per
// element (float32) unless the model records a lower bit width.
func modelBytes(m *vit.Model) int64 { return m.SizeBytes() }
