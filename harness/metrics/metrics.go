// Package metrics names the quantities vitbench measures, the units they are
// stored in and which direction is better.
//
// Values are normalised when recorded, the way benchstat's benchunit does:
// times in seconds, sizes in bytes, accuracy in percent, counts as plain
// numbers. Renderers convert to display units (ms, MiB, G) at the edge.
// Exact metrics (parameter counts, MACs, bytes) need one measurement;
// measured ones (latency, throughput) carry their spread in the p50/p90/p99
// siblings.
package metrics

import "strings"

// Metric is one named measurement of one experiment.
type Metric struct {
	Name  string
	Value float64
	Unit  string
}

// Units, normalised.
const (
	UnitPercent = "%"
	UnitCount   = "count"
	UnitBytes   = "B"
	UnitSeconds = "s"
	UnitIPS     = "img/s"
	UnitRatio   = "x"
	UnitGFLOPS  = "GFLOP/s"
	UnitOps     = "ops"
)

// Names of the standard metrics the runner records. Keys in the
// store and in exports; keep them stable.
const (
	Top1 = "top1"
	Top5 = "top5"
	// Top1Simulated and Top5Simulated are a quantized model's accuracy
	// simulated (fake-quantized in float32), stored beside the executed
	// model's Top1 and Top5 for comparison.
	Top1Simulated    = "top1_simulated"
	Top5Simulated    = "top5_simulated"
	Params           = "params"
	ParamsNonZero    = "params_nonzero"
	MACs             = "macs"
	MACsEffective    = "macs_effective"
	BitOps           = "bitops"
	SizeBytes        = "size_bytes"
	LatencyP50       = "latency_p50"
	LatencyP90       = "latency_p90"
	LatencyP99       = "latency_p99"
	Throughput       = "throughput"
	ThroughputBatch  = "throughput_batch"
	LatencySplit     = "latency_split"    // threads the batch-1 passes were split over; 0: eager
	ThroughputSplit  = "throughput_split" // the same for the throughput passes
	TrainSeconds     = "train_seconds"
	CompressSeconds  = "compress_seconds"
	EvalSeconds      = "eval_seconds"
	PeakRSSBytes     = "peak_rss_bytes"
	Top1Delta        = "top1_delta"        // percentage points vs baseline
	CompressionRatio = "compression_ratio" // baseline size / size
	MACsRatio        = "macs_ratio"        // macs / baseline macs
	Speedup          = "speedup"           // baseline p50 / p50 (batch 1)
	ThroughputGain   = "throughput_gain"   // throughput / baseline throughput
)

// Info describes how a metric is read.
type Info struct {
	Unit   string
	Better int  // +1 higher is better, -1 lower is better, 0 neither
	Exact  bool // a count, not a noisy measurement
	Label  string
}

var known = map[string]Info{
	Top1:             {UnitPercent, +1, false, "top-1 (%)"},
	Top5:             {UnitPercent, +1, false, "top-5 (%)"},
	Top1Simulated:    {UnitPercent, +1, false, "top-1 simulated (%)"},
	Top5Simulated:    {UnitPercent, +1, false, "top-5 simulated (%)"},
	Params:           {UnitCount, -1, true, "parameters"},
	ParamsNonZero:    {UnitCount, -1, true, "non-zero parameters"},
	MACs:             {UnitOps, -1, true, "MACs (dense)"},
	MACsEffective:    {UnitOps, -1, true, "MACs (effective)"},
	BitOps:           {UnitOps, -1, true, "bit operations"},
	SizeBytes:        {UnitBytes, -1, true, "model size"},
	LatencyP50:       {UnitSeconds, -1, false, "latency p50, batch 1"},
	LatencyP90:       {UnitSeconds, -1, false, "latency p90, batch 1"},
	LatencyP99:       {UnitSeconds, -1, false, "latency p99, batch 1"},
	Throughput:       {UnitIPS, +1, false, "throughput"},
	ThroughputBatch:  {UnitCount, 0, true, "throughput batch size"},
	LatencySplit:     {UnitCount, 0, true, "threads a batch-1 pass was split over (0: eager)"},
	ThroughputSplit:  {UnitCount, 0, true, "threads a throughput pass was split over (0: eager)"},
	TrainSeconds:     {UnitSeconds, -1, false, "training time"},
	CompressSeconds:  {UnitSeconds, -1, false, "compression time"},
	EvalSeconds:      {UnitSeconds, -1, false, "evaluation time"},
	PeakRSSBytes:     {UnitBytes, -1, false, "peak resident memory"},
	Top1Delta:        {UnitPercent, +1, false, "Δ top-1 vs baseline (points)"},
	CompressionRatio: {UnitRatio, +1, true, "compression ratio"},
	MACsRatio:        {UnitRatio, -1, true, "MACs ratio"},
	Speedup:          {UnitRatio, +1, false, "measured speed-up (batch 1)"},
	ThroughputGain:   {UnitRatio, +1, false, "throughput gain"},
}

// siblingSuffixes end the names of the sibling metrics that carry a
// metric's 95% interval and the p-value of its difference to the baseline.
var siblingSuffixes = []string{"_lo", "_hi", "_p"}

// Lo, Hi and P name the siblings of metric name that hold the low and high
// ends of its 95% interval and the p-value of the test that it differs from
// the baseline's (for a relative metric such as Top1Delta or Speedup).
func Lo(name string) string { return name + siblingSuffixes[0] }

// Hi: see Lo.
func Hi(name string) string { return name + siblingSuffixes[1] }

// P: see Lo.
func P(name string) string { return name + siblingSuffixes[2] }

// Of splits a sibling's name into the metric it belongs to and its kind
// ("lo", "hi" or "p"); ok is false for names that are no sibling of a
// standard metric.
func Of(name string) (metric, kind string, ok bool) {
	for _, suf := range siblingSuffixes {
		base, found := strings.CutSuffix(name, suf)
		if _, std := known[base]; found && std {
			return base, suf[1:], true
		}
	}
	return "", "", false
}

// Lookup returns what is known about a metric name; ok is false for names
// outside the standard set (which are still stored and shown). An
// interval's end reads as its metric; a p-value as a plain number.
func Lookup(name string) (Info, bool) {
	if i, ok := known[name]; ok {
		return i, true
	}
	base, kind, ok := Of(name)
	if !ok {
		return Info{}, false
	}
	i := known[base]
	switch kind {
	case "lo":
		i.Label += ", 95% low"
	case "hi":
		i.Label += ", 95% high"
	default:
		i = Info{Unit: "", Better: 0, Label: "p-value of " + i.Label}
	}
	return i, true
}

// New returns a metric with its standard unit.
func New(name string, v float64) Metric {
	i, _ := Lookup(name)
	return Metric{Name: name, Value: v, Unit: i.Unit}
}
