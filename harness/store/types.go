package store

import (
	"time"

	"github.com/vitbench/vitbench/harness/metrics"
)

// Machine is the fingerprint of the computer a run executed on: the
// hardware and the software set-up on it. Runs from several machines are
// compared side by side. How a run used the machine (threads, engines) and
// what it measured of it (sgemm speed, SIMD flags, CUDA use) are facts of
// the Run.
type Machine struct {
	Hostname    string
	CPU         string // model name
	Cores       int
	MemoryBytes int64
	GPU         string // empty when none
	OS          string
	Libtorch    string
	BLAS        string // the BLAS libtorch actually loaded
	Gotch       string
	Go          string
}

// Run is one invocation of `bench run` on one suite.
type Run struct {
	ID      int64
	UUID    string
	Machine Machine
	Threads int // threads libtorch was allowed to use
	// Engine is how a CPU pass used Threads when it was timed:
	// measure.EngineEager or measure.EngineSplit (see bench latency
	// --engine). BeginRun stores an empty one as eager, and runs from
	// before engines were recorded read as eager.
	Engine      string
	SgemmGFLOPS float64 // sgemm speed through libtorch when the run began; 0 or NaN when not measured
	// SIMD is the CPU's vector and matrix instruction flags
	// (sysinfo.Info.SIMD, "sse4_2 avx avx2 fma f16c"), which decide the
	// kernels libtorch and oneDNN pick; "" when unknown or stored before.
	SIMD string
	// Int8Engine is the kernel library integer-quantized models executed
	// on, e.g. "oneDNN 2.6.3 avx2", or "none" when they stayed simulated;
	// "" when stored before it was recorded.
	Int8Engine string
	CUDA       bool // libtorch could use a CUDA device

	SuiteName string
	SuitePath string
	SuiteHash string // hash of the resolved suite
	// SuiteDescription is the suite's own description; "" where it gives
	// none or the run was stored before descriptions were.
	SuiteDescription string
	GitCommit        string
	Args             []string // the command line
	Device           string   // cpu or cuda
	Started          time.Time
	Ended            time.Time // zero while running
	Status           string    // StatusRunning, StatusOK, StatusFailed, StatusInterrupted

	// PID and Host name the process that wrote the run (filled by
	// BeginRun). A run left running by a process that no longer exists on
	// this host is reported as interrupted.
	PID  int
	Host string
}

// Status values for runs and experiments.
const (
	StatusRunning     = "running"
	StatusOK          = "ok"
	StatusFailed      = "failed"
	StatusInterrupted = "interrupted" // a run whose process died; found on the next open
)

// Experiment is one resolved experiment of a run: a baseline plus a
// pipeline of stages, with what it measured.
type Experiment struct {
	ID       int64
	RunID    int64
	Name     string   // unique within a run, e.g. "ptq/w8a8-minmax"
	Group    string   // the [[experiment]] it expanded from, e.g. "ptq"
	Model    string   // baseline model name from the suite
	Dataset  string   // e.g. "cifar10"
	Baseline string   // name of the experiment its relative metrics are against; empty for a baseline
	Families []string // technique families in pipeline order: "quantize", "prune", ...
	Pipeline string   // human-readable pipeline, e.g. "prune(heads=0.5) → distill(T=4) → quantize(w8a8)"
	// Description is the suite's description of the experiment (of its
	// model, for a baseline); ModelDescription its model's. Both are ""
	// where the suite gives none.
	Description      string
	ModelDescription string
	Params           map[string]string // the swept parameters and their values, for sweep curves
	Settings         []Setting         // every parameter of every stage, defaults included, in pipeline order (see Setting); none when stored before settings existed
	SpecJSON         string            // the full resolved spec
	Hash             string            // artifact hash of the final model
	Status           string
	Error            string
	Executed         string // "fp32", "int8", "fp16", ... or "simulated"; how latency was executed
	// ExecDetail says what executed how: for a quantized model the kernel
	// library, the layers in int8 and those left in float32, or why it
	// stayed simulated; "" for float models.
	ExecDetail string
	// Quant lists every quantized site of the final model; nil for float
	// models and experiments stored before it existed.
	Quant   *Quantization
	Started time.Time
	Ended   time.Time
	Metrics []metrics.Metric
	Layers  []Layer // per-layer counts of the final model
	Curves  []Point // training/fine-tuning curves
	// Outcomes is the final model's per-image correctness (top-1, top-5,
	// and top-1 simulated for an executed quantized model); none for
	// experiments stored before they were kept.
	Outcomes []Outcome
	// Samples is every timed pass of the experiment's graph.
	Samples []Sample
	// Seed is the seed its model and stages were made with; nil when
	// stored before seeds were recorded.
	Seed *int64
	// Replica is the name the experiment's seed replicas share, e.g.
	// "ptq/w8" for "ptq/w8-seed1" (package plan); its own name when it has
	// one seed, "" when stored before seeds were recorded. See Replicas.
	Replica string
}

// ReplicaName returns the name the experiment's seed replicas share: its
// Replica, or its name for experiments stored before seeds were recorded.
func (e *Experiment) ReplicaName() string {
	if e.Replica != "" {
		return e.Replica
	}
	return e.Name
}

// Outcome is an experiment's per-image correctness on its test images,
// from which accuracy intervals and paired tests are computed
// (package stats).
type Outcome struct {
	Metric string // metrics.Top1, metrics.Top5 or metrics.Top1Simulated
	// Images identifies the test images and their order (data set, split,
	// subset and its seed); outcomes pair only when equal.
	Images string
	N      int
	Bits   []byte // bit i (byte i/8, least significant first) set when image i was correct (stats.Bits)
}

// Series of timed samples.
const (
	SeriesLatency    = "latency"    // seconds per pass at batch 1
	SeriesThroughput = "throughput" // images per second of one pass at the throughput batch
)

// Sample is one timed pass.
type Sample struct {
	Series string // SeriesLatency or SeriesThroughput
	Round  int    // the interleaved round it ran in
	Value  float64
}

// Outcome returns the experiment's outcome for metric, and whether it
// has one.
func (e *Experiment) Outcome(metric string) (Outcome, bool) {
	for _, o := range e.Outcomes {
		if o.Metric == metric {
			return o, true
		}
	}
	return Outcome{}, false
}

// SampleValues returns the values of the experiment's samples of series,
// in the order they were timed.
func (e *Experiment) SampleValues(series string) []float64 {
	var vs []float64
	for _, s := range e.Samples {
		if s.Series == series {
			vs = append(vs, s.Value)
		}
	}
	return vs
}

// Setting is one resolved parameter of one stage of an experiment.
type Setting struct {
	// Name is the flat key, unique within the experiment:
	// "technique.key" for the first stage of a technique in the pipeline,
	// "technique#N.key" for its Nth ("quantize.weight_bits",
	// "quantize#2.weight_bits"), as package plan names it.
	Name      string
	Stage     int    // index in the pipeline
	Technique string // e.g. "quantize"
	Key       string // the parameter's name in the technique's Config, e.g. "weight_bits"
	Value     string // as text, the way a suite writes it: 8, 0.5, minmax, [qkv,proj]
	Swept     bool   // chosen by the experiment's grid
}

// Setting returns the value of the parameter with flat key name (e.g.
// "quantize.weight_bits"), and whether the experiment has it.
func (e *Experiment) Setting(name string) (string, bool) {
	for _, s := range e.Settings {
		if s.Name == name {
			return s.Value, true
		}
	}
	return "", false
}

// Layer is one row of a per-layer count table.
type Layer struct {
	Name   string
	Kind   string // "linear", "conv", "attention", "norm", ...
	Params int64
	MACs   int64
	Bits   int // the width of the layer's quantized weights; 0 for float
}

// Point is one sample of a training curve.
type Point struct {
	Series string // e.g. "train_loss", "val_top1"
	Step   int
	Value  float64
}

// Artifact is a cached stage output on disk.
type Artifact struct {
	Hash    string
	Kind    string // "baseline", "stage", "teacher"
	Path    string
	SHA256  string // of the file, checked before loading
	Bytes   int64
	Created time.Time
}
