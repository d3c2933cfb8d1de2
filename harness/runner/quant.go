package runner

import (
	"maps"
	"slices"

	"github.com/vitbench/vitbench/harness/store"
	"github.com/vitbench/vitbench/harness/vit"
)

// quantization lists every quantizer of a model's state as the store
// keeps it: weights, then activations, each sorted by key, with a
// mixed-precision search's sensitivities on the weights it searched; nil
// for a float model.
func quantization(s *vit.QuantState) *store.Quantization {
	if s == nil {
		return nil
	}
	q := &store.Quantization{Precision: s.Precision, Sites: []store.QuantSite{}}
	site := func(key, kind string, spec *vit.QuantSpec) store.QuantSite {
		return store.QuantSite{Key: key, Kind: kind, Quantizer: spec.Kind, Bits: spec.Bits, Axis: spec.Axis, Symmetric: spec.Symmetric}
	}
	searched := map[string]vit.MixedLayer{}
	if m := s.Mixed; m != nil {
		q.Mixed = &store.MixedSearch{Method: m.Method, Budget: m.Budget, BudgetBits: m.BudgetBits,
			Limit: m.Limit, Cost: m.Cost, Choices: slices.Clone(m.Choices)}
		for _, l := range m.Layers {
			for _, w := range l.Weights {
				searched[w] = l
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.Weights)) {
		st := site(name, store.SiteWeight, s.Weights[name])
		if l, ok := searched[name]; ok {
			st.Sensitivity, st.Trace = slices.Clone(l.Sensitivity), l.Trace
		}
		q.Sites = append(q.Sites, st)
	}
	for _, key := range slices.Sorted(maps.Keys(s.Acts)) {
		q.Sites = append(q.Sites, site(key, store.SiteAct, s.Acts[key]))
	}
	return q
}
