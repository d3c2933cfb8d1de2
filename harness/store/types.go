package store

import (
	"time"

	"github.com/vitbench/vitbench/harness/metrics"
)

// Machine is the fingerprint of the computer a run executed on. Runs from
// several machines are compared side by side, so everything that changes
// a measured latency belongs here.
type Machine struct {
	Hostname string
	CPU      string // model name
	Cores    int
	Threads  int // threads libtorch was allowed to use
	// Engine is how a CPU pass used Threads when it was timed: EngineEager
	// or EngineSplit (see bench latency --engine). Empty reads as eager.
	Engine      string
	MemoryBytes int64
	GPU         string // empty when none
	CUDA        bool
	OS          string
	Libtorch    string
	BLAS        string // the BLAS libtorch actually loaded
	SgemmGFLOPS float64
	Gotch       string
	Go          string
}

// The ways a timed CPU pass uses its threads (Machine.Engine).
const (
	EngineEager = "eager" // one pass on libtorch's intra-op pool, as PyTorch eager runs it
	EngineSplit = "split" // each thread a share of the pass (vit.Parallel)
)

// Run is one invocation of `bench run` on one suite.
type Run struct {
	ID        int64
	UUID      string
	Machine   Machine
	SuiteName string
	SuitePath string
	SuiteHash string // hash of the resolved suite
	GitCommit string
	Args      []string // the command line
	Device    string   // cpu or cuda
	Started   time.Time
	Ended     time.Time // zero while running
	Status    string    // StatusRunning, StatusOK, StatusFailed, StatusInterrupted

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
	Name     string            // unique within a run, e.g. "ptq/w8a8-minmax"
	Group    string            // the [[experiment]] it expanded from, e.g. "ptq"
	Model    string            // baseline model name from the suite
	Dataset  string            // e.g. "cifar10"
	Baseline string            // name of the experiment its relative metrics are against; empty for a baseline
	Families []string          // technique families in pipeline order: "quantize", "prune", ...
	Pipeline string            // human-readable pipeline, e.g. "prune(heads=0.5) → distill(T=4) → quantize(w8a8)"
	Params   map[string]string // the swept parameters and their values, for sweep curves
	SpecJSON string            // the full resolved spec
	Hash     string            // artifact hash of the final model
	Status   string
	Error    string
	Executed string // "fp32", "int8", "fp16", ... or "simulated"; how latency was executed
	Started  time.Time
	Ended    time.Time
	Metrics  []metrics.Metric
	Layers   []Layer // per-layer counts of the final model
	Curves   []Point // training/fine-tuning curves
}

// Layer is one row of a per-layer count table.
type Layer struct {
	Name   string
	Kind   string // "linear", "conv", "attention", "norm", ...
	Params int64
	MACs   int64
	Bits   int // 0 for float
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
