package reports

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/store"
)

var t0 = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

// exp describes a synthetic experiment: costs relative to a baseline of
// 80% top-1, 1.2 GMACs, 5.5M parameters, 22 MB, 4 ms.
type exp struct {
	name, group, pipeline string
	families              []string
	params                map[string]string
	settings              []store.Setting
	top1                  float64
	macs, size, lat       float64 // fractions of the baseline
	executed              string
	failed                bool
	noLatency             bool
}

const (
	baseMACs   = 1.2e9
	baseParams = 5.5e6
	baseSize   = 22e6
	baseLat    = 0.004
)

func makeExperiment(runID int64, dataset, model string, e exp, latScale float64) store.Experiment {
	x := store.Experiment{
		RunID: runID, Name: e.name, Group: e.group, Model: model, Dataset: dataset,
		Families: e.families, Pipeline: e.pipeline, Params: e.params, Settings: e.settings, Status: store.StatusOK,
		Executed: e.executed, Hash: fmt.Sprintf("%064x", len(e.name)),
		SpecJSON: fmt.Sprintf(`{"name":%q,"model":%q,"pipeline":[]}`, e.name, model),
		Started:  t0, Ended: t0.Add(time.Minute),
	}
	if len(e.families) > 0 {
		x.Baseline = "baseline"
	}
	if x.Executed == "" {
		x.Executed = "fp32"
	}
	if e.failed {
		x.Status = store.StatusFailed
		x.Error = "compress: out of memory\nstack..."
		return x
	}
	x.Metrics = []metrics.Metric{
		metrics.New(metrics.Top1, e.top1),
		metrics.New(metrics.Top5, e.top1+15),
		metrics.New(metrics.Params, baseParams*e.size),
		metrics.New(metrics.MACs, baseMACs*e.macs),
		metrics.New(metrics.SizeBytes, baseSize*e.size),
		metrics.New(metrics.Throughput, 250/e.lat/latScale),
	}
	if !e.noLatency {
		x.Metrics = append(x.Metrics,
			metrics.New(metrics.LatencyP50, baseLat*e.lat*latScale),
			metrics.New(metrics.LatencyP90, baseLat*e.lat*latScale*1.1),
		)
	}
	x.Layers = []store.Layer{
		{Name: "patch_embed", Kind: "conv", Params: 9408, MACs: 1_200_000},
		{Name: "blocks.0.attn.qkv", Kind: "linear", Params: 111_168, MACs: 7_000_000, Bits: 8},
	}
	for step := 0; step < 5; step++ {
		x.Curves = append(x.Curves,
			store.Point{Series: "train_loss", Step: step * 100, Value: 2.3 / float64(step+1)},
			store.Point{Series: "val_top1", Step: step * 100, Value: e.top1 * float64(step+1) / 5},
		)
	}
	return x
}

// suiteExperiments is a suite covering every family, a combination, a
// failed experiment and one without latency.
var suiteExperiments = []exp{
	{name: "baseline", top1: 80, macs: 1, size: 1, lat: 1},
	{name: "ptq/w8a8", group: "ptq", pipeline: "quantize(w8a8, minmax)", families: []string{"quantize"}, params: map[string]string{"weight_bits": "8", "act_bits": "8"}, settings: quantSettings(0, "8", "8", true), top1: 79.6, macs: 1, size: 0.25, lat: 0.7, executed: "int8"},
	{name: "ptq/w6a6", group: "ptq", pipeline: "quantize(w6a6, minmax)", families: []string{"quantize"}, params: map[string]string{"weight_bits": "6", "act_bits": "6"}, settings: quantSettings(0, "6", "6", true), top1: 77.0, macs: 1, size: 0.19, lat: 1.3, executed: "simulated"},
	{name: "ptq/w4a4", group: "ptq", pipeline: "quantize(w4a4, minmax)", families: []string{"quantize"}, params: map[string]string{"weight_bits": "4", "act_bits": "4"}, settings: quantSettings(0, "4", "4", true), top1: 60.0, macs: 1, size: 0.13, lat: 1.3, executed: "simulated"},
	{name: "lowrank/r50", group: "lowrank", pipeline: "lowrank(ratio=0.5)", families: []string{"lowrank"}, params: map[string]string{"rank_ratio": "0.5"}, top1: 76.0, macs: 0.6, size: 0.6, lat: 0.65},
	{name: "lowrank/r25", group: "lowrank", pipeline: "lowrank(ratio=0.25)", families: []string{"lowrank"}, params: map[string]string{"rank_ratio": "0.25"}, top1: 70.0, macs: 0.35, size: 0.35, lat: 0.45},
	{name: "kd/tiny", group: "kd", pipeline: "distill(T=4, student=tiny)", families: []string{"distill"}, params: map[string]string{"student": "tiny"}, top1: 74.0, macs: 0.3, size: 0.3, lat: 0.35},
	{name: "prune/heads-0.5", group: "prune", pipeline: "prune(heads=0.5)", families: []string{"prune"}, params: map[string]string{"amount": "0.5"}, top1: 75.5, macs: 0.55, size: 0.6, lat: 0.6},
	{name: "prune/heads-0.25", group: "prune", pipeline: "prune(heads=0.25)", families: []string{"prune"}, params: map[string]string{"amount": "0.25"}, top1: 78.0, macs: 0.8, size: 0.8, lat: 0.8},
	{name: "prune/tokens", group: "prune", pipeline: "prune(tokens=0.7)", families: []string{"prune"}, failed: true},
	{name: "combo/prune-kd-int8", group: "combo", pipeline: "prune(heads=0.5) → distill(T=4) → quantize(w8a8)", families: []string{"prune", "distill", "quantize"}, settings: quantSettings(2, "8", "8", false), top1: 77.5, macs: 0.5, size: 0.14, lat: 0.4, executed: "int8"},
	{name: "combo/lowrank-int8", group: "combo2", pipeline: "lowrank(0.5) → quantize(w8a8)", families: []string{"lowrank", "quantize"}, settings: quantSettings(1, "8", "8", false), top1: 75.0, macs: 0.6, size: 0.15, lat: 0.5, noLatency: true},
}

// quantSettings are the settings of a quantize stage at index stage with
// the given bit widths, swept or fixed, and a default calibrator.
func quantSettings(stage int, weightBits, actBits string, swept bool) []store.Setting {
	return []store.Setting{
		{Name: "quantize.weight_bits", Stage: stage, Technique: "quantize", Key: "weight_bits", Value: weightBits, Swept: swept},
		{Name: "quantize.act_bits", Stage: stage, Technique: "quantize", Key: "act_bits", Value: actBits, Swept: swept},
		{Name: "quantize.calibrator", Stage: stage, Technique: "quantize", Key: "calibrator", Value: "minmax"},
	}
}

// synthSnapshot has two runs on two machines over the same suite (the
// second lacking some experiments) and a second data set in the first run.
func synthSnapshot() *store.Snapshot {
	snap := &store.Snapshot{}
	machines := []store.Machine{
		{Hostname: "laptop", CPU: "Intel Core i7-1165G7", Cores: 4, MemoryBytes: 16 << 30, OS: "linux", Libtorch: "1.13.1", BLAS: "openblas-pthread", Gotch: "v0.9.1", Go: "go1.26"},
		{Hostname: "server", CPU: "AMD EPYC 7763", Cores: 64, MemoryBytes: 256 << 30, GPU: "NVIDIA H100", OS: "linux", Libtorch: "2.1.0", BLAS: "mkl", Gotch: "v0.9.1", Go: "go1.26"},
	}
	// What each run found of its machine: threads, sgemm speed, SIMD
	// flags, int8 kernels, CUDA use.
	facts := []store.Run{
		{Threads: 2, SgemmGFLOPS: 120, SIMD: "sse4_2 avx avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni", Int8Engine: "oneDNN 2.6.3 avx512_core_vnni"},
		{Threads: 16, SgemmGFLOPS: 2400, SIMD: "sse4_2 avx avx2 fma f16c", Int8Engine: "none", CUDA: true},
	}
	for i, m := range machines {
		id := int64(i + 1)
		snap.Runs = append(snap.Runs, store.Run{
			ID: id, UUID: fmt.Sprintf("uuid-%d", id), Machine: m,
			Threads: facts[i].Threads, SgemmGFLOPS: facts[i].SgemmGFLOPS, CUDA: facts[i].CUDA,
			SIMD: facts[i].SIMD, Int8Engine: facts[i].Int8Engine,
			SuiteName: "cifar10-vit", SuitePath: "experiments/quick.toml",
			SuiteHash: "abcdef0123456789", GitCommit: "0123456789abcdef", Device: "cpu",
			Started: t0.Add(time.Duration(i) * time.Hour), Ended: t0.Add(time.Duration(i)*time.Hour + 20*time.Minute), Status: store.StatusOK,
		})
		latScale := 1.0 / float64(1+3*i)
		for j, e := range suiteExperiments {
			if i == 1 && (j == 5 || j == 6) {
				continue // the second machine ran a subset
			}
			snap.Experiments = append(snap.Experiments, makeExperiment(id, "cifar10", "vit_cifar", e, latScale))
		}
	}
	// Names are unique within a run: the second data set's are prefixed.
	for _, e := range suiteExperiments[:3] {
		x := makeExperiment(1, "fashion-mnist", "vit_fmnist", e, 0.5)
		x.Name = "fmnist/" + x.Name
		if x.Baseline != "" {
			x.Baseline = "fmnist/baseline"
		}
		snap.Experiments = append(snap.Experiments, x)
	}
	for i := range snap.Experiments {
		snap.Experiments[i].ID = int64(i + 1)
	}
	return snap
}

// fakeAssets makes an assets folder with a stand-in script.
func fakeAssets(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, EChartsScript), []byte("/* echarts stand-in */ var echarts;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// render renders snap into a temporary folder and returns it.
func render(t *testing.T, snap *store.Snapshot, assets string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "report")
	if err := Render(snap, Options{OutDir: out, AssetsDir: assets, Now: t0}); err != nil {
		t.Fatalf("Render: %v", err)
	}
	return out
}

// readSite returns every written file by name.
func readSite(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}

func htmlPages(files map[string]string) []string {
	var out []string
	for name := range files {
		if strings.HasSuffix(name, ".html") {
			out = append(out, name)
		}
	}
	return out
}
