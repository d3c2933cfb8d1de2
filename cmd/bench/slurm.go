package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vitbench/vitbench/harness/config"
	"github.com/vitbench/vitbench/harness/plan"
	"github.com/vitbench/vitbench/harness/runner"
	"github.com/vitbench/vitbench/reports"
)

func init() {
	commands["slurm"] = runSlurm
	commands["build"] = runBuild
}

const slurmUsage = `usage: bench slurm FILE.toml [--dir DIR] [--partition P] [--time T] [--cpus N] [--mem M]
                        [--gres G] [--account A] [--only GLOB] [--threads N] [--data-dir DIR]
                        [--assets DIR] [--bench PATH] [--dry-run]
       bench slurm status [--dir DIR] [--json]

Submits a suite to a Slurm cluster: one job per artifact to build (a
training, a compression stage), each after its parents (afterok), and
artifacts already in the cache are not submitted; then one job that
evaluates and times every experiment on one node and writes the database
(DIR/results.db) and the report (DIR/report). The cache (the suite's
cache_dir) must be on a filesystem every node sees. sbatch options come
from the suite's [suite.slurm] table, flags override them. Resubmitting
resumes from the cache. 'bench slurm status' maps the jobs' states back
to the artifacts and experiments.
`

const buildUsage = `usage: bench build FILE.toml (--node HASH [--node HASH]... | --all [--only GLOB])
                   [--threads N] [--train-workers N] [--data-dir DIR]

Builds artifacts of a suite's plan into its cache and nothing else (no
database, no evaluation): the named ones, whose inputs must be cached
(what each 'bench slurm' build job runs), or with --all every artifact
the (--only) experiments need, in order. Shards that share the cache then
only evaluate and time: bench build FILE --all once, then
bench run FILE --shard I/N on each machine.
`

// slurmJob is one submitted job, as jobs.json records it.
type slurmJob struct {
	Name        string   `json:"name"` // build-<hash prefix> or measure
	Kind        string   `json:"kind"` // build or measure
	Hash        string   `json:"hash,omitempty"`
	Label       string   `json:"label"`
	ID          string   `json:"job_id,omitempty"`
	After       []string `json:"after,omitempty"` // job IDs it waits for
	Experiments []string `json:"experiments,omitempty"`
	Script      string   `json:"script"`
}

// slurmSubmission is DIR/jobs.json.
type slurmSubmission struct {
	Suite     string     `json:"suite"`
	Submitted time.Time  `json:"submitted"`
	DB        string     `json:"db"`
	Report    string     `json:"report"`
	Jobs      []slurmJob `json:"jobs"`
}

func runSlurm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "status" {
		return runSlurmStatus(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("slurm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, slurmUsage); fs.PrintDefaults() }
	dir := fs.String("dir", "results/slurm", "folder for job scripts, logs, jobs.json, the database and the report")
	var opt config.Slurm
	fs.StringVar(&opt.Partition, "partition", "", "sbatch --partition (default: the suite's, else the cluster's)")
	fs.StringVar(&opt.Time, "time", "", "sbatch --time")
	fs.IntVar(&opt.CPUs, "cpus", 0, "sbatch --cpus-per-task")
	fs.StringVar(&opt.Mem, "mem", "", "sbatch --mem")
	fs.StringVar(&opt.Gres, "gres", "", "sbatch --gres, e.g. gpu:1")
	fs.StringVar(&opt.Account, "account", "", "sbatch --account")
	only := fs.String("only", "", "submit only experiments matching these globs (comma-separated)")
	threads := fs.Int("threads", 0, "libtorch threads of each job (0 = the job's CPUs)")
	dataDir := fs.String("data-dir", "", "extra data set folder, searched first, on every node")
	assets := fs.String("assets", reports.DefaultAssetsDir, "folder holding echarts.min.js, for the report")
	benchPath := fs.String("bench", "", "the bench binary the jobs run (default: this one)")
	dryRun := fs.Bool("dry-run", false, "write the job scripts and print the sbatch commands; submit nothing")
	files, help, err := parseInterspersed(fs, args)
	if help || err != nil {
		return err
	}
	if len(files) != 1 {
		fs.Usage()
		return usageError{fmt.Errorf("slurm: want one suite file, got %d", len(files))}
	}
	if err := checkRunFlags("-", *dataDir, *threads, 0, plan.DefaultMaxExperiments); err != nil {
		return usageError{err}
	}
	suitePath, err := filepath.Abs(files[0])
	if err != nil {
		return usageError{err}
	}
	suite, err := readSuite(suitePath, 0)
	if err != nil {
		return usageError{err}
	}
	p, err := plan.Build(suite, codeVersion)
	if err != nil {
		return usageError{err}
	}
	if p, err = p.Filter(*only, ""); err != nil {
		return usageError{err}
	}
	var dataDirs []string
	if *dataDir != "" {
		abs, _ := filepath.Abs(*dataDir)
		dataDirs = []string{abs}
	}
	if err := runner.CheckData(p, dataDirs); err != nil {
		return usageError{err}
	}
	opt = mergeSlurm(suite.Slurm, opt)
	if err := checkSlurmValues(opt); err != nil {
		return usageError{err}
	}
	bench := *benchPath
	if bench == "" {
		if bench, err = os.Executable(); err != nil {
			return err
		}
	}
	absDir, err := filepath.Abs(*dir)
	if err != nil {
		return usageError{err}
	}
	absAssets, _ := filepath.Abs(*assets)
	work, err := os.Getwd()
	if err != nil {
		return err
	}
	for _, d := range []string{"jobs", "logs"} {
		if err := os.MkdirAll(filepath.Join(absDir, d), 0o755); err != nil {
			return err
		}
	}
	sub := &slurmSubmission{Suite: suitePath, Submitted: time.Now().UTC(),
		DB: filepath.Join(absDir, "results.db"), Report: filepath.Join(absDir, "report")}
	var common []string
	if *threads > 0 {
		common = append(common, "--threads", strconv.Itoa(*threads))
	}
	for _, d := range dataDirs {
		common = append(common, "--data-dir", d)
	}
	// One build job per artifact not cached, after the jobs of its inputs.
	jobOf := map[string]string{} // artifact hash -> its build job's name
	for _, n := range p.Nodes {
		if cached(suite.CacheDir, n.Hash) {
			continue
		}
		j := &slurmJob{Name: "build-" + n.Hash[:12], Kind: "build", Hash: n.Hash, Label: nodeLabel(n), Experiments: n.Experiments}
		for _, in := range append([]string{n.Upstream}, n.Needs...) {
			if dep, ok := jobOf[in]; in != "" && ok {
				j.After = append(j.After, dep)
			}
		}
		cmd := append([]string{bench, "build", suitePath, "--node", n.Hash, "--train-workers", "1"}, common...)
		if err := writeJobScript(absDir, j, work, cmd, opt); err != nil {
			return err
		}
		sub.Jobs = append(sub.Jobs, *j)
		jobOf[n.Hash] = j.Name
	}
	// The measuring job waits for every build, failed or not: a failed
	// artifact fails only its experiments there (the run records them).
	measure := slurmJob{Name: "measure", Kind: "measure", Label: "evaluate and time every experiment; database and report"}
	for _, j := range sub.Jobs {
		measure.After = append(measure.After, j.Name)
	}
	for _, e := range p.Experiments {
		measure.Experiments = append(measure.Experiments, e.Name)
	}
	cmd := append([]string{bench, "run", suitePath, "--db", sub.DB, "--report", sub.Report, "--assets", absAssets, "--train-workers", "1"}, common...)
	if *only != "" {
		cmd = append(cmd, "--only", *only)
	}
	if err := writeJobScript(absDir, &measure, work, cmd, opt); err != nil {
		return err
	}
	sub.Jobs = append(sub.Jobs, measure)

	idOf := map[string]string{}
	for i := range sub.Jobs {
		j := &sub.Jobs[i]
		args := sbatchArgs(j, idOf)
		if *dryRun {
			fmt.Fprintf(stdout, "sbatch %s\n", strings.Join(args, " "))
			continue
		}
		id, err := sbatch(ctx, args)
		if err != nil {
			return fmt.Errorf("slurm: submit %s: %w", j.Name, err)
		}
		j.ID, idOf[j.Name] = id, id
		j.After = resolveAfter(j.After, idOf)
	}
	if *dryRun {
		return nil
	}
	b, err := json.MarshalIndent(sub, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(absDir, "jobs.json"), b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "submitted %d jobs (%d artifacts to build, %d cached) from %s\n", len(sub.Jobs), len(sub.Jobs)-1, len(p.Nodes)-(len(sub.Jobs)-1), suitePath)
	fmt.Fprintf(stdout, "follow them with: bench slurm status --dir %s\nresults: %s, report %s\n", *dir, sub.DB, filepath.Join(sub.Report, reports.IndexPage))
	return nil
}

// nodeLabel says what a plan node builds.
func nodeLabel(n *plan.Node) string {
	if n.Stage != nil {
		return n.Stage.Label
	}
	return string(n.Kind) + " " + n.Model.Name
}

// mergeSlurm is the suite's options with the flags' set ones on top.
func mergeSlurm(suite, flags config.Slurm) config.Slurm {
	out := suite
	for _, f := range []struct {
		dst *string
		v   string
	}{
		{&out.Partition, flags.Partition}, {&out.Time, flags.Time}, {&out.Mem, flags.Mem},
		{&out.Gres, flags.Gres}, {&out.Account, flags.Account},
	} {
		if f.v != "" {
			*f.dst = f.v
		}
	}
	if flags.CPUs > 0 {
		out.CPUs = flags.CPUs
	}
	return out
}

// checkSlurmValues refuses option values a job script could not carry.
func checkSlurmValues(o config.Slurm) error {
	for name, v := range map[string]string{"partition": o.Partition, "time": o.Time, "mem": o.Mem, "gres": o.Gres, "account": o.Account} {
		if strings.ContainsAny(v, " \t\n'\"$`\\;") {
			return fmt.Errorf("slurm: --%s %q: an sbatch value has no spaces, quotes or shell characters", name, v)
		}
	}
	if o.CPUs < 0 {
		return fmt.Errorf("slurm: --cpus %d: want 1 or more", o.CPUs)
	}
	return nil
}

// writeJobScript writes a job's batch script: its sbatch options, then the
// command run from the working folder, its exit status kept beside it so
// that status can be told after Slurm forgets the job.
func writeJobScript(dir string, j *slurmJob, work string, cmd []string, o config.Slurm) error {
	var b strings.Builder
	b.WriteString("#!/bin/bash\n")
	fmt.Fprintf(&b, "#SBATCH --job-name=vitbench-%s\n", j.Name)
	fmt.Fprintf(&b, "#SBATCH --output=%s\n", filepath.Join(dir, "logs", j.Name+"-%j.out"))
	for _, opt := range []struct{ flag, v string }{
		{"--partition", o.Partition}, {"--time", o.Time}, {"--mem", o.Mem}, {"--gres", o.Gres}, {"--account", o.Account},
	} {
		if opt.v != "" {
			fmt.Fprintf(&b, "#SBATCH %s=%s\n", opt.flag, opt.v)
		}
	}
	if o.CPUs > 0 {
		fmt.Fprintf(&b, "#SBATCH --cpus-per-task=%d\n", o.CPUs)
	}
	status := filepath.Join(dir, "jobs", j.Name+".status")
	fmt.Fprintf(&b, "cd %s || exit 1\nrm -f %s\n", shellQuote(work), shellQuote(status))
	quoted := make([]string, len(cmd))
	for i, c := range cmd {
		quoted[i] = shellQuote(c)
	}
	fmt.Fprintf(&b, "%s\ncode=$?\necho \"$code\" > %s\nexit \"$code\"\n", strings.Join(quoted, " "), shellQuote(status))
	j.Script = filepath.Join(dir, "jobs", j.Name+".sh")
	return os.WriteFile(j.Script, []byte(b.String()), 0o755)
}

func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"$`\\;&|<>(){}*?[]#~!") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// sbatchArgs are a job's sbatch arguments: its dependencies (build jobs
// after their inputs succeeded, killed when one failed; the measuring job
// after every build, however it ended), then the script.
func sbatchArgs(j *slurmJob, idOf map[string]string) []string {
	var args []string
	if len(j.After) > 0 {
		ids := resolveAfter(j.After, idOf)
		kind := "afterok"
		if j.Kind == "measure" {
			kind = "afterany"
		}
		args = append(args, "--dependency="+kind+":"+strings.Join(ids, ":"))
		if kind == "afterok" {
			args = append(args, "--kill-on-invalid-dep=yes")
		}
	}
	return append(args, "--parsable", j.Script)
}

// resolveAfter replaces job names by their IDs where known (a dry run
// knows none and keeps the names).
func resolveAfter(after []string, idOf map[string]string) []string {
	out := make([]string, len(after))
	for i, a := range after {
		if id, ok := idOf[a]; ok {
			out[i] = id
		} else {
			out[i] = a
		}
	}
	return out
}

// sbatch submits and returns the job ID.
func sbatch(ctx context.Context, args []string) (string, error) {
	var out, errb bytes.Buffer
	c := exec.CommandContext(ctx, "sbatch", args...)
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		return "", fmt.Errorf("sbatch: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	id, _, _ := strings.Cut(strings.TrimSpace(out.String()), ";") // "ID;cluster"
	if _, err := strconv.Atoi(id); err != nil {
		return "", fmt.Errorf("sbatch printed %q, not a job ID", out.String())
	}
	return id, nil
}

// slurmState is a job's state as status reports it.
type slurmState struct {
	slurmJob
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

func runSlurmStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("slurm status", stderr, usageText(slurmUsage))
	dir := fs.String("dir", "results/slurm", "the folder given to bench slurm")
	asJSON := fs.Bool("json", false, "print the jobs and their states as JSON")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(*dir, "jobs.json"))
	if err != nil {
		return usageError{fmt.Errorf("slurm status: %w (submit with bench slurm first)", err)}
	}
	var sub slurmSubmission
	if err := json.Unmarshal(b, &sub); err != nil {
		return fmt.Errorf("slurm status: %s: %w", filepath.Join(*dir, "jobs.json"), err)
	}
	states := jobStates(ctx, sub.Jobs)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(states)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tNAME\tSTATE\tWHAT\tEXPERIMENTS")
	for _, s := range states {
		state := s.State
		if s.Reason != "" && s.Reason != "None" {
			state += " (" + s.Reason + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.Name, state, s.Label, nameSummary(s.Experiments, 3))
	}
	return tw.Flush()
}

// jobStates asks Slurm for the jobs it still knows (squeue, then
// scontrol) and reads the others' exit status from their status files.
func jobStates(ctx context.Context, jobs []slurmJob) []slurmState {
	out := make([]slurmState, len(jobs))
	for i, j := range jobs {
		out[i] = slurmState{slurmJob: j, State: "UNKNOWN"}
		if code, err := os.ReadFile(strings.TrimSuffix(j.Script, ".sh") + ".status"); err == nil {
			if strings.TrimSpace(string(code)) == "0" {
				out[i].State = "COMPLETED"
			} else {
				out[i].State, out[i].Reason = "FAILED", "exit "+strings.TrimSpace(string(code))
			}
			continue
		}
		if j.ID == "" {
			continue
		}
		line, err := exec.CommandContext(ctx, "scontrol", "show", "job", "-o", j.ID).Output()
		if err != nil {
			out[i].Reason = "not known to Slurm and no exit status recorded"
			continue
		}
		for _, f := range strings.Fields(string(line)) {
			if v, ok := strings.CutPrefix(f, "JobState="); ok {
				out[i].State = v
			}
			if v, ok := strings.CutPrefix(f, "Reason="); ok {
				out[i].Reason = v
			}
		}
	}
	return out
}

func nameSummary(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}

func runBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, buildUsage); fs.PrintDefaults() }
	var nodes stringList
	fs.Var(&nodes, "node", "hash of an artifact to build (repeatable)")
	threads := fs.Int("threads", 0, "libtorch threads (0 = all cores)")
	trainWorkers := fs.Int("train-workers", 0, "data-parallel training workers (0 = automatic; 1 = off)")
	dataDir := fs.String("data-dir", "", "extra data set folder, searched first")
	all := fs.Bool("all", false, "build every artifact the experiments need")
	only := fs.String("only", "", "with --all: only the artifacts of experiments matching these globs")
	files, help, err := parseInterspersed(fs, args)
	if help || err != nil {
		return err
	}
	if len(files) != 1 || (len(nodes) == 0) == !*all {
		fs.Usage()
		return usageError{errors.New("build: want one suite file and either --node HASH or --all")}
	}
	if err := checkRunFlags("-", *dataDir, *threads, *trainWorkers, plan.DefaultMaxExperiments); err != nil {
		return usageError{err}
	}
	suite, err := readSuite(files[0], 0)
	if err != nil {
		return usageError{err}
	}
	p, err := plan.Build(suite, codeVersion)
	if err != nil {
		return usageError{err}
	}
	if *all {
		if p, err = p.Filter(*only, ""); err != nil {
			return usageError{err}
		}
		for _, n := range p.Nodes {
			nodes = append(nodes, n.Hash)
		}
	}
	r := &runner.Runner{Plan: p, Threads: *threads, TrainWorkers: *trainWorkers, Log: stdout}
	if *dataDir != "" {
		r.DataDirs = []string{*dataDir}
	}
	return r.Build(ctx, nodes)
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
