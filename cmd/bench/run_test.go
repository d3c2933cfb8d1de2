package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vitbench/vitbench/harness/store"
)

// TestMain lets tests run the command in a child process (the test binary
// re-executed), so they can kill it or run two at once.
func TestMain(m *testing.M) {
	if os.Getenv("VITBENCH_TEST_REEXEC") != "" {
		reexecWithRuntimeEnv()
		fmt.Print(os.Getenv("OMP_WAIT_POLICY") + "," + os.Getenv("MALLOC_TRIM_THRESHOLD_") + "," + os.Getenv("OPENBLAS_CORETYPE"))
		os.Exit(0)
	}
	if args := os.Getenv("VITBENCH_TEST_MAIN"); args != "" {
		err := Main(context.Background(), strings.Split(args, "\x1f"), os.Stdout, os.Stderr)
		os.Exit(exitCode(err, os.Stderr))
	}
	os.Exit(m.Run())
}

// assetsDir is the set-up's ECharts folder, seen from this package.
var assetsDir, _ = filepath.Abs("../../.cache/assets")

func child(args ...string) *exec.Cmd {
	if len(args) > 0 && args[0] == "run" {
		args = append(args, "--assets", assetsDir)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "VITBENCH_TEST_MAIN="+strings.Join(args, "\x1f"))
	return cmd
}

// synthetic suite: two models so a run has several artifacts to build.
func writeSuite(t *testing.T, dir string, epochs int) string {
	t.Helper()
	src := fmt.Sprintf(`
[suite]
name = "resume"
cache_dir = %q

[suite.measure]
warmup = 1
iters = 3
throughput_batch = 8

[models.a]
arch = { img_size = 32, patch_size = 8, embed_dim = 32, depth = 1, num_heads = 2 }
data = { name = "synthetic", val_size = 200 }
train = { epochs = %d, batch_size = 100 }

[models.b]
arch = { img_size = 32, patch_size = 8, embed_dim = 48, depth = 2, num_heads = 2 }
data = { name = "synthetic", val_size = 200 }
train = { epochs = %d, batch_size = 100 }
`, filepath.Join(dir, "artifacts"), epochs, epochs)
	p := filepath.Join(dir, "suite.toml")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunBadInputExitsTwo(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.toml")
	os.WriteFile(p, []byte("[suite]\nname = \"x\"\nbogus = 1\n\n[models.m]\narch = { img_size = 0, patch_size = 4, embed_dim = 8, depth = 1, num_heads = 1 }\ndata = \"cifar10\"\n"), 0o644)
	var out bytes.Buffer
	cmd := child("run", p, "--db", filepath.Join(dir, "r.db"))
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 {
		t.Fatalf("exit = %v, want status 2\n%s", err, out.String())
	}
	for _, want := range []string{"bad.toml:3", "suite.bogus", "img_size"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("error output lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "r.db")); err == nil {
		t.Errorf("bad input created a database")
	}
}

// kill -9 in the middle of a suite leaves the database intact; the next
// run resumes from the cached artifacts and duplicates nothing.
func TestKillAndResume(t *testing.T) {
	dir := t.TempDir()
	suite := writeSuite(t, dir, 3)
	db := filepath.Join(dir, "r.db")
	report := filepath.Join(dir, "report")

	var out bytes.Buffer
	cmd := child("run", suite, "--db", db, "--report", report, "--threads", "1")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the first artifact, then kill while the second trains.
	deadline := time.Now().Add(60 * time.Second)
	for {
		m, _ := filepath.Glob(filepath.Join(dir, "artifacts", "*", "*.meta.json"))
		if len(m) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no artifact after 60 s:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	var out2 bytes.Buffer
	cmd2 := child("run", suite, "--db", db, "--report", report, "--threads", "1")
	cmd2.Stdout, cmd2.Stderr = &out2, &out2
	if err := cmd2.Run(); err != nil {
		t.Fatalf("second run: %v\n%s", err, out2.String())
	}
	if n := strings.Count(out2.String(), "train a:") + strings.Count(out2.String(), "train b:"); n == 0 || strings.Contains(out2.String(), "train a:") && strings.Contains(out2.String(), "train b:") {
		t.Errorf("second run should train only the model the kill interrupted:\n%s", out2.String())
	}

	s, err := store.OpenReadOnly(db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runs, err := s.Runs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 {
		t.Fatalf("%d runs, want 2", len(runs))
	}
	if runs[0].Status != store.StatusInterrupted || runs[1].Status != store.StatusOK {
		t.Errorf("statuses %s, %s; want interrupted, ok", runs[0].Status, runs[1].Status)
	}
	es, _ := s.Experiments(context.Background(), runs[1].ID)
	if len(es) != 2 {
		t.Errorf("second run has %d experiments, want 2", len(es))
	}
	for _, e := range es {
		if e.Status != store.StatusOK {
			t.Errorf("%s: %s %s", e.Name, e.Status, e.Error)
		}
	}
}

// Two runs writing one database at once lose no rows.
func TestConcurrentRunsShareADatabase(t *testing.T) {
	dir := t.TempDir()
	suite := writeSuite(t, dir, 1)
	db := filepath.Join(dir, "r.db")
	var wg sync.WaitGroup
	outs := make([]bytes.Buffer, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := child("run", suite, "--db", db, "--report", filepath.Join(dir, fmt.Sprint("rep", i)), "--threads", "1")
			cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
			errs[i] = cmd.Run()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i, err, outs[i].String())
		}
	}
	s, err := store.OpenReadOnly(db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	snap, err := s.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Runs) != 2 || len(snap.Experiments) != 4 {
		t.Fatalf("%d runs and %d experiments stored, want 2 and 4", len(snap.Runs), len(snap.Experiments))
	}
	for _, e := range snap.Experiments {
		if e.Status != store.StatusOK || len(e.Metrics) == 0 {
			t.Errorf("run %d %s: %s, %d metrics", e.RunID, e.Name, e.Status, len(e.Metrics))
		}
	}
}

func TestIndentLines(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"one", 3, "one"},
		{"data set not found; searched, in order:\n  a\n  b\n", 5, "data set not found; searched, in order:\n            a\n            b"},
		{"1\n2\n3\n4", 2, "1\n          2\n          (2 more lines: bench list --json or the experiment's page)"},
		{"heads: libtorch: Add() failed\nException raised from infer_size_impl\nframe #0: c10\nframe #1: at", 12, "heads: libtorch: Add() failed\n          (libtorch's backtrace, 3 lines: bench list --json or the experiment's page)"},
	} {
		if got := indentLines(tt.in, tt.n); got != tt.want {
			t.Errorf("indentLines(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// TestReportFailureKeepsResults checks a run whose report cannot be
// written: status 1, a message saying the results are stored and how to
// render them, and the run stored as it ended.
func TestReportFailureKeepsResults(t *testing.T) {
	dir := t.TempDir()
	suite := writeSuite(t, dir, 1)
	db := filepath.Join(dir, "r.db")
	var stdout, stderr bytes.Buffer
	err := Main(context.Background(), []string{"run", suite, "--db", db, "--report", filepath.Join(dir, "report"), "--assets", filepath.Join(dir, "no-assets")}, &stdout, &stderr)
	if code := exitCode(err, &stderr); code != 1 {
		t.Fatalf("exit status %d, want 1\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "the results are stored in "+db) || !strings.Contains(stderr.String(), "bench report --db "+db) {
		t.Errorf("message: %s", stderr.String())
	}
	snap, err := store.OpenSnapshots(db)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Runs) != 1 || snap.Runs[0].Status != store.StatusOK || len(snap.Experiments) != 2 {
		t.Errorf("stored: %d runs (%+v), %d experiments", len(snap.Runs), snap.Runs, len(snap.Experiments))
	}
}
