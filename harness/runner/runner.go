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
	"strings"
	"time"

	"github.com/sugarme/gotch"
	"github.com/vitbench/vitbench/harness/config"
	"github.com/vitbench/vitbench/harness/measure"
	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/plan"
	"github.com/vitbench/vitbench/harness/qexec"
	"github.com/vitbench/vitbench/harness/store"
	"github.com/vitbench/vitbench/harness/sysinfo"
	"github.com/vitbench/vitbench/harness/train"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques/compress"
)

// Runner runs one plan. Fill the fields, then call Execute.
type Runner struct {
	Plan    *plan.Plan
	DB      *store.DB
	Run     store.Run // filled in (machine, suite, args; sysinfo.Info.Run) by the caller; Execute sets Threads, Engine and Device
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

	cache cache
	state *runState // what this Execute has learnt so far

	workers, workerThreads int // resolved TrainWorkers and threads of each
	split                  int // threads a timed pass is split over (measure.Options.Split); 0: eager
}

// runState is what one Execute learns as it goes: the data it loaded and
// what it found building each artifact and measuring each experiment.
// Execute starts a fresh one.
type runState struct {
	data    map[string]*dataset          // loaded data, by what it was loaded for (Runner.dataset)
	results map[string]*store.Experiment // by experiment name, this run
	failed  map[string]error             // node hash -> why it could not be built
	times   map[string]float64           // node hash -> seconds to build (this run or cached)
	peaks   map[string]int64             // node hash -> peak resident bytes while building
	curves  map[string][]store.Point     // model node hash -> training curve
}

func newRunState() *runState {
	return &runState{
		data:    map[string]*dataset{},
		results: map[string]*store.Experiment{},
		failed:  map[string]error{},
		times:   map[string]float64{},
		peaks:   map[string]int64{},
		curves:  map[string][]store.Point{},
	}
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
	threads := r.setup()

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
		r.state.results[e.Name] = rec
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
		rec := r.state.results[e.Name]
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
		rec := r.state.results[e.Name]
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
			top1 := fmt.Sprintf("%-13s", "timed only")
			if v := metricValue(rec, metrics.Top1); !math.IsNaN(v) {
				top1 = fmt.Sprintf("top-1 %6.2f%%", v)
			}
			fmt.Fprintf(r.Log, "ok     %-40s %s  p50 %s\n", e.Name, top1, ms(metricValue(rec, metrics.LatencyP50)))
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

// setup resolves the threads, engine, workers and device of a run and
// starts its state; it returns the threads. The caller has locked its OS
// thread.
func (r *Runner) setup() int {
	threads := r.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	torchrt.SetNumThreads(threads)
	r.Run.Threads = threads
	if r.Device.Name == "" {
		r.Device = gotch.CPU
	}
	r.Run.Device = strings.ToLower(r.Device.Name)
	r.Run.Engine = measure.ResolveEngine(r.Plan.Suite.Measure.Engine, threads, r.Device == gotch.CPU)
	r.split = measure.SplitFor(r.Run.Engine, threads)
	r.Run.Int8Engine = qexec.EngineName(r.Plan.Suite.Measure.Int8Engine, r.Device == gotch.CPU)
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
	r.state = newRunState()
	return threads
}

// Build makes the artifacts of the plan's nodes whose hashes are given,
// in plan order, into the cache, and nothing else: no database, no
// evaluation. Their inputs must be cached already (a scheduler runs each
// artifact's job after its parents'). It is how one cluster job builds
// one artifact; the error names every node that could not be built.
func (r *Runner) Build(ctx context.Context, hashes []string) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r.setup()
	want := map[string]bool{}
	for _, h := range hashes {
		want[h] = true
	}
	found := 0
	var errs []error
	for _, n := range r.Plan.Nodes {
		if !want[n.Hash] {
			continue
		}
		found++
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.buildNode(ctx, n)
		if err := r.state.failed[n.Hash]; err != nil {
			errs = append(errs, fmt.Errorf("build %s (%s): %w", short(n.Hash), describe(n), err))
		}
	}
	if found != len(want) {
		return fmt.Errorf("build: %d of %d artifacts are not in the plan", len(want)-found, len(want))
	}
	return errors.Join(errs...)
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
		if err, bad := r.state.failed[up]; bad {
			r.state.failed[n.Hash] = fmt.Errorf("an input failed: %w", err)
			return
		}
	}
	if meta, err := r.cache.meta(n.Hash); err == nil {
		r.state.times[n.Hash] = meta.Seconds
		r.state.peaks[n.Hash] = meta.PeakRSS
		r.state.curves[n.Hash] = toStorePoints(meta.Curve)
		return
	} else if !errors.Is(err, errNotCached) || !strings.Contains(err.Error(), "no such file") {
		fmt.Fprintf(r.Log, "rebuilding %s: %v\n", short(n.Hash), err)
	}
	start := time.Now()
	sysinfo.ResetPeakRSS()
	err := protect(func() error {
		model, meta, err := r.make(ctx, n)
		if err != nil {
			return err
		}
		defer model.Drop()
		meta.Seconds = time.Since(start).Seconds()
		meta.PeakRSS = sysinfo.PeakRSS()
		return r.cache.save(n.Hash, string(n.Kind), model, meta)
	})
	if err != nil {
		r.state.failed[n.Hash] = err
		fmt.Fprintf(r.Log, "failed to build %s (%s): %v\n", short(n.Hash), describe(n), firstLine(err.Error()))
		return
	}
	m, _ := r.cache.meta(n.Hash)
	if m != nil {
		r.state.times[n.Hash] = m.Seconds
		r.state.peaks[n.Hash] = m.PeakRSS
		r.state.curves[n.Hash] = toStorePoints(m.Curve)
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
	case plan.KindTrain, plan.KindLoad, plan.KindInit:
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
	torchrt.ManualSeed(n.Seed)
	model, err := vit.New(cfg, r.Device)
	if err != nil {
		return nil, nil, err
	}
	meta := &artifactMeta{}
	if n.Kind == plan.KindInit {
		return model, meta, nil
	}
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
	res, err := r.fit(ctx, "train "+n.Model.Name, model, ds, n.Seed, recipeOf(n.Model.Train), train.Options{Loss: loss})
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

// fit trains m on ds's training images in the order seed shuffles them.
func (r *Runner) fit(ctx context.Context, task string, m *vit.Model, ds *dataset, seed int64, rec train.Recipe, o train.Options) (*train.Result, error) {
	src, err := ds.trainSource(r.Device, seed)
	if err != nil {
		return nil, err
	}
	total := rec.Steps(src.NumBatches())
	o.Progress = func(step, _ int, loss float64) {
		if r.Progress != nil {
			r.Progress(task, step, total, fmt.Sprintf("loss %.3f", loss))
		}
	}
	if o.Workers == 0 { // the caller's choice stands (a stage training on the model itself)
		o.Workers, o.WorkerThreads = r.workers, r.workerThreads
	}
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
	model, _, err := r.cache.load(n.Upstream, r.Device)
	if err != nil {
		return nil, nil, fmt.Errorf("upstream of %s: %w", n.Stage.Label, err)
	}
	env := &env{r: r, node: n}
	torchrt.ManualSeed(n.Seed) // what a stage draws from libtorch repeats, whatever was built before it
	out, err := compress.Apply(ctx, n.Stage.Technique, n.Stage.Config, model, env)
	if err != nil {
		model.Drop()
		return nil, nil, fmt.Errorf("%s: %w", n.Stage.Label, err)
	}
	if out != model {
		model.Drop()
	}
	return out, &artifactMeta{}, nil
}

func ms(s float64) string {
	if math.IsNaN(s) {
		return "-"
	}
	return fmt.Sprintf("%.2f ms", s*1e3)
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
