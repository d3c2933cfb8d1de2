package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/qexec"
	"github.com/vitbench/vitbench/techniques"
	"github.com/vitbench/vitbench/techniques/quantize"

	"github.com/vitbench/vitbench/harness/measure"
	"github.com/vitbench/vitbench/harness/vit"
)

func init() { commands["latency"] = runLatency }

const latencyUsage = `usage: bench latency --arch NAME [--weights FILE] [--batch B] [--threads T]
                     [--engine auto|split|eager] [--precision fp32|bf16|fp16|int8|int8-dynamic]
                     [--warmup N] [--iters N] [--device cpu|cuda] [--json]

Measures a ViT's forward pass the way timm's benchmark script does: random
input of the model's shape, autograd off, --warmup untimed passes, then
--iters timed ones; prints the median (p50), p90 and p99 wall time per
batch and the throughput (batch / p50, images per second).

--engine says how a pass on the CPU uses its T threads. eager: one OS
thread runs the pass with libtorch's intra-op pool of T threads (OpenMP
for elementwise ops, OpenBLAS's pool for products), as PyTorch eager
does. split: T threads of one intra-op thread each run a share of the
pass, a batch of at least T images split by images and a smaller one by
tokens, meeting once per block (twice more at a token reduction). auto,
the default when T > 1, times five passes each way after a warm-up and
runs the faster; engine_ran says which.
--precision bf16 or fp16 casts every tensor of the model (as a quantize
stage with that precision does) and times the cast model; it fails, saying
so, where this libtorch has no kernel for it on the device (fp16 on the
CPU). int8 quantizes the blocks' linear layers and the head W8A8 (weights
per channel, activations per tensor, calibrated by min/max on random
images: speed, not accuracy) and int8-dynamic their weights only
(activations quantized per token as they come); both then execute on
oneDNN's int8 kernels, as a suite's quantized experiments do, and fail
where this machine has none. A --weights artifact that is already cast or
quantized keeps its own precision (fp32 here means: as stored); a
quantized one executes in int8 where it can, as in a suite, or is timed
on its float32 graph, labelled simulated.
The thread counts are set before any tensor work, on the OS threads that
then run every pass (OpenMP keeps the count per thread). --weights takes
what 'bench inspect' takes.

Flags:
`

// latencyResult is the `bench latency --json` object: the measurement
// (arch through engine; scripts/bench.sh reads these keys), then the
// settings behind it.
type latencyResult struct {
	Arch       string  `json:"arch"`
	Batch      int     `json:"batch"`
	Threads    int     `json:"threads"`
	Device     string  `json:"device"`
	P50ms      float64 `json:"p50_ms"`
	P90ms      float64 `json:"p90_ms"`
	P99ms      float64 `json:"p99_ms"`
	Throughput float64 `json:"throughput_ips"` // images per second: batch / p50
	Engine     string  `json:"engine"`         // auto, split or eager (see latencyUsage)
	EngineRan  string  `json:"engine_ran"`     // split or eager: what auto chose, else Engine
	// Executed is the precision the timed graph ran in: fp32, bf16, fp16,
	// int8, or "simulated" (a fake-quantized artifact timed on its fp32
	// graph).
	Executed string `json:"executed"`
	// ExecDetail says what ran in int8 on which kernels, or why a
	// quantized model stayed simulated (qexec.Prepare).
	ExecDetail string `json:"exec_detail,omitempty"`

	Warmup int `json:"warmup"`
	Iters  int `json:"iters"`
}

// runLatency implements `bench latency`.
func runLatency(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("latency", stderr, usageText(latencyUsage))
	var mf modelFlags
	mf.register(fs)
	batch := fs.Int("batch", 1, "images per forward pass")
	threads := fs.Int("threads", 0, "CPU threads (0 = all logical CPUs)")
	engine := fs.String("engine", "", "how a pass uses the threads: auto, split or eager (default auto when threads > 1)")
	warmup := fs.Int("warmup", 10, "untimed passes first")
	iters := fs.Int("iters", 50, "timed passes")
	device := fs.String("device", "cpu", "cpu or cuda")
	precision := fs.String("precision", "fp32", "fp32, bf16/fp16 to cast the model first, or int8/int8-dynamic to quantize it and execute it on int8 kernels")
	asJSON := fs.Bool("json", false, "print one JSON object: arch, batch, threads, device, p50_ms, p90_ms, p99_ms, throughput_ips")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	switch {
	case *batch < 1:
		return usageError{fmt.Errorf("latency: --batch %d: want >= 1", *batch)}
	case *iters < 1:
		return usageError{fmt.Errorf("latency: --iters %d: want >= 1", *iters)}
	case *warmup < 0:
		return usageError{fmt.Errorf("latency: --warmup %d: want >= 0", *warmup)}
	case *threads < 0:
		return usageError{fmt.Errorf("latency: --threads %d: want >= 0 (0 = all logical CPUs)", *threads)}
	case *device != "cpu" && *device != "cuda":
		return usageError{fmt.Errorf("latency: --device %q: want cpu or cuda", *device)}
	case *engine != "" && !slices.Contains(measure.Engines, *engine):
		return usageError{fmt.Errorf("latency: --engine %q: want %s", *engine, strings.Join(measure.Engines, ", "))}
	case !slices.Contains(latencyPrecisions, *precision):
		return usageError{fmt.Errorf("latency: --precision %q: want fp32, bf16, fp16, int8 or int8-dynamic", *precision)}
	case *engine == measure.EngineSplit && *device != "cpu":
		return usageError{fmt.Errorf("latency: --engine split: CPU only (a CUDA pass is one stream of kernels)")}
	}
	if !mf.isArtifact() {
		// Bad names fail before libtorch starts any work.
		if _, err := mf.config(); err != nil {
			return fmt.Errorf("latency: %w", err)
		}
	}
	dev, err := pickDevice(*device)
	if err != nil {
		return usageError{fmt.Errorf("latency: %w", err)}
	}

	// One OS thread for everything below: libtorch's grad mode and
	// OpenMP's thread count are per thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n := setThreads(*threads)
	eng := measure.ResolveEngine(*engine, n, *device == "cpu")
	split := measure.SplitFor(eng, n)

	m, err := mf.load(dev)
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	defer m.Drop()
	if *precision != "fp32" {
		if m.Cfg.Quant != nil {
			return usageError{fmt.Errorf("latency: --precision %s: the weights are already %s", *precision, m.Cfg.Quant.Precision)}
		}
		if err := quantizeForLatency(ctx, m, *precision); err != nil {
			return fmt.Errorf("latency: %w", err)
		}
	}
	detail, err := qexec.Prepare(m, qexec.EngineOneDNN)
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	if strings.HasPrefix(*precision, "int8") && m.Cfg.Executed != qexec.Int8 {
		return fmt.Errorf("latency: --precision %s does not execute here: %s", *precision, detail)
	}
	executed := m.Cfg.Executed
	if executed == "" {
		executed = "fp32"
	}
	// As the runner does: fake quantization is not low-precision speed,
	// so a simulated model's float32 graph is what runs.
	g, copied, err := m.TimedGraph()
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	if copied {
		defer g.Drop()
	}
	m = g
	lat, err := measure.Forward(ctx, m, measure.Options{Batch: *batch, Warmup: *warmup, Iters: *iters, Device: dev, Split: split, Auto: eng == measure.EngineAuto})
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	res := latencyResult{
		Arch: mf.label(m), Batch: lat.Batch, Threads: n, Device: *device,
		P50ms: 1e3 * lat.P50, P90ms: 1e3 * lat.P90, P99ms: 1e3 * lat.P99, Throughput: lat.Throughput,
		Engine: eng, EngineRan: measure.EngineEager, Executed: executed, ExecDetail: detail, Warmup: *warmup, Iters: *iters,
	}
	if lat.Split > 1 {
		res.EngineRan = measure.EngineSplit
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return writeLatencyText(stdout, res)
}

// latencyPrecisions are the values of bench latency --precision.
var latencyPrecisions = []string{"fp32", vit.PrecisionBF16, vit.PrecisionFP16, "int8", "int8-dynamic"}

// quantizeForLatency casts m to bf16/fp16, or quantizes it for int8
// execution: W8A8 (int8) or weight-only (int8-dynamic) blocks and head,
// calibrated on a few random images, whose values do not change a
// kernel's speed.
func quantizeForLatency(ctx context.Context, m *vit.Model, precision string) error {
	if precision == vit.PrecisionBF16 || precision == vit.PrecisionFP16 {
		return m.Cast(precision)
	}
	o := quantize.Options{WeightBits: 8, ActBits: 8, EdgeBits: 8, PerChannel: true, WeightSymmetric: true,
		Calibrator: techniques.CalibMinMax, Method: techniques.MethodPTQ,
		Groups: []string{techniques.GroupQKV, techniques.GroupProj, techniques.GroupFC1, techniques.GroupFC2, techniques.GroupHead}}
	if precision == "int8-dynamic" {
		o.ActBits = 0
	}
	p, err := quantize.NewPlan(m, o)
	if err != nil {
		return err
	}
	c := m.Cfg
	x := ts.MustRandn([]int64{8, int64(c.InChans), int64(c.ImgSize), int64(c.ImgSize)}, gotch.Float, m.VS.Device())
	defer x.MustDrop()
	if _, err := quantize.Quantize(ctx, m, []*ts.Tensor{x}, p); err != nil {
		return err
	}
	m.Cfg.Executed = vit.ExecutedSimulated
	return nil
}

func writeLatencyText(w io.Writer, r latencyResult) error {
	engine := r.Engine
	if r.EngineRan != "" && r.EngineRan != r.Engine {
		engine += ": " + r.EngineRan
	}
	fmt.Fprintf(w, "%s in %s on %s, batch %d, %d threads (%s): %d warm-up + %d timed passes, no-grad\n",
		r.Arch, r.Executed, r.Device, r.Batch, r.Threads, engine, r.Warmup, r.Iters)
	rows := [][]string{
		{"p50", fmt.Sprintf("%.2f ms", r.P50ms)},
		{"p90", fmt.Sprintf("%.2f ms", r.P90ms)},
		{"p99", fmt.Sprintf("%.2f ms", r.P99ms)},
		{"throughput", fmt.Sprintf("%.1f images/s (batch / p50)", r.Throughput)},
	}
	if r.ExecDetail != "" {
		rows = append(rows, []string{"execution", r.ExecDetail})
	}
	return writeTable(w, rows, 2)
}
