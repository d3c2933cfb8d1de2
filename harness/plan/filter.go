package plan

import (
	"errors"
	"fmt"
	"hash/fnv"
	"path"
	"slices"
	"strconv"
	"strings"
)

// errSelection marks a bad --only or --shard value, or a selection that
// matches nothing.
var errSelection = errors.New("bad selection")

// Filter returns the plan restricted to some experiments.
//
// only is a comma-separated list of path.Match globs; an experiment is
// kept when a glob matches its name or its group (so "ptq" keeps every
// "ptq/..." experiment); empty keeps all. shard "I/N" (1 <= I <= N) keeps
// the experiments whose name hashes (FNV-1a) to I-1 modulo N, so N
// machines given 1/N ... N/N run disjoint shares that together cover the
// suite; empty keeps all. The baseline experiment of every kept
// experiment is kept too, so that its relative metrics (accuracy delta,
// speed-up, their intervals) are measured in the same run; each shard
// measures the baselines its experiments need. The nodes an experiment
// needs stay in the plan even when the experiments that own them (a
// teacher, an upstream experiment) are filtered out. A bad or empty
// selection is an error that names it.
func (p *Plan) Filter(only, shard string) (*Plan, error) {
	var globs []string
	if strings.TrimSpace(only) != "" {
		for _, g := range strings.Split(only, ",") {
			g = strings.TrimSpace(g)
			if g == "" {
				continue
			}
			if _, err := path.Match(g, ""); err != nil {
				return nil, fmt.Errorf("%w: --only %q: %v", errSelection, g, err)
			}
			globs = append(globs, g)
		}
	}
	index, count, err := parseShard(shard)
	if err != nil {
		return nil, err
	}
	var keep []*Experiment
	matched := 0
	for _, e := range p.Experiments {
		if len(globs) > 0 && !slices.ContainsFunc(globs, func(g string) bool { return match(g, e.Name) || match(g, e.Group) }) {
			continue
		}
		matched++
		if count > 0 && shardOf(e.Name, count) != index {
			continue
		}
		keep = append(keep, e)
	}
	if len(globs) > 0 && matched == 0 {
		return nil, fmt.Errorf("%w: --only %q matches no experiment", errSelection, only)
	}
	return p.subset(withBaselines(p.Experiments, keep)), nil
}

// withBaselines returns keep and the baseline experiments its experiments
// are measured against, in the order of all.
func withBaselines(all, keep []*Experiment) []*Experiment {
	want := map[*Experiment]bool{}
	for _, e := range keep {
		want[e] = true
	}
	for _, e := range keep {
		for _, b := range all {
			if b.IsBaseline && b.Name == e.Baseline {
				want[b] = true
			}
		}
	}
	var out []*Experiment
	for _, e := range all {
		if want[e] {
			out = append(out, e)
		}
	}
	return out
}

func match(glob, name string) bool {
	ok, _ := path.Match(glob, name)
	return ok
}

// parseShard reads "I/N" and returns I-1 and N; empty gives 0, 0.
func parseShard(s string) (index, count int, err error) {
	if strings.TrimSpace(s) == "" {
		return 0, 0, nil
	}
	is, ns, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(is))
	n, err2 := strconv.Atoi(strings.TrimSpace(ns))
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 1 || i > n {
		return 0, 0, fmt.Errorf("%w: --shard %q: want I/N with 1 <= I <= N, e.g. 2/3", errSelection, s)
	}
	return i - 1, n, nil
}

// shardOf returns the shard, 0 to n-1, that an experiment name falls in.
func shardOf(name string, n int) int {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int(h.Sum64() % uint64(n))
}

// subset returns a plan with the given experiments and the nodes they
// need, in the original order.
func (p *Plan) subset(exps []*Experiment) *Plan {
	byHash := map[string]*Node{}
	for _, n := range p.Nodes {
		byHash[n.Hash] = n
	}
	need := map[string]bool{}
	var mark func(h string)
	mark = func(h string) {
		if need[h] {
			return
		}
		need[h] = true
		n := byHash[h]
		if n.Upstream != "" {
			mark(n.Upstream)
		}
		for _, t := range n.Needs {
			mark(t)
		}
	}
	names := map[string]bool{}
	for _, e := range exps {
		names[e.Name] = true
		for _, h := range e.Nodes {
			mark(h)
		}
	}
	out := &Plan{Suite: p.Suite, CodeVersion: p.CodeVersion, Experiments: exps}
	for _, n := range p.Nodes {
		if !need[n.Hash] {
			continue
		}
		c := *n
		c.Experiments = slices.DeleteFunc(slices.Clone(n.Experiments), func(name string) bool { return !names[name] })
		out.Nodes = append(out.Nodes, &c)
	}
	return out
}
