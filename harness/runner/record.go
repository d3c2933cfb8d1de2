package runner

import (
	"fmt"
	"math"
	"time"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/plan"
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
		Settings: storeSettings(e.Settings),
		SpecJSON: string(spec),
		Hash:     e.Hash(),
		Seed:     &seed,
		Replica:  e.Replica,
		Status:   store.StatusRunning,
		Started:  time.Now().UTC(),
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
	m := []metrics.Metric{
		metrics.New(metrics.Top1, ev.eval.Top1),
		metrics.New(metrics.Top5, ev.eval.Top5),
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
		metrics.New(metrics.TrainSeconds, trainSec),
		metrics.New(metrics.CompressSeconds, compressSec),
		metrics.New(metrics.EvalSeconds, ev.eval.Seconds),
		metrics.New(metrics.PeakRSSBytes, float64(peak)),
	}
	if ev.simEval != nil {
		m = append(m, metrics.New(metrics.Top1Simulated, ev.simEval.Top1), metrics.New(metrics.Top5Simulated, ev.simEval.Top5))
	}
	if base := r.state.results[e.Baseline]; !e.IsBaseline && base != nil && base.Status == store.StatusOK {
		m = append(m, relative(m, base.Metrics)...)
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
	return []metrics.Metric{
		metrics.New(metrics.Top1Delta, get(m, metrics.Top1)-get(base, metrics.Top1)),
		metrics.New(metrics.CompressionRatio, div(get(base, metrics.SizeBytes), get(m, metrics.SizeBytes))),
		metrics.New(metrics.MACsRatio, div(get(m, metrics.MACs), get(base, metrics.MACs))),
		metrics.New(metrics.Speedup, div(get(base, metrics.LatencyP50), get(m, metrics.LatencyP50))),
		metrics.New(metrics.ThroughputGain, div(get(m, metrics.Throughput), get(base, metrics.Throughput))),
	}
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
