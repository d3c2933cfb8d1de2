package reports

import (
	"strings"
	"testing"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/store"
)

// timedOnlySnapshot adds to synthSnapshot's first run a timed-only model
// (no top-1 anywhere) with a baseline, a heads+MLP pruning that halves
// the MACs and runs 1.8 times as fast at batch 64 (90% of its ideal) and
// a pipeline the evaluated model also ran.
func timedOnlySnapshot() *store.Snapshot {
	snap := synthSnapshot()
	add := func(name, pipeline string, families []string, macs, lat, gain float64, extra ...metrics.Metric) {
		e := store.Experiment{RunID: 1, Name: name, Group: name, Model: "deit_tiny", Dataset: "synthetic",
			Families: families, Pipeline: pipeline, Status: store.StatusOK, Executed: "fp32", Hash: name, Started: t0, Ended: t0}
		if len(families) > 0 {
			e.Baseline = "deit_tiny"
		}
		e.Metrics = append([]metrics.Metric{
			metrics.New(metrics.MACs, 1.26e9*macs), metrics.New(metrics.SizeBytes, 22e6*macs), metrics.New(metrics.Params, 5.7e6*macs),
			metrics.New(metrics.LatencyP50, 0.025*lat), metrics.New(metrics.Throughput, 60*gain), metrics.New(metrics.ThroughputBatch, 64),
		}, extra...)
		e.ID = int64(len(snap.Experiments) + 1)
		snap.Experiments = append(snap.Experiments, e)
	}
	add("deit_tiny", "baseline", nil, 1, 1, 1)
	add("deit_tiny/heads-mlp", "prune(heads=0.5)", []string{"prune"}, 0.5, 0.6, 1.8,
		metrics.New(metrics.MACsRatio, 0.5), metrics.New(metrics.Speedup, 1/0.6), metrics.New(metrics.ThroughputGain, 1.8),
		metrics.New(metrics.Lo(metrics.ThroughputGain), 1.7), metrics.New(metrics.Hi(metrics.ThroughputGain), 1.9), metrics.New(metrics.P(metrics.ThroughputGain), 0.001),
		metrics.New(metrics.Lo(metrics.Speedup), 1.5), metrics.New(metrics.Hi(metrics.Speedup), 1.8), metrics.New(metrics.P(metrics.Speedup), 0.002))
	add("deit_tiny/int8", "quantize(w8a8)", []string{"quantize"}, 1, 1.05, 0.98,
		metrics.New(metrics.MACsRatio, 1), metrics.New(metrics.Speedup, 1/1.05), metrics.New(metrics.ThroughputGain, 0.98),
		metrics.New(metrics.P(metrics.Speedup), 0.4), metrics.New(metrics.P(metrics.ThroughputGain), 0.6))
	snap.Experiments[len(snap.Experiments)-1].Executed = "int8"
	return snap
}

func TestScaleView(t *testing.T) {
	files := readSite(t, render(t, timedOnlySnapshot(), fakeAssets(t)))
	page, ok := files[ScalePage]
	if !ok {
		t.Fatalf("no %s for a timed-only model", ScalePage)
	}
	for _, want := range []string{
		"synthetic · deit_tiny",
		"measured speed-up vs MACs reduction",
		"2.00×", // the heads+MLP pruning's ideal: half the MACs
		"90%",   // 1.8x of that ideal at batch 64
		"1.80× [1.70, 1.90]",
		"throughput, batch 64",
		"on vit_cifar", // the same pipeline's accuracy, measured on the evaluated model
		"The largest speed-up in throughput is deit_tiny/heads-mlp",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("%s lacks %q", ScalePage, want)
		}
	}
	if !strings.Contains(page, "its MACs are cheaper, not fewer") {
		t.Errorf("int8's share of a MACs ideal is not marked n/a")
	}
	if !strings.Contains(page, "not run on an evaluated model") {
		t.Errorf("int8 has no evaluated counterpart, yet no cell says so")
	}
	if !strings.Contains(files[IndexPage], `href="scale.html"`) || !strings.Contains(files[IndexPage], "deployment scale") {
		t.Errorf("the overview neither shows nor links the deployment-scale view")
	}
	if strings.Contains(files["tradeoff-synthetic-deit_tiny.html"], "no successful experiment has both values") {
		t.Errorf("the timed-only trade-off page still lists top-1 charts it cannot draw")
	}
	// Without timed-only models there is no such page and no link.
	plain := readSite(t, render(t, synthSnapshot(), fakeAssets(t)))
	if _, ok := plain[ScalePage]; ok || strings.Contains(plain[IndexPage], ScalePage) {
		t.Errorf("a report without timed-only models has a deployment-scale page or link")
	}
}

func TestCompressionKey(t *testing.T) {
	heads := func(amount, epochs, lr string) *store.Experiment {
		return &store.Experiment{Pipeline: "prune(kind=heads, amount=" + amount + ", finetune_epochs=" + epochs + ")", Settings: []store.Setting{
			{Stage: 0, Technique: "prune", Key: "kind", Value: "heads"},
			{Stage: 0, Technique: "prune", Key: "amount", Value: amount},
			{Stage: 0, Technique: "prune", Key: "finetune_epochs", Value: epochs},
			{Stage: 0, Technique: "prune", Key: "lr", Value: lr},
			{Stage: 0, Technique: "prune", Key: "mask_epochs", Value: "0.2"},
		}}
	}
	tests := []struct {
		name string
		a, b *store.Experiment
		same bool
	}{
		{"fine-tuning aside", heads("0.5", "0.2", "0.0002"), heads("0.5", "0", "0"), true},
		{"another amount", heads("0.5", "0", "0"), heads("0.25", "0", "0"), false},
		{"no settings: the label", &store.Experiment{Pipeline: "p"}, &store.Experiment{Pipeline: "p"}, true},
		{"no settings, other labels", &store.Experiment{Pipeline: "p"}, &store.Experiment{Pipeline: "q"}, false},
	}
	for _, tt := range tests {
		if got := compressionKey(tt.a) == compressionKey(tt.b); got != tt.same {
			t.Errorf("%s: same = %v, want %v", tt.name, got, tt.same)
		}
	}
}
