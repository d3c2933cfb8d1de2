// Package runner executes a plan: it builds every artifact the plan needs
// (training baselines and teachers, applying technique stages), reusing
// the ones already cached and verified, then measures every experiment
// (accuracy on the test split, counts, size, latency, throughput) and
// stores it. A failure in one experiment is recorded with its error and
// the rest go on.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/sugarme/gotch"
	"github.com/vitbench/vitbench/harness/config"
	"github.com/vitbench/vitbench/harness/measure"
	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/plan"
	"github.com/vitbench/vitbench/harness/store"
	"github.com/vitbench/vitbench/harness/train"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques"
)

// Runner runs one plan. Fill the fields, then call Run.
type Runner struct {
	Plan    *plan.Plan
	DB      *store.DB
	Run     store.Run // filled in (machine, suite, args) by the caller
	Device  gotch.Device
	Threads int // libtorch intra-op threads; 0 = all cores
	// TrainWorkers is the number of data-parallel training workers (see
	// train.Options.Workers), which share Threads between them: 0 means 2
	// on a CPU with at least 2 threads, else 1. It changes how fast
	// training runs, not what it trains, so artifacts do not depend on it.
	TrainWorkers int
	DataDirs     []string // extra data search paths (flags)
	Log          io.Writer
	// Progress reports long work; nil prints nothing.
	Progress func(task string, done, total int, note string)

	cache   cache
	data    map[string]*dataset
	results map[string]*store.Experiment // by experiment name, this run
	failed  map[string]error             // node hash -> why it could not be built
	times   map[string]float64           // node hash -> seconds to build (this run or cached)
	peaks   map[string]int64             // node hash -> peak resident bytes while building
	curves  map[string][]store.Point     // model node hash -> training curve

	workers, workerThreads int // resolved TrainWorkers and threads of each
	split                  int // threads a timed pass is split over (measure.Options.Split); 0: eager
}

// Summary is what a run did.
type Summary struct {
	RunID      int64
	OK, Failed int
	Failures   []string // "name: error"
}

// Execute runs the plan and stores everything. It returns an error only
// for failures of the harness itself (the database); experiment failures
// are counted in the summary.
func (r *Runner) Execute(ctx context.Context) (*Summary, error) {
	// libtorch's thread count and grad mode live on the OS thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	threads := r.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	torchrt.SetNumThreads(threads)
	r.Run.Machine.Threads = threads
	if r.Device.Name == "" {
		r.Device = gotch.CPU
	}
	r.Run.Device = strings.ToLower(r.Device.Name)
	r.Run.Machine.Engine = config.ResolveEngine(r.Plan.Suite.Measure.Engine, threads, r.Device == gotch.CPU)
	if r.Run.Machine.Engine == config.EngineSplit {
		r.split = threads
	}
	r.workers = r.TrainWorkers
	if r.workers <= 0 {
		r.workers = 1
		if r.Device == gotch.CPU && threads >= 2 {
			r.workers = 2
		}
	}
	r.workerThreads = max(1, threads/r.workers)
	if r.Log == nil {
		r.Log = io.Discard
	}
	r.cache = cache{dir: r.Plan.Suite.CacheDir}
	r.data = map[string]*dataset{}
	r.results = map[string]*store.Experiment{}
	r.failed = map[string]error{}
	r.times = map[string]float64{}
	r.peaks = map[string]int64{}
	r.curves = map[string][]store.Point{}

	if err := r.DB.BeginRun(ctx, &r.Run); err != nil {
		return nil, err
	}
	sum := &Summary{RunID: r.Run.ID}
	fmt.Fprintf(r.Log, "run %s: %d experiments, %d artifacts, %d threads on %s, training on %d data-parallel workers of %d threads\n",
		shortID(r.Run.UUID), len(r.Plan.Experiments), len(r.Plan.Nodes), threads, r.Run.Device, r.workers, r.workerThreads)

	// Stored first as running, so `bench list` shows the whole plan.
	for _, e := range r.Plan.Experiments {
		rec := r.newRecord(e)
		if err := r.DB.SaveExperiment(ctx, rec); err != nil {
			return sum, err
		}
		r.results[e.Name] = rec
	}
	for _, n := range r.Plan.Nodes {
		if ctx.Err() != nil {
			break
		}
		r.buildNode(ctx, n)
	}
	// Evaluate every experiment, then time the distinct graphs they run
	// together, in interleaved rounds (measure.Interleaved).
	evals := make([]*evaluation, len(r.Plan.Experiments))
	for i, e := range r.Plan.Experiments {
		rec := r.results[e.Name]
		if ctx.Err() != nil {
			rec.Status, rec.Error = store.StatusFailed, "interrupted: "+ctx.Err().Error()
			continue
		}
		if r.Progress != nil {
			r.Progress("evaluate", i, len(evals), e.Name)
		}
		evals[i] = r.evaluateExperiment(ctx, e, rec)
	}
	if r.Progress != nil {
		r.Progress("evaluate", len(evals), len(evals), "")
	}
	r.timeGraphs(ctx, evals)
	for i, e := range r.Plan.Experiments {
		rec := r.results[e.Name]
		if ev := evals[i]; ev != nil {
			if ev.err == nil {
				ev.err = ev.timing.err
			}
			if ev.err != nil {
				rec.Status, rec.Error = store.StatusFailed, ev.err.Error()
			} else {
				r.record(e, rec, ev)
				rec.Status = store.StatusOK
			}
		}
		rec.Ended = time.Now().UTC()
		if err := r.DB.SaveExperiment(context.WithoutCancel(ctx), rec); err != nil {
			return sum, err
		}
		if rec.Status == store.StatusOK {
			sum.OK++
			fmt.Fprintf(r.Log, "ok     %-40s top-1 %6.2f%%  p50 %s\n", e.Name, metricValue(rec, metrics.Top1), ms(metricValue(rec, metrics.LatencyP50)))
		} else {
			sum.Failed++
			sum.Failures = append(sum.Failures, e.Name+": "+rec.Error)
			fmt.Fprintf(r.Log, "FAILED %-40s %s\n", e.Name, firstLine(rec.Error))
		}
	}
	status := store.StatusOK
	switch {
	case ctx.Err() != nil:
		status = store.StatusInterrupted
	case sum.Failed > 0:
		status = store.StatusFailed
	}
	if err := r.DB.FinishRun(context.WithoutCancel(ctx), r.Run.ID, status); err != nil {
		return sum, err
	}
	return sum, ctx.Err()
}

func (r *Runner) newRecord(e *plan.Experiment) *store.Experiment {
	spec, err := e.SpecJSON(r.Plan)
	if err != nil {
		spec = []byte(fmt.Sprintf(`{"error":%q}`, err.Error()))
	}
	m := r.Plan.Suite.Model(e.Model)
	baseline := e.Baseline
	if e.IsBaseline {
		baseline = ""
	}
	return &store.Experiment{
		RunID:    r.Run.ID,
		Name:     e.Name,
		Group:    e.Group,
		Model:    e.Model,
		Dataset:  m.Data.Name,
		Baseline: baseline,
		Families: e.Families,
		Pipeline: e.Pipeline,
		Params:   e.Params,
		SpecJSON: string(spec),
		Hash:     e.Hash(),
		Status:   store.StatusRunning,
		Started:  time.Now().UTC(),
	}
}

// protect turns a panic from gotch (a libtorch error in a Must* call)
// into an error.
func protect(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("libtorch: %v", p)
			if os.Getenv("VITBENCH_DEBUG") != "" {
				err = fmt.Errorf("%w\n%s", err, debug.Stack())
			}
		}
	}()
	return fn()
}

// buildNode makes sure the node's artifact is in the cache.
func (r *Runner) buildNode(ctx context.Context, n *plan.Node) {
	for _, up := range append([]string{n.Upstream}, n.Needs...) {
		if up == "" {
			continue
		}
		if err, bad := r.failed[up]; bad {
			r.failed[n.Hash] = fmt.Errorf("an input failed: %w", err)
			return
		}
	}
	if meta, err := r.cache.meta(n.Hash); err == nil {
		r.times[n.Hash] = meta.Seconds
		r.peaks[n.Hash] = meta.PeakRSS
		r.curves[n.Hash] = toStorePoints(meta.Curve)
		return
	} else if !errors.Is(err, errNotCached) || !strings.Contains(err.Error(), "no such file") {
		fmt.Fprintf(r.Log, "rebuilding %s: %v\n", short(n.Hash), err)
	}
	start := time.Now()
	resetPeakRSS()
	err := protect(func() error {
		model, meta, err := r.make(ctx, n)
		if err != nil {
			return err
		}
		defer model.Drop()
		meta.Seconds = time.Since(start).Seconds()
		meta.PeakRSS = peakRSS()
		return r.cache.save(n.Hash, string(n.Kind), model, meta)
	})
	if err != nil {
		r.failed[n.Hash] = err
		fmt.Fprintf(r.Log, "failed to build %s (%s): %v\n", short(n.Hash), describe(n), firstLine(err.Error()))
		return
	}
	m, _ := r.cache.meta(n.Hash)
	if m != nil {
		r.times[n.Hash] = m.Seconds
		r.peaks[n.Hash] = m.PeakRSS
		r.curves[n.Hash] = toStorePoints(m.Curve)
	}
	if r.DB != nil {
		_ = r.DB.PutArtifact(ctx, store.Artifact{Hash: n.Hash, Kind: string(n.Kind), Path: r.cache.path(n.Hash),
			SHA256: m.SHA256, Bytes: m.Bytes, Created: m.Created})
	}
}

func describe(n *plan.Node) string {
	if n.Stage != nil {
		return n.Stage.Label
	}
	return string(n.Kind) + " " + n.Model.Name
}

// make builds one artifact.
func (r *Runner) make(ctx context.Context, n *plan.Node) (*vit.Model, *artifactMeta, error) {
	switch n.Kind {
	case plan.KindTrain, plan.KindLoad:
		return r.makeModel(ctx, n)
	case plan.KindStage:
		return r.makeStage(ctx, n)
	}
	return nil, nil, fmt.Errorf("unknown node kind %q", n.Kind)
}

func archConfig(m *config.Model, ds *dataset) (vit.Config, error) {
	a := m.Arch
	o := vit.Overrides{ImgSize: a.ImgSize, PatchSize: a.PatchSize, InChans: a.InChans, NumClasses: a.NumClasses,
		EmbedDim: a.EmbedDim, Depth: a.Depth, NumHeads: a.NumHeads, MLPRatio: a.MLPRatio,
		QKVBias: a.QKVBias, Distilled: a.Distilled}
	if o.NumClasses == nil && ds != nil {
		n := len(ds.train.Classes)
		o.NumClasses = &n
	}
	if o.InChans == nil && ds != nil {
		c := ds.train.C
		o.InChans = &c
	}
	if o.ImgSize == nil && a.Base == "" && ds != nil {
		s := ds.train.H
		o.ImgSize = &s
	}
	cfg, err := vit.Custom(a.Base, o)
	if err != nil {
		return cfg, err
	}
	cfg.Name = m.Name
	return cfg, nil
}

func (r *Runner) makeModel(ctx context.Context, n *plan.Node) (*vit.Model, *artifactMeta, error) {
	ds, err := r.dataset(ctx, n.Model)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := archConfig(n.Model, ds)
	if err != nil {
		return nil, nil, fmt.Errorf("model %s: %w", n.Model.Name, err)
	}
	torchrt.ManualSeed(r.Plan.Suite.Seed)
	model, err := vit.New(cfg, r.Device)
	if err != nil {
		return nil, nil, err
	}
	meta := &artifactMeta{}
	if n.Kind == plan.KindLoad {
		if err := model.LoadPyTorch(n.Model.Weights); err != nil {
			model.Drop()
			return nil, nil, err
		}
		return model, meta, nil
	}
	var loss train.Loss
	if len(n.Needs) > 0 {
		teacher, _, err := r.cache.load(n.Needs[0], r.Device)
		if err != nil {
			model.Drop()
			return nil, nil, fmt.Errorf("teacher of %s: %w", n.Model.Name, err)
		}
		defer teacher.Drop()
		loss = train.KD{Teacher: teacher, Temperature: 4, Alpha: 0.5, Smoothing: n.Model.Train.LabelSmoothing}
	}
	res, err := r.fit(ctx, "train "+n.Model.Name, model, ds, recipeOf(n.Model.Train), train.Options{Loss: loss})
	if err != nil {
		model.Drop()
		return nil, nil, err
	}
	for _, p := range res.Curve {
		meta.Curve = append(meta.Curve, pointJSON{p.Series, p.Step, p.Value})
	}
	return model, meta, nil
}

func recipeOf(t config.TrainSpec) train.Recipe {
	return train.Recipe{Epochs: t.Epochs, MaxSteps: t.MaxSteps, LR: t.LR, MinLR: t.MinLR,
		WeightDecay: t.WeightDecay, Optimizer: t.Optimizer, Momentum: t.Momentum, Schedule: t.Schedule,
		WarmupEpochs: t.WarmupEpochs, LabelSmoothing: t.LabelSmoothing, GradClip: t.GradClip}
}

func (r *Runner) fit(ctx context.Context, task string, m *vit.Model, ds *dataset, rec train.Recipe, o train.Options) (*train.Result, error) {
	src, err := ds.trainSource(r.Device, r.Plan.Suite.Seed)
	if err != nil {
		return nil, err
	}
	total := rec.Steps(src.NumBatches())
	o.Progress = func(step, _ int, loss float64) {
		if r.Progress != nil {
			r.Progress(task, step, total, fmt.Sprintf("loss %.3f", loss))
		}
	}
	o.Workers, o.WorkerThreads = r.workers, r.workerThreads
	res, err := train.Fit(ctx, m, src, rec, o)
	if err == nil {
		err = src.err()
	}
	if res != nil && res.ParallelErr != nil {
		fmt.Fprintf(r.Log, "  %s: trained on one worker: %v\n", task, res.ParallelErr)
	}
	return res, err
}

func (r *Runner) makeStage(ctx context.Context, n *plan.Node) (*vit.Model, *artifactMeta, error) {
	tech, err := techniques.Lookup(n.Stage.Technique)
	if err != nil {
		return nil, nil, err
	}
	model, _, err := r.cache.load(n.Upstream, r.Device)
	if err != nil {
		return nil, nil, fmt.Errorf("upstream of %s: %w", n.Stage.Label, err)
	}
	env := &env{r: r, node: n}
	out, err := tech.Apply(ctx, n.Stage.Config, model, env)
	if err != nil {
		model.Drop()
		return nil, nil, fmt.Errorf("%s: %w", n.Stage.Label, err)
	}
	if out != model {
		model.Drop()
	}
	return out, &artifactMeta{}, nil
}

// evaluation is what the measuring of one experiment found before its
// graph is timed.
type evaluation struct {
	hash     string // the experiment's final artifact
	eval     *evalJSON
	counts   vit.Counts
	executed string
	bytes    int64
	bitOps   int64
	peak     int64
	timing   *graphTiming // shared by every experiment that runs the same graph
	err      error
}

// graphTiming is one executed graph's latency and throughput.
type graphTiming struct {
	key      string // vit.Config.GraphKey
	hash     string // the artifact it is timed on: the first experiment's
	lat, thr *measure.Latency
	err      error
}

// evaluateExperiment evaluates the experiment's final model on the test
// split (or takes the evaluation cached beside it) and counts it; nil
// when the run was interrupted before.
func (r *Runner) evaluateExperiment(ctx context.Context, e *plan.Experiment, rec *store.Experiment) *evaluation {
	ev := &evaluation{hash: e.Hash()}
	for _, h := range e.Nodes {
		if err, bad := r.failed[h]; bad {
			ev.err = err
			return ev
		}
	}
	resetPeakRSS()
	ev.err = protect(func() error { return r.evaluate(ctx, e, ev) })
	ev.peak = peakRSS()
	return ev
}

func (r *Runner) evaluate(ctx context.Context, e *plan.Experiment, ev *evaluation) error {
	model, meta, err := r.cache.load(ev.hash, r.Device)
	if err != nil {
		return err
	}
	defer model.Drop()
	if meta.Eval == nil {
		ds, err := r.dataset(ctx, r.Plan.Suite.Model(e.Model))
		if err != nil {
			return err
		}
		src, err := ds.testSource(r.Device, r.Plan.Suite.Measure.EvalBatch)
		if err != nil {
			return err
		}
		acc, err := train.Evaluate(ctx, model, src)
		if err == nil {
			err = src.err()
		}
		if err != nil {
			return fmt.Errorf("evaluate: %w", err)
		}
		meta.Eval = &evalJSON{Top1: acc.Top1, Top5: acc.Top5, N: acc.N, Seconds: acc.Seconds}
		if err := r.cache.writeMeta(ev.hash, meta); err != nil {
			return err
		}
	}
	ev.eval = meta.Eval
	ev.counts = model.Count()
	ev.executed = model.Cfg.Executed
	if ev.executed == "" {
		ev.executed = "fp32"
	}
	ev.bytes = modelBytes(model)
	ev.bitOps = model.BitOps()
	ev.timing = &graphTiming{key: model.Cfg.GraphKey(), hash: ev.hash}
	return nil
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
	opts := []measure.Options{
		{Batch: ms.LatencyBatch, Warmup: ms.Warmup, Iters: ms.Iters, Device: r.Device, Split: r.split},
		{Batch: ms.ThroughputBatch, Warmup: max(1, ms.Warmup/5), Iters: max(3, ms.Iters/5), Device: r.Device, Split: r.split},
	}
	fmt.Fprintf(r.Log, "timing %d distinct graphs for %d experiments: batch %d x %d and batch %d x %d passes each, in %d interleaved rounds, engine %s\n",
		len(graphs), countOK(evals), opts[0].Batch, opts[0].Iters, opts[1].Batch, opts[1].Iters, timingRounds, r.Run.Machine.Engine)
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
			// A simulated model is timed on its float32 graph (labelled
			// so in the store and the report): fake quantization is not
			// low-precision speed.
			if model.Cfg.Executed != vit.ExecutedSimulated {
				m = model
				return nil
			}
			defer model.Drop()
			m, err = model.Float32Graph()
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

// record stores the experiment's metrics.
func (r *Runner) record(e *plan.Experiment, rec *store.Experiment, ev *evaluation) {
	ms := r.Plan.Suite.Measure
	counts := ev.counts
	rec.Executed = ev.executed
	var trainSec, compressSec float64
	peak := ev.peak
	for i, h := range e.Nodes {
		peak = max(peak, r.peaks[h])
		if i == 0 {
			trainSec = r.times[h]
		} else {
			compressSec += r.times[h]
		}
	}
	lat, thr := ev.timing.lat, ev.timing.thr
	m := []metrics.Metric{
		metrics.New(metrics.Top1, ev.eval.Top1),
		metrics.New(metrics.Top5, ev.eval.Top5),
		metrics.New(metrics.Params, float64(counts.Params)),
		metrics.New(metrics.ParamsNonZero, float64(counts.NonZero)),
		metrics.New(metrics.MACs, float64(counts.MACs)),
		metrics.New(metrics.MACsEffective, float64(counts.EffMACs)),
		metrics.New(metrics.SizeBytes, float64(ev.bytes)),
		metrics.New(metrics.BitOps, float64(ev.bitOps)),
		metrics.New(metrics.LatencyP50, lat.P50),
		metrics.New(metrics.LatencyP90, lat.P90),
		metrics.New(metrics.LatencyP99, lat.P99),
		metrics.New(metrics.Throughput, thr.Throughput),
		metrics.New(metrics.ThroughputBatch, float64(ms.ThroughputBatch)),
		metrics.New(metrics.TrainSeconds, trainSec),
		metrics.New(metrics.CompressSeconds, compressSec),
		metrics.New(metrics.EvalSeconds, ev.eval.Seconds),
		metrics.New(metrics.PeakRSSBytes, float64(peak)),
	}
	if base := r.results[e.Baseline]; !e.IsBaseline && base != nil && base.Status == store.StatusOK {
		m = append(m, relative(m, base.Metrics)...)
	}
	rec.Metrics = m
	rec.Layers = nil
	for _, l := range counts.Layers {
		rec.Layers = append(rec.Layers, store.Layer{Name: l.Name, Kind: l.Kind, Params: l.Params, MACs: l.MACs})
	}
	rec.Curves = r.curves[e.Nodes[0]]
}

// relative computes the baseline-relative metrics of SPEC section 7.
func relative(m, base []metrics.Metric) []metrics.Metric {
	get := func(ms []metrics.Metric, name string) float64 {
		for _, x := range ms {
			if x.Name == name {
				return x.Value
			}
		}
		return math.NaN()
	}
	div := func(a, b float64) float64 {
		if b == 0 {
			return math.NaN()
		}
		return a / b
	}
	return []metrics.Metric{
		metrics.New(metrics.Top1Delta, get(m, metrics.Top1)-get(base, metrics.Top1)),
		metrics.New(metrics.CompressionRatio, div(get(base, metrics.SizeBytes), get(m, metrics.SizeBytes))),
		metrics.New(metrics.MACsRatio, div(get(m, metrics.MACs), get(base, metrics.MACs))),
		metrics.New(metrics.Speedup, div(get(base, metrics.LatencyP50), get(m, metrics.LatencyP50))),
		metrics.New(metrics.ThroughputGain, div(get(m, metrics.Throughput), get(base, metrics.Throughput))),
	}
}

// modelBytes is the model's size as stored: every tensor at 4 bytes per
// element (float32) unless the model records a lower bit width.
func modelBytes(m *vit.Model) int64 { return m.SizeBytes() }

// resetPeakRSS restarts the kernel's peak-RSS count (VmHWM), so each
// artifact and experiment records its own peak; a no-op where
// /proc/self/clear_refs is missing.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS is the process's peak resident set (VmHWM) since the last
// reset, in bytes.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

func metricValue(e *store.Experiment, name string) float64 {
	for _, m := range e.Metrics {
		if m.Name == name {
			return m.Value
		}
	}
	return math.NaN()
}

func ms(s float64) string {
	if math.IsNaN(s) {
		return "-"
	}
	return fmt.Sprintf("%.2f ms", s*1e3)
}

func toStorePoints(ps []pointJSON) []store.Point {
	out := make([]store.Point, len(ps))
	for i, p := range ps {
		out[i] = store.Point{Series: p.Series, Step: p.Step, Value: p.Value}
	}
	return out
}

func short(h string) string {
	if len(h) > 10 {
		return h[:10]
	}
	return h
}

func shortID(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
