package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/sugarme/gotch"
	"github.com/vitbench/vitbench/harness/plan"
	"github.com/vitbench/vitbench/harness/runner"
	"github.com/vitbench/vitbench/harness/store"
	"github.com/vitbench/vitbench/harness/sysinfo"
	"github.com/vitbench/vitbench/reports"
)

func init() { commands["run"] = runRun }

const runUsage = `usage: bench run FILE.toml [--db PATH] [--report DIR] [--only GLOB] [--device cpu|cuda|auto]
                      [--threads N] [--train-workers N] [--dry-run] [--shard I/N] [--data-dir DIR]
                      [--assets DIR] [--max-experiments N] [--cpuprofile FILE]

Runs a suite: trains or loads each baseline, applies every experiment's
pipeline (artifacts cached by content hash and reused), measures accuracy,
counts, size and latency, stores everything in the database and writes
the HTML report.
`

// codeVersion goes into every artifact hash: bump it when a change alters
// what training or a technique produces, so stale artifacts are rebuilt.
const codeVersion = "vitbench-1"

func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, runUsage); fs.PrintDefaults() }
	db := fs.String("db", store.DefaultPath, "results database")
	reportDir := fs.String("report", reportOutDefault, "report folder")
	only := fs.String("only", "", "run only experiments matching these globs (comma-separated)")
	device := fs.String("device", "cpu", "cpu, cuda or auto")
	threads := fs.Int("threads", 0, "libtorch threads (0 = all cores)")
	trainWorkers := fs.Int("train-workers", 0, "data-parallel training workers sharing the threads (0 = 2 on a CPU with 2+ threads; 1 = off)")
	dryRun := fs.Bool("dry-run", false, "print the plan and what is cached, run nothing")
	shard := fs.String("shard", "", "run a deterministic share I/N of the experiments")
	dataDir := fs.String("data-dir", "", "extra data set folder, searched first")
	assets := fs.String("assets", reports.DefaultAssetsDir, "folder holding echarts.min.js")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the run to this file (go tool pprof)")
	maxExperiments := fs.Int("max-experiments", plan.DefaultMaxExperiments, "refuse a suite whose grids expand into more experiments than this")
	files, help, err := parseInterspersed(fs, args)
	if help || err != nil {
		return err
	}
	if len(files) != 1 {
		fs.Usage()
		return usageError{fmt.Errorf("run: want one suite file, got %d", len(files))}
	}
	if err := checkRunFlags(*db, *dataDir, *threads, *trainWorkers, *maxExperiments); err != nil {
		return usageError{err}
	}
	dev, err := pickDevice(*device)
	if err != nil {
		return usageError{err}
	}

	suite, err := readSuite(files[0], sysinfo.MemoryBytes())
	if err != nil {
		return usageError{err}
	}
	p, err := plan.BuildLimit(suite, codeVersion, *maxExperiments)
	if err != nil {
		return usageError{err}
	}
	if p, err = p.Filter(*only, *shard); err != nil {
		return usageError{err}
	}
	if *dryRun {
		return p.Describe(stdout, func(hash string) bool { return cached(suite.CacheDir, hash) })
	}
	var dataDirs []string
	if *dataDir != "" {
		dataDirs = []string{*dataDir}
	}
	if err := runner.CheckData(p, dataDirs); err != nil {
		return usageError{err}
	}

	info, err := sysinfo.Collect(ctx, sysinfo.Options{})
	if err != nil {
		return err
	}
	for _, w := range info.Warnings() {
		fmt.Fprintln(stderr, "WARNING:", w)
	}
	sdb, err := store.Open(*db)
	if err != nil {
		return err
	}
	defer sdb.Close()
	abs, _ := filepath.Abs(files[0])
	run := info.Run() // the runner sets Threads and Engine to what it times with
	run.SuiteName, run.SuitePath, run.SuiteHash = suite.Name, abs, suiteHash(p)
	run.SuiteDescription = suite.Description
	run.GitCommit = info.GitCommit
	run.Args = append([]string{"bench", "run"}, args...)
	r := &runner.Runner{
		Plan:         p,
		DB:           sdb,
		Device:       dev,
		Run:          run,
		Threads:      *threads,
		TrainWorkers: *trainWorkers,
		Log:          stdout,
		Progress:     newProgress(stderr).update,
	}
	r.DataDirs = dataDirs
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	sum, runErr := r.Execute(ctx)
	if sum == nil {
		return runErr
	}
	fmt.Fprintf(stdout, "run finished in %s: %d ok, %d failed\n", time.Since(start).Round(time.Second), sum.OK, sum.Failed)
	for _, f := range sum.Failures {
		fmt.Fprintf(stdout, "  failed: %s\n", indentLines(f, maxFailureLines))
	}

	snap, err := sdb.Snapshot(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	if err := reports.Render(snap, reports.Options{OutDir: *reportDir, AssetsDir: *assets}); err != nil {
		// The run itself is stored as it ended; only the pages are missing.
		return fmt.Errorf("the results are stored in %s, but the report could not be written (%w); once fixed: bench report --db %s --out %s", *db, err, *db, *reportDir)
	}
	fmt.Fprintf(stdout, "report: %s\n", filepath.Join(*reportDir, reports.IndexPage))
	if runErr != nil {
		return runErr
	}
	if sum.Failed > 0 {
		return errSomeFailed
	}
	return nil
}

// checkRunFlags refuses flag values that are bad input, before anything
// is read, created or run.
func checkRunFlags(db, dataDir string, threads, trainWorkers, maxExperiments int) error {
	switch {
	case strings.TrimSpace(db) == "":
		return errors.New("run: --db is empty: name the results database")
	case threads < 0:
		return fmt.Errorf("run: --threads %d: want 0 (every core) or more", threads)
	case trainWorkers < 0:
		return fmt.Errorf("run: --train-workers %d: want 0 (automatic), 1 (off) or more", trainWorkers)
	case maxExperiments < 1:
		return fmt.Errorf("run: --max-experiments %d: want 1 or more", maxExperiments)
	}
	if dataDir != "" {
		st, err := os.Stat(dataDir)
		if err != nil {
			return fmt.Errorf("run: --data-dir: %w", err)
		}
		if !st.IsDir() {
			return fmt.Errorf("run: --data-dir %s is not a folder", dataDir)
		}
	}
	return nil
}

func pickDevice(name string) (gotch.Device, error) {
	switch name {
	case "cpu":
		return gotch.CPU, nil
	case "cuda":
		if !gotch.CUDA.IsAvailable() {
			return gotch.CPU, errors.New("--device cuda: libtorch reports no CUDA device (a CPU libtorch, or no GPU); set LIBTORCH to a CUDA libtorch tree and re-run make setup")
		}
		return gotch.CudaBuilder(0), nil
	case "auto":
		return gotch.CudaIfAvailable(), nil
	}
	return gotch.CPU, fmt.Errorf("--device %q: want cpu, cuda or auto", name)
}

func cached(dir, hash string) bool {
	_, err := os.Stat(filepath.Join(dir, hash[:2], hash+".pt.meta.json"))
	return err == nil
}

func suiteHash(p *plan.Plan) string {
	var hs []string
	for _, e := range p.Experiments {
		hs = append(hs, e.Name+"="+e.Hash())
	}
	return shortHash(strings.Join(hs, "\n"))
}

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}

// maxFailureLines bounds each failure the console shows; the database and
// the experiment's page keep the whole message.
const maxFailureLines = 12

// indentLines indents every line of s after the first for a list, keeping
// at most n lines and saying how many were left out.
func indentLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if i > 0 && strings.HasPrefix(strings.TrimSpace(l), "Exception raised from") {
			// libtorch's C++ backtrace: for the experiment's page, not the console.
			lines = append(lines[:i], fmt.Sprintf("(libtorch's backtrace, %d lines: bench list --json or the experiment's page)", len(lines)-i))
			break
		}
	}
	if len(lines) > n {
		left := len(lines) - n
		lines = append(lines[:n], fmt.Sprintf("(%d more lines: bench list --json or the experiment's page)", left))
	}
	return strings.Join(lines, "\n          ")
}
