// Package config reads vitbench suites: the TOML files that declare the
// models to train (or load) and the experiments to run on them.
//
// ReadFile and Parse decode a suite and check all of it before anything is
// computed: unknown keys, wrong types, out-of-range values, references to
// undeclared models or experiments, duplicate names, include and reference
// cycles, and every pipeline stage's parameters against the Config of the
// registered technique (package techniques). Every problem becomes an
// *Error naming file, line and full key; they are returned together as an
// ErrorList. Parsing has no side effects: it reads the suite file and its
// includes, and nothing else.
//
// The decoded types are plain data. Stages keep their parameters as
// written, list-valued ones unexpanded; Stage.Expand decodes one Config per
// grid point. Package plan turns a Suite into the experiments to run and
// the cached artifacts they share. experiments/example.toml documents every
// key.
package config

import (
	"fmt"
	"math"

	"github.com/vitbench/vitbench/techniques"
)

// Defaults for the keys a suite may leave out.
const (
	defaultCacheDir        = ".cache/artifacts"
	defaultLatencyBatch    = 1
	defaultThroughputBatch = 64
	defaultWarmup          = 10
	defaultIters           = 50
	defaultEvalBatch       = 256
	defaultValSize         = 5000 // carved out of a full CIFAR-10 or (Fashion-)MNIST training split

	// MaxSeeds bounds the seeds of one model or experiment.
	MaxSeeds = 32

	// MaxBatch bounds every batch size, MaxIters the timed and warm-up
	// passes: far beyond what any machine here can run, they only catch
	// typing mistakes before they become allocations that end a run.
	MaxBatch = 1 << 16
	MaxIters = 1_000_000

	// MaxGrid bounds the number of grid points one stage may expand into;
	// package plan applies it to whole experiments too.
	MaxGrid = 10000
)

// Options are what the caller knows and this package does not.
type Options struct {
	// CheckArch reports whether name is a registered architecture
	// (e.g. "deit_tiny_patch16_224"). Nil accepts every name.
	CheckArch func(name string) error
	// KnownData lists the data set names the caller can load. Nil means
	// the built-in ones (cifar10, fashion-mnist, mnist, imagefolder,
	// synthetic).
	KnownData []string
	// MemoryBytes is the memory of the machine the suite will run on;
	// when set, a model whose training batch is estimated to need more is
	// refused. Zero skips the estimate.
	MemoryBytes int64
}

// archMax bounds each architecture dimension; a ViT-H/14 is 32 deep and
// 1280 wide, at 518 pixels.
var archMax = map[string]int{
	"img_size": 4096, "patch_size": 4096, "in_chans": 64, "embed_dim": 16384,
	"depth": 256, "num_heads": 1024, "num_classes": 1 << 20,
}

// trainingBytes estimates the memory a training step of the architecture
// takes at batch: float32 weights, gradients and two Adam moments, and
// for every block the activations autograd keeps (about twenty token-wide
// tensors, the MLP's hidden ones, and the attention maps). Dimensions a
// base architecture supplies and the spec leaves out are taken as
// ViT-B/16's at 224, which over-estimates every smaller base.
func (a ArchSpec) trainingBytes(batch int) int64 {
	get := func(v *int, def int) float64 {
		if v != nil && *v > 0 {
			return float64(*v)
		}
		return float64(def)
	}
	img, patch := get(a.ImgSize, 224), get(a.PatchSize, 16)
	dim, depth, heads := get(a.EmbedDim, 768), get(a.Depth, 12), get(a.NumHeads, 12)
	ratio := 4.0
	if a.MLPRatio != nil {
		ratio = *a.MLPRatio
	}
	tokens := (img/patch)*(img/patch) + 1
	params := depth * (4 + 2*ratio) * dim * dim
	perImage := depth * (20*tokens*dim + 3*ratio*tokens*dim + 3*heads*tokens*tokens)
	bytes := 4 * (4*params + float64(batch)*perImage)
	if bytes > math.MaxInt64/2 {
		return math.MaxInt64 / 2
	}
	return int64(bytes)
}

// gib formats a byte count in GiB.
func gib(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

// Suite is a decoded, checked suite.
type Suite struct {
	Name        string
	Description string
	Seed        int64
	File        string   // the top file
	Files       []string // every file read, the top file first, for hashing
	DataDirs    []string // extra places to look for data sets, relative paths joined onto their file's folder
	CacheDir    string   // where artifacts are cached; relative to the working folder
	Measure     Measure
	Slurm       Slurm         // sbatch options of `bench slurm`
	Models      []*Model      // in declaration order (included files first)
	Experiments []*Experiment // in declaration order (included files first)
}

// Slurm holds the sbatch options a suite gives its cluster jobs; empty
// fields are left to the cluster's defaults (and to flags).
type Slurm struct {
	Partition string `json:"partition,omitempty"` // --partition
	Time      string `json:"time,omitempty"`      // --time, e.g. "02:00:00"
	CPUs      int    `json:"cpus,omitempty"`      // --cpus-per-task
	Mem       string `json:"mem,omitempty"`       // --mem, e.g. "16G"
	Gres      string `json:"gres,omitempty"`      // --gres, e.g. "gpu:1"
	Account   string `json:"account,omitempty"`   // --account
}

// Model returns the model named name, or nil.
func (s *Suite) Model(name string) *Model {
	for _, m := range s.Models {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Experiment returns the experiment named name, or nil.
func (s *Suite) Experiment(name string) *Experiment {
	for _, e := range s.Experiments {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// Measure is how latency, throughput and accuracy are measured
// ([suite.measure]).
type Measure struct {
	LatencyBatch    int `json:"latency_batch"`    // batch size of the latency measurement
	ThroughputBatch int `json:"throughput_batch"` // batch size of the throughput measurement
	Warmup          int `json:"warmup"`           // untimed iterations first
	Iters           int `json:"iters"`            // timed iterations
	Threads         int `json:"threads"`          // libtorch threads; 0 = all cores
	EvalBatch       int `json:"eval_batch"`       // batch size of accuracy evaluation
	// Engine is how a timed pass on the CPU uses its threads: EngineAuto
	// (the faster of the two, measured per model and batch), EngineSplit
	// or EngineEager (bench latency --engine); measure.ResolveEngine says
	// which one a timing runs with.
	Engine string `json:"engine"`
	// Int8Engine executes integer-quantized models: Int8OneDNN (oneDNN's
	// int8 kernels where the CPU has them, the default) or Int8None (keep
	// them simulated in float32, timed on their float graph).
	Int8Engine string `json:"int8_engine"`
}

// The values the [suite.measure] int8_engine key accepts.
const (
	Int8OneDNN = "onednn"
	Int8None   = "none"
)

// The values the [suite.measure] engine key accepts. They name the
// engines of harness/measure (measure.EngineSplit, measure.EngineEager),
// where the rule that picks one lives (measure.ResolveEngine); config
// keeps its own copy of the names so that parsing a suite does not link
// the timing code. A test checks that the two lists agree.
const (
	EngineAuto  = "auto"  // the faster of split and eager, per model and batch (the default)
	EngineSplit = "split" // each thread a share of the pass
	EngineEager = "eager" // one pass on libtorch's intra-op pool
)

// Engines lists the accepted engine names, the default first.
var Engines = []string{EngineAuto, EngineSplit, EngineEager}

// DefaultMeasure returns the measurement settings a suite starts from.
func DefaultMeasure() Measure {
	return Measure{
		LatencyBatch:    defaultLatencyBatch,
		ThroughputBatch: defaultThroughputBatch,
		Warmup:          defaultWarmup,
		Iters:           defaultIters,
		EvalBatch:       defaultEvalBatch,
		Engine:          EngineAuto,
		Int8Engine:      Int8OneDNN,
	}
}

// Model is a [models.NAME] table: a baseline (and possibly a teacher) with
// its architecture, data and training recipe.
type Model struct {
	Name        string
	Description string
	Arch        ArchSpec
	Data        DataSpec
	Train       TrainSpec // meaningful only when Weights is empty
	Weights     string    // checkpoint to load instead of training; joined onto the suite file's folder
	Teacher     string    // model or experiment to distill from while training; empty for none
	// TimedOnly models are measured for cost and speed only: never
	// evaluated for accuracy and, without Weights, never trained (their
	// seeded initialisation is timed). Deployment-scale shapes such as
	// deit_small at 224 are timed this way where training them is not
	// possible.
	TimedOnly bool
	// Seeds, when given, train the model once per seed (distinct, >= 0,
	// at most MaxSeeds): its baseline and every experiment on it are
	// replicated per seed. Nil: one model, trained with the suite's seed.
	Seeds []int64
	File  string
	Line  int
}

// ArchSpec is a model's architecture: a registered base plus overrides.
// A nil field was not given: the base's value applies (the ViT registry
// merges the overrides last). With no base, img_size, patch_size,
// embed_dim, depth and num_heads are required. NumClasses and InChans,
// when not given, are set from a data set whose class count and channels
// are known.
type ArchSpec struct {
	Base       string   `json:"base,omitempty"`
	ImgSize    *int     `json:"img_size,omitempty"`
	PatchSize  *int     `json:"patch_size,omitempty"`
	InChans    *int     `json:"in_chans,omitempty"`
	EmbedDim   *int     `json:"embed_dim,omitempty"`
	Depth      *int     `json:"depth,omitempty"`
	NumHeads   *int     `json:"num_heads,omitempty"`
	MLPRatio   *float64 `json:"mlp_ratio,omitempty"`
	NumClasses *int     `json:"num_classes,omitempty"`
	Distilled  *bool    `json:"distilled,omitempty"`
	QKVBias    *bool    `json:"qkv_bias,omitempty"`
}

// DataSpec is the data set a model is trained and evaluated on.
type DataSpec struct {
	Name      string `json:"name"`                 // cifar10, fashion-mnist, mnist, imagefolder, synthetic, or a caller's name
	Path      string `json:"path,omitempty"`       // imagefolder: folder or tar(.gz); joined onto the suite file's folder
	TrainSize int    `json:"train_size,omitempty"` // subset of the training split; 0 = all
	TestSize  int    `json:"test_size,omitempty"`  // subset of the test split; 0 = all
	ValSize   int    `json:"val_size"`             // validation images carved out of the training images
	ImgSize   int    `json:"img_size,omitempty"`   // resize to this; 0 = native size
	Channels  int    `json:"channels,omitempty"`   // 1 or 3; 0 = native
}

// TrainImages returns the number of images a model trains on (training
// images less the validation carve-out), or 0 when the data set's size is
// not known before loading it.
func (d DataSpec) TrainImages() int {
	n := d.TrainSize
	if n == 0 {
		n = builtinData[d.Name].train
	}
	if n == 0 {
		return 0
	}
	return n - d.ValSize
}

// classes returns the data set's class count, or 0 when it is not known
// before loading it.
func (d DataSpec) classes() int { return builtinData[d.Name].classes }

// TrainSpec is a training recipe ([models.NAME.train]).
type TrainSpec struct {
	Epochs         float64 `json:"epochs"`
	MaxSteps       int     `json:"max_steps,omitempty"` // 0 = no cap
	BatchSize      int     `json:"batch_size"`
	LR             float64 `json:"lr"`
	MinLR          float64 `json:"min_lr"`
	WeightDecay    float64 `json:"weight_decay"`
	Optimizer      string  `json:"optimizer"` // adamw, adam, sgd
	Momentum       float64 `json:"momentum"`  // sgd only
	Schedule       string  `json:"schedule"`  // cosine, linear, constant (after warm-up)
	WarmupEpochs   float64 `json:"warmup_epochs"`
	LabelSmoothing float64 `json:"label_smoothing"`
	GradClip       float64 `json:"grad_clip"` // max global gradient norm; 0 = off
	Augment        string  `json:"augment"`   // none, flip, crop-flip
	Mixup          float64 `json:"mixup"`     // mixup alpha; 0 = off
}

// defaultTrain returns the recipe a model starts from: a ViT-on-CIFAR
// recipe. WarmupEpochs, when not given, is min(1, epochs/10).
func defaultTrain() TrainSpec {
	return TrainSpec{
		Epochs:         10,
		BatchSize:      128,
		LR:             1e-3,
		MinLR:          1e-5,
		WeightDecay:    0.05,
		Optimizer:      "adamw",
		Momentum:       0.9,
		Schedule:       "cosine",
		WarmupEpochs:   1,
		LabelSmoothing: 0.1,
		GradClip:       1.0,
		Augment:        "crop-flip",
	}
}

// Experiment is one [[experiment]]: a model plus an ordered pipeline of
// stages. An empty pipeline measures the model itself.
type Experiment struct {
	Name        string
	Model       string
	Description string
	Stages      []Stage
	// Seeds, when given, repeat the pipeline once per seed (the seed of
	// its calibration subsets, fine-tuning order and initialisations). On
	// a model without seeds the model is trained once, with the suite's
	// seed; on a model with seeds each must be one of the model's, and
	// seed s starts from the model trained with seed s. Nil: the model's
	// seeds, or the suite's seed.
	Seeds []int64
	File  string
	Line  int
	Key   string // e.g. "experiment[2]" (index within its file)

	seedsAt *Error // where seeds is written, for the check against the model's
}

// Stage is one pipeline stage as written: a technique and its parameters,
// list-valued ones not yet expanded. Stage.Expand decodes it.
type Stage struct {
	Technique string
	Family    string  // the technique's family
	Params    []Param // in the order written, without "technique"
	File      string
	Line      int
	Key       string // e.g. "experiment[2].pipeline[0]"

	tech techniques.Technique
}

// Param is one stage parameter as written.
type Param struct {
	Key   string
	Value any  // as TOML decodes it: int64, float64, string, bool, time values, []any, map[string]any
	Swept bool // a list of alternatives: the stage expands into one grid point per element
	Line  int

	elemLines []int // lines of a swept list's elements
}

// Known data sets; the zero entry means sizes unknown until loaded.
type dataInfo struct {
	train, test, classes, channels, imgSize int
	needsPath                               bool
}

// builtinDataNames lists the data set names the harness knows.
var builtinDataNames = []string{"cifar10", "fashion-mnist", "mnist", "imagefolder", "synthetic"}

var builtinData = map[string]dataInfo{
	"cifar10":       {train: 50000, test: 10000, classes: 10, channels: 3, imgSize: 32},
	"fashion-mnist": {train: 60000, test: 10000, classes: 10, channels: 1, imgSize: 28},
	"mnist":         {train: 60000, test: 10000, classes: 10, channels: 1, imgSize: 28},
	"imagefolder":   {needsPath: true},
	"synthetic":     {},
}
