package store

import (
	"math"
	"slices"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/stats"
)

// ReplicaSet is the seed replicas of one experiment of a run: the
// experiments that differ only in their seed, with each metric's mean
// across them.
type ReplicaSet struct {
	RunID int64
	Name  string // the name the replicas share (Experiment.Replica), e.g. "ptq/w8"
	// Experiments are the replicas in the order given, failed ones
	// included; only those with status ok count in Seeds and Metrics.
	Experiments []*Experiment
	Seeds       []int64 // of the replicas that succeeded, in order
	Metrics     []Aggregate
}

// Aggregate is one metric's mean across the seeds of a replica set, with
// its 95% Student-t interval (stats.Mean).
type Aggregate struct {
	Name string
	Unit string
	N    int // replicas with a finite value; the interval needs 2
	stats.Estimate
}

// Metric returns the set's aggregate of metric name, and whether it has
// one.
func (s *ReplicaSet) Metric(name string) (Aggregate, bool) {
	for _, a := range s.Metrics {
		if a.Name == name {
			return a, true
		}
	}
	return Aggregate{}, false
}

// Replicas groups exps into their replica sets: experiments of the same
// run with the same replica name and more than one seed among them, in
// the order their first replica appears. An experiment run with one seed
// is no set. Each metric the succeeded replicas recorded gets its mean
// across them, in the order the first of them recorded it; interval and
// p-value siblings (metrics.Of) are left out, as their mean is no
// interval of the mean. Experiments are not copied: the sets point into
// exps.
func Replicas(exps []Experiment) []ReplicaSet {
	type key struct {
		run  int64
		name string
	}
	index := map[key]int{}
	var sets []ReplicaSet
	for i := range exps {
		e := &exps[i]
		k := key{e.RunID, e.ReplicaName()}
		j, ok := index[k]
		if !ok {
			j = len(sets)
			index[k] = j
			sets = append(sets, ReplicaSet{RunID: e.RunID, Name: k.name})
		}
		sets[j].Experiments = append(sets[j].Experiments, e)
	}
	out := sets[:0]
	for _, s := range sets {
		if len(s.Experiments) < 2 {
			continue
		}
		s.aggregate()
		out = append(out, s)
	}
	return slices.Clip(out)
}

// aggregate fills Seeds and Metrics from the replicas that succeeded.
func (s *ReplicaSet) aggregate() {
	var names []string
	units := map[string]string{}
	values := map[string][]float64{}
	for _, e := range s.Experiments {
		if e.Status != StatusOK {
			continue
		}
		if e.Seed != nil {
			s.Seeds = append(s.Seeds, *e.Seed)
		}
		for _, m := range e.Metrics {
			if _, _, sibling := metrics.Of(m.Name); sibling {
				continue
			}
			if _, seen := units[m.Name]; !seen {
				names = append(names, m.Name)
				units[m.Name] = m.Unit
			}
			if !math.IsNaN(m.Value) && !math.IsInf(m.Value, 0) {
				values[m.Name] = append(values[m.Name], m.Value)
			}
		}
	}
	for _, name := range names {
		vs := values[name]
		if len(vs) == 0 {
			continue
		}
		s.Metrics = append(s.Metrics, Aggregate{Name: name, Unit: units[name], N: len(vs), Estimate: stats.Mean(vs)})
	}
}
