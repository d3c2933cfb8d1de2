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

// Lookup returns what is known about a metric name; ok is false for names
// outside the standard set (which are still stored and shown).
func Lookup(name string) (Info, bool) {
	i, ok := known[name]
	return i, ok
}

// New returns a metric with its standard unit.
func New(name string, v float64) Metric {
	return Metric{Name: name, Value: v, Unit: known[name].Unit}
}
