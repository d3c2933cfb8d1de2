package runner

import (
	"fmt"
	"math"
	"time"

	"github.com/vitbench/vitbench/harness/measure"
	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/plan"
	"github.com/vitbench/vitbench/harness/stats"
	"github.com/vitbench/vitbench/harness/store"
)

// newRecord is the stored record of experiment e as the run starts it:
// its spec and pipeline, running.
func (r *Runner) newRecord(e *plan.Experiment) *store.Experiment {
	spec, err := e.SpecJSON(r.Plan)
	if err != nil {
		spec = []byte(fmt.Sprintf(`{"error":%q}`, err.Error()))
	}
	m := r.Plan.Suite.Model(e.Model)
	baseline, seed := e.Baseline, e.Seed
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
		// Description: the experiment's, or its model's for a baseline.
		Description:      e.Description,
		ModelDescription: m.Description,
		Settings:         storeSettings(e.Settings),
		SpecJSON:         string(spec),
		Hash:             e.Hash(),
		Seed:             &seed,
		Replica:          e.Replica,
		Status:           store.StatusRunning,
		Started:          time.Now().UTC(),
	}
}

// record stores the experiment's metrics.
func (r *Runner) record(e *plan.Experiment, rec *store.Experiment, ev *evaluation) {
	ms := r.Plan.Suite.Measure
	counts := ev.counts
	rec.Executed = ev.executed
	rec.ExecDetail = ev.detail
	rec.Quant = ev.quant
	var trainSec, compressSec float64
	peak := ev.peak
	for i, h := range e.Nodes {
		peak = max(peak, r.state.peaks[h])
		if i == 0 {
			trainSec = r.state.times[h]
		} else {
			compressSec += r.state.times[h]
		}
	}
	lat, thr := ev.timing.lat, ev.timing.thr
	var m []metrics.Metric
	if ev.eval != nil { // nil: a timed-only model, never evaluated
		m = append(m, metrics.New(metrics.Top1, ev.eval.Top1), metrics.New(metrics.Top5, ev.eval.Top5),
			metrics.New(metrics.EvalSeconds, ev.eval.Seconds))
	}
	m = append(m,
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
		metrics.New(metrics.LatencySplit, float64(lat.Split)),
		metrics.New(metrics.ThroughputSplit, float64(thr.Split)),
		metrics.New(metrics.TrainSeconds, trainSec),
		metrics.New(metrics.CompressSeconds, compressSec),
		metrics.New(metrics.PeakRSSBytes, float64(peak)),
	)
	if ev.simEval != nil {
		m = append(m, metrics.New(metrics.Top1Simulated, ev.simEval.Top1), metrics.New(metrics.Top5Simulated, ev.simEval.Top5))
	}
	rec.Outcomes = outcomes(ev)
	rec.Samples = samples(lat, thr, ms.ThroughputBatch)
	m = append(m, intervals(rec)...)
	if base := r.state.results[e.Baseline]; !e.IsBaseline && base != nil && base.Status == store.StatusOK {
		m = append(m, relative(m, base.Metrics)...)
		m = append(m, relativeIntervals(rec, base)...)
	}
	rec.Metrics = m
	rec.Layers = nil
	for _, l := range counts.Layers {
		rec.Layers = append(rec.Layers, store.Layer{Name: l.Name, Kind: l.Kind, Params: l.Params, MACs: l.MACs, Bits: l.Bits})
	}
	rec.Curves = r.state.curves[e.Nodes[0]]
}

// relative computes the metrics of m relative to its baseline's, base:
// metrics.Top1Delta through metrics.ThroughputGain.
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
	var out []metrics.Metric
	if d := get(m, metrics.Top1) - get(base, metrics.Top1); !math.IsNaN(d) {
		out = append(out, metrics.New(metrics.Top1Delta, d))
	}
	return append(out,
		metrics.New(metrics.CompressionRatio, div(get(base, metrics.SizeBytes), get(m, metrics.SizeBytes))),
		metrics.New(metrics.MACsRatio, div(get(m, metrics.MACs), get(base, metrics.MACs))),
		metrics.New(metrics.Speedup, div(get(base, metrics.LatencyP50), get(m, metrics.LatencyP50))),
		metrics.New(metrics.ThroughputGain, div(get(m, metrics.Throughput), get(base, metrics.Throughput))),
	)
}

// outcomes are the evaluations' per-image outcomes, as stored.
func outcomes(ev *evaluation) []store.Outcome {
	var out []store.Outcome
	add := func(metric string, e *evalJSON, bits []byte) {
		if e != nil && bits != nil {
			out = append(out, store.Outcome{Metric: metric, Images: e.Images, N: e.N, Bits: bits})
		}
	}
	if ev.eval != nil {
		add(metrics.Top1, ev.eval, ev.eval.Top1Bits)
		add(metrics.Top5, ev.eval, ev.eval.Top5Bits)
	}
	if ev.simEval != nil {
		add(metrics.Top1Simulated, ev.simEval, ev.simEval.Top1Bits)
	}
	return out
}

// samples are the timed passes: seconds per pass at batch 1, and each
// throughput pass as images per second.
func samples(lat, thr *measure.Latency, batch int) []store.Sample {
	var out []store.Sample
	add := func(series string, l *measure.Latency, value func(float64) float64) {
		for i, v := range l.Samples {
			round := 0
			if i < len(l.Rounds) {
				round = l.Rounds[i]
			}
			out = append(out, store.Sample{Series: series, Round: round, Value: value(v)})
		}
	}
	add(store.SeriesLatency, lat, func(s float64) float64 { return s })
	add(store.SeriesThroughput, thr, func(s float64) float64 { return float64(batch) / s })
	return out
}

// intervals are the 95% intervals of an experiment's own accuracy (Wilson,
// from its outcomes) and timings (benchmath's median interval, from its
// samples).
func intervals(rec *store.Experiment) []metrics.Metric {
	var m []metrics.Metric
	add := func(name string, e stats.Estimate) {
		m = append(m, metrics.New(metrics.Lo(name), e.Lo), metrics.New(metrics.Hi(name), e.Hi))
	}
	for _, name := range []string{metrics.Top1, metrics.Top5, metrics.Top1Simulated} {
		if o, ok := rec.Outcome(name); ok {
			add(name, stats.Proportion(stats.Bits(o.Bits).Count(o.N), o.N))
		}
	}
	if s := rec.SampleValues(store.SeriesLatency); len(s) > 0 {
		add(metrics.LatencyP50, stats.Median(s))
	}
	if s := rec.SampleValues(store.SeriesThroughput); len(s) > 0 {
		add(metrics.Throughput, stats.Median(s))
	}
	return m
}

// relativeIntervals are the intervals and p-values of an experiment's
// differences to its baseline: the accuracy delta paired image by image
// when both were evaluated on the same images (bootstrap interval,
// McNemar's test), unpaired otherwise; speed-up and throughput gain as
// ratios of medians (bootstrap interval, Mann-Whitney U test).
func relativeIntervals(rec, base *store.Experiment) []metrics.Metric {
	var m []metrics.Metric
	add := func(name string) func(stats.Estimate, float64) {
		return func(e stats.Estimate, p float64) {
			m = append(m, metrics.New(metrics.Lo(name), e.Lo), metrics.New(metrics.Hi(name), e.Hi), metrics.New(metrics.P(name), p))
		}
	}
	if o, ok := rec.Outcome(metrics.Top1); ok {
		if b, ok := base.Outcome(metrics.Top1); ok {
			if o.Images == b.Images && o.N == b.N {
				add(metrics.Top1Delta)(stats.PairedDelta(b.Bits, o.Bits, o.N))
			} else {
				add(metrics.Top1Delta)(stats.ProportionDelta(stats.Bits(b.Bits).Count(b.N), b.N, stats.Bits(o.Bits).Count(o.N), o.N))
			}
		}
	}
	if s, bs := rec.SampleValues(store.SeriesLatency), base.SampleValues(store.SeriesLatency); len(s) > 0 && len(bs) > 0 {
		add(metrics.Speedup)(stats.RatioOfMedians(bs, s))
	}
	if s, bs := rec.SampleValues(store.SeriesThroughput), base.SampleValues(store.SeriesThroughput); len(s) > 0 && len(bs) > 0 {
		add(metrics.ThroughputGain)(stats.RatioOfMedians(s, bs))
	}
	return m
}

func metricValue(e *store.Experiment, name string) float64 {
	for _, m := range e.Metrics {
		if m.Name == name {
			return m.Value
		}
	}
	return math.NaN()
}

func toStorePoints(ps []pointJSON) []store.Point {
	out := make([]store.Point, len(ps))
	for i, p := range ps {
		out[i] = store.Point{Series: p.Series, Step: p.Step, Value: p.Value}
	}
	return out
}

// storeSettings converts a plan's settings to the store's (same fields).
func storeSettings(in []plan.Setting) []store.Setting {
	out := make([]store.Setting, len(in))
	for i, s := range in {
		out[i] = store.Setting(s)
	}
	return out
}
