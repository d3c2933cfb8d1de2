package config

import (
	"fmt"
	"slices"
	"strings"
)

// checkReferences runs once every file is read: each name a model or
// experiment uses must be declared, and the uses must form no cycle.
func (l *loader) checkReferences() {
	edges := map[string][]reference{}
	for _, r := range l.refs {
		target, ok := l.resolve(r)
		if !ok {
			continue
		}
		r.to = target
		edges[r.from] = append(edges[r.from], r)
	}
	var order []string
	for _, m := range l.suite.Models {
		order = append(order, "model "+m.Name)
	}
	for _, e := range l.suite.Experiments {
		order = append(order, "experiment "+e.Name)
	}

	// Depth-first search; a reference to a node on the stack closes a cycle.
	const (
		unseen = iota
		onStack
		done
	)
	state := map[string]int{}
	var stack []string
	reported := map[string]bool{}
	var visit func(n string)
	visit = func(n string) {
		state[n] = onStack
		stack = append(stack, n)
		for _, r := range edges[n] {
			switch state[r.to] {
			case unseen:
				visit(r.to)
			case onStack:
				i := slices.Index(stack, r.to)
				cycle := append(slices.Clone(stack[i:]), r.to)
				members := slices.Sorted(slices.Values(cycle[1:]))
				if id := strings.Join(members, "\x00"); !reported[id] {
					reported[id] = true
					l.errorAt(r.at, "reference cycle: %s", strings.Join(cycle, " -> "))
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
	}
	for _, n := range order {
		if state[n] == unseen {
			visit(n)
		}
	}
}

// resolve returns the graph node a reference points to ("model NAME" or
// "experiment NAME"), reporting names that are not declared. A name with a
// slash, "group/suffix", is one experiment of an expanded grid: the group
// must be declared here, the suffix is checked by package plan.
func (l *loader) resolve(r reference) (string, bool) {
	if _, ok := l.models[r.to]; ok {
		return "model " + r.to, true
	}
	if r.what == "model" {
		if _, ok := l.exps[r.to]; ok {
			l.errorAt(r.at, "%q is an experiment: model must name a [models] table", r.to)
		} else {
			l.errorAt(r.at, "no model named %q (declared: %s)", r.to, l.names(l.suite.Models))
		}
		return "", false
	}
	group, _, _ := strings.Cut(r.to, "/")
	if _, ok := l.models[group]; ok {
		return "model " + group, true // one seed of a model with seeds, "model/seed1": plan checks the seed
	}
	if _, ok := l.exps[group]; ok {
		return "experiment " + group, true
	}
	l.errorAt(r.at, "%s %q names no declared model or experiment", r.what, r.to)
	return "", false
}

func (l *loader) errorAt(at *Error, format string, args ...any) {
	e := *at
	e.Msg = fmt.Sprintf(format, args...)
	l.errs = append(l.errs, &e)
}

func (l *loader) names(models []*Model) string {
	if len(models) == 0 {
		return "none"
	}
	names := make([]string, len(models))
	for i, m := range models {
		names[i] = m.Name
	}
	return strings.Join(names, ", ")
}

// checkSeeds checks that an experiment with seeds on a model with seeds
// asks only for seeds the model is trained with: seed s of the experiment
// starts from the model trained with seed s.
func (l *loader) checkSeeds() {
	for _, e := range l.suite.Experiments {
		m := l.models[e.Model]
		if e.Seeds == nil || m == nil || m.Seeds == nil {
			continue
		}
		for _, s := range e.Seeds {
			if !slices.Contains(m.Seeds, s) {
				l.errorAt(e.seedsAt, "seed %d is not one of model %s's seeds %v: each seed of the experiment starts from the model trained with that seed", s, m.Name, m.Seeds)
			}
		}
	}
}
