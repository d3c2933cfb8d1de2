package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/vitbench/vitbench/harness/compare"
	"github.com/vitbench/vitbench/harness/store"
)

func init() { commands["compare"] = runCompare }

const compareUsage = `usage: bench compare [--db PATH]... [RUN...] [--machine HOST]... [--commit PREFIX]...
                     [--metric NAME]... [--json]

Compares runs the way benchstat compares benchmark files: for each metric
(top-1, top-5, latency p50 at batch 1, throughput, size, parameters, MACs,
...) one row per experiment with each run's value and 95% interval, and for
every run after the first its delta to the first (points for accuracy,
percent otherwise) with the p-value of its test, "~" where the difference
is not significant, and a geomean row (the mean for accuracy).

Tests: McNemar on per-image outcomes of the same images, a two-proportion
test on different images, Mann-Whitney U on timed samples; counts are
exact. "(no outcomes)" or "(no samples)" marks a delta that was not tested.

Which runs, the first being the base:
  RUN...               run numbers (1 = oldest of the databases, merged) or
                       UUID prefixes, as 'bench list' shows them
  --db A --db B        the latest run of each database
  --machine H...       the latest run on each machine (host name or
                       fingerprint prefix); one --machine: all its runs
  --commit C...        the latest run of each commit prefix; one --commit:
                       all runs of that commit (e.g. on several machines)
  (nothing)            the two latest runs of the database
--machine and --commit combine: the one given once filters the other.

`

// listFlag is a repeatable flag; commas also separate values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			return errors.New("empty value")
		}
		*l = append(*l, s)
	}
	return nil
}

// runCompare implements `bench compare`.
func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("compare", stderr, usageText(compareUsage))
	var dbs dbPathsFlag
	var machines, commits, names listFlag
	fset.Var(&dbs, "db", "results `database`; repeat to compare the latest run of each (default "+store.DefaultPath+")")
	fset.Var(&machines, "machine", "the latest run on `HOST` (host name or fingerprint prefix); repeatable")
	fset.Var(&commits, "commit", "the latest run of commit `PREFIX`; repeatable")
	fset.Var(&names, "metric", "compare only metric `NAME` (top1, latency_p50, ...); repeatable or comma-separated")
	asJSON := fset.Bool("json", false, `print one JSON object, {"runs": [...], "metrics": [...]}`)
	refs, help, err := parseInterspersed(fset, args)
	if help || err != nil {
		return err
	}
	if len(dbs) == 0 {
		dbs = dbPathsFlag{store.DefaultPath}
	}
	runs, err := selectRuns(dbs, refs, machines, commits)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := compare.Compare(runs, names...)
	if err != nil {
		return usageError{err}
	}
	if *asJSON {
		return c.WriteJSON(stdout)
	}
	return c.WriteText(stdout)
}

// parseInterspersed parses fs's flags wherever they stand among the
// positional arguments ("bench compare 3 7 --json") and returns the
// positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) (pos []string, help bool, err error) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, true, nil
			}
			return nil, false, usageError{fmt.Errorf("%s: %w", fs.Name(), err)}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, false, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), false, nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

// selectRuns reads the databases and picks the runs to compare (see
// compareUsage), each with its experiments. Fewer than two is bad input.
func selectRuns(dbs, refs, machines, commits []string) ([]compare.Run, error) {
	snap, err := readResults(dbs...)
	if err != nil {
		return nil, err
	}
	var picked []store.Run
	switch {
	case len(refs) > 0:
		if len(machines)+len(commits) > 0 {
			return nil, usageError{errors.New("compare: name runs or filter them by --machine/--commit, not both")}
		}
		for _, ref := range refs {
			r, err := resolveRun(snap, ref)
			if err != nil {
				return nil, err
			}
			picked = append(picked, r)
		}
	case len(machines)+len(commits) > 0:
		if picked, err = filterRuns(snap.Runs, machines, commits); err != nil {
			return nil, err
		}
	case len(dbs) > 1:
		// The merged snapshot does not say which database a run came
		// from; each one's own snapshot does.
		for _, p := range dbs {
			s, err := readResults(p)
			if err != nil {
				return nil, err
			}
			if len(s.Runs) == 0 {
				return nil, usageError{fmt.Errorf("compare: database %s has no runs", p)}
			}
			latest := s.Runs[len(s.Runs)-1]
			i := slices.IndexFunc(snap.Runs, func(r store.Run) bool { return r.UUID == latest.UUID })
			picked = append(picked, snap.Runs[i])
		}
	default:
		if len(snap.Runs) < 2 {
			return nil, usageError{fmt.Errorf("compare: %s has %d run(s); need two, or name another database with --db", dbs[0], len(snap.Runs))}
		}
		picked = snap.Runs[len(snap.Runs)-2:]
	}
	seen := map[string]bool{}
	for _, r := range picked {
		if seen[r.UUID] {
			return nil, usageError{fmt.Errorf("compare: run %d (%s) is selected twice", r.ID, shortUUID(r.UUID))}
		}
		seen[r.UUID] = true
	}
	if len(picked) < 2 {
		return nil, usageError{fmt.Errorf("compare: %d run(s) selected; need two or more (bench list shows the runs)", len(picked))}
	}
	out := make([]compare.Run, len(picked))
	for i, r := range picked {
		out[i].Run = r
		for _, e := range snap.Experiments {
			if e.RunID == r.ID {
				out[i].Experiments = append(out[i].Experiments, e)
			}
		}
	}
	return out, nil
}

// resolveRun finds the run ref names: a run number or a UUID prefix.
func resolveRun(snap *store.Snapshot, ref string) (store.Run, error) {
	if n, err := strconv.ParseInt(ref, 10, 64); err == nil {
		for _, r := range snap.Runs {
			if r.ID == n {
				return r, nil
			}
		}
		return store.Run{}, usageError{fmt.Errorf("compare: no run %d (runs are 1 to %d, oldest first)", n, len(snap.Runs))}
	}
	var found []store.Run
	for _, r := range snap.Runs {
		if strings.HasPrefix(r.UUID, ref) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return store.Run{}, usageError{fmt.Errorf("compare: no run number or UUID prefix %q", ref)}
	case 1:
		return found[0], nil
	}
	return store.Run{}, usageError{fmt.Errorf("compare: UUID prefix %q names %d runs; give more of it", ref, len(found))}
}

// filterRuns picks runs by machine and commit: a flag given several times
// picks the latest matching run per value, in the order given; otherwise
// every run matching both, oldest first.
func filterRuns(runs []store.Run, machines, commits []string) ([]store.Run, error) {
	onMachine := func(r store.Run, m string) bool {
		return r.Machine.Hostname == m || strings.HasPrefix(store.Fingerprint(r.Machine), m)
	}
	atCommit := func(r store.Run, c string) bool { return strings.HasPrefix(r.GitCommit, c) }
	type filter struct {
		flag   string
		values []string
		match  func(store.Run, string) bool
	}
	mf, cf := filter{"--machine", machines, onMachine}, filter{"--commit", commits, atCommit}
	if len(machines) > 1 && len(commits) > 1 {
		return nil, usageError{errors.New("compare: repeat --machine or --commit, not both")}
	}
	cols, other := mf, cf
	if len(commits) > 1 {
		cols, other = cf, mf
	}
	keep := func(r store.Run) bool {
		return len(other.values) == 0 || other.match(r, other.values[0])
	}
	if len(cols.values) <= 1 {
		var out []store.Run
		for _, r := range runs {
			if keep(r) && (len(cols.values) == 0 || cols.match(r, cols.values[0])) {
				out = append(out, r)
			}
		}
		return out, nil
	}
	var out []store.Run
	for _, v := range cols.values {
		i := len(runs) - 1
		for i >= 0 && !(keep(runs[i]) && cols.match(runs[i], v)) {
			i--
		}
		if i < 0 {
			return nil, usageError{fmt.Errorf("compare: no run matches %s %s", cols.flag, v)}
		}
		out = append(out, runs[i])
	}
	return out, nil
}
