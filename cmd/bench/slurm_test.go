package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/store"
)

// slurmSuite is a tiny synthetic suite: two models, a stage on the first
// and a distillation from it into the second.
func slurmSuite(t *testing.T, dir, cacheDir string) string {
	t.Helper()
	src := fmt.Sprintf(`[suite]
name = "slurm"
cache_dir = %q

[suite.slurm]
partition = "debug"
time = "00:30:00"

[suite.measure]
warmup = 1
iters = 3
throughput_batch = 8

[models.a]
arch = { img_size = 32, patch_size = 8, embed_dim = 16, depth = 1, num_heads = 2 }
data = { name = "synthetic", val_size = 100 }
train = { epochs = 1, batch_size = 100 }

[models.b]
arch = { img_size = 32, patch_size = 8, embed_dim = 8, depth = 1, num_heads = 2 }
data = { name = "synthetic", val_size = 100 }
train = { epochs = 1, batch_size = 100 }
teacher = "a"

[[experiment]]
name = "heads"
model = "a"
pipeline = [{ technique = "prune", kind = "heads", amount = 0.5 }]
`, cacheDir)
	p := filepath.Join(dir, "suite.toml")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeSbatch puts an sbatch on PATH that logs its arguments, one line per
// call, and prints job IDs 101, 102, ...
func fakeSbatch(t *testing.T) (log string) {
	t.Helper()
	bin := t.TempDir()
	log = filepath.Join(bin, "calls")
	script := fmt.Sprintf(`#!/bin/bash
n=$(( $(cat %[1]s 2>/dev/null | wc -l) + 101 ))
echo "$*" >> %[1]s
echo "$n;vitbench"
`, log)
	if err := os.WriteFile(filepath.Join(bin, "sbatch"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return log
}

// TestSlurmSubmitsArtifactGraph checks the jobs bench slurm submits: one
// per artifact not cached, each after its inputs' jobs (afterok, killed
// when one fails), the measuring job after all of them (afterany), and the
// sbatch options of [suite.slurm] with flags on top.
func TestSlurmSubmitsArtifactGraph(t *testing.T) {
	calls := fakeSbatch(t)
	dir := t.TempDir()
	cacheDir := filepath.Join(dir, "cache")
	suite := slurmSuite(t, dir, cacheDir)
	out := filepath.Join(dir, "slurm")
	var stdout, stderr bytes.Buffer
	if err := Main(context.Background(), []string{"slurm", suite, "--dir", out, "--time", "01:00:00", "--bench", "/opt/bench"}, &stdout, &stderr); err != nil {
		t.Fatalf("slurm: %v\n%s", err, stderr.String())
	}
	sub := readSubmission(t, out)
	// a, b (distilled from a), heads (a stage on a), then measure.
	var names []string
	byName := map[string]slurmJob{}
	for _, j := range sub.Jobs {
		names = append(names, j.Kind+":"+j.Label)
		byName[j.Label] = j
	}
	want := []string{"build:train a", "build:train b", "build:prune(kind=heads)", "measure:evaluate and time every experiment; database and report"}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("jobs = %v, want %v", names, want)
	}
	a, b, heads, measure := byName["train a"], byName["train b"], byName["prune(kind=heads)"], sub.Jobs[3]
	if a.ID != "101" || len(a.After) != 0 || fmt.Sprint(b.After) != "[101]" || fmt.Sprint(heads.After) != "[101]" || fmt.Sprint(measure.After) != "[101 102 103]" {
		t.Errorf("dependencies: a %s after %v, b after %v, heads after %v, measure after %v", a.ID, a.After, b.After, heads.After, measure.After)
	}
	log, _ := os.ReadFile(calls)
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[1], "--dependency=afterok:101 --kill-on-invalid-dep=yes --parsable ") ||
		!strings.HasPrefix(lines[3], "--dependency=afterany:101:102:103 --parsable ") {
		t.Errorf("sbatch calls:\n%s", log)
	}
	script, _ := os.ReadFile(heads.Script)
	for _, w := range []string{"#SBATCH --partition=debug", "#SBATCH --time=01:00:00", "/opt/bench build " + suite + " --node " + heads.Hash, "echo \"$code\" >"} {
		if !strings.Contains(string(script), w) {
			t.Errorf("build script lacks %q:\n%s", w, script)
		}
	}
	script, _ = os.ReadFile(measure.Script)
	if !strings.Contains(string(script), "/opt/bench run "+suite+" --db "+filepath.Join(out, "results.db")) {
		t.Errorf("measure script:\n%s", script)
	}

	// With a's artifact cached, a is not submitted and nothing waits for it.
	meta := filepath.Join(cacheDir, a.Hash[:2], a.Hash+".pt.meta.json")
	os.MkdirAll(filepath.Dir(meta), 0o755)
	os.WriteFile(meta, []byte("{}"), 0o644)
	os.Remove(calls)
	if err := Main(context.Background(), []string{"slurm", suite, "--dir", out, "--bench", "/opt/bench"}, &stdout, &stderr); err != nil {
		t.Fatalf("slurm again: %v", err)
	}
	sub = readSubmission(t, out)
	if len(sub.Jobs) != 3 || sub.Jobs[0].Label != "train b" || len(sub.Jobs[0].After) != 0 || len(sub.Jobs[1].After) != 0 {
		t.Errorf("resubmitted with a cached: %+v", sub.Jobs)
	}
}

func readSubmission(t *testing.T, dir string) slurmSubmission {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "jobs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sub slurmSubmission
	if err := json.Unmarshal(b, &sub); err != nil {
		t.Fatal(err)
	}
	return sub
}

// TestSlurmCluster runs the suite through a real Slurm cluster (make test
// starts a single-node one with scripts/slurm-local.sh) and checks that
// its database holds the same experiments, artifact hashes and top-1 as a
// local run of the same suite with its own cache.
func TestSlurmCluster(t *testing.T) {
	if err := exec.Command("sinfo", "-h").Run(); err != nil {
		t.Skip("no Slurm cluster answers (sinfo): make test starts one with scripts/slurm-local.sh")
	}
	dir := t.TempDir()
	suite := slurmSuite(t, dir, filepath.Join(dir, "cluster-cache"))
	// The jobs run this test binary as bench.
	wrapper := filepath.Join(dir, "bench")
	script := fmt.Sprintf("#!/bin/bash\nIFS=$'\\x1f'\nexport VITBENCH_TEST_MAIN=\"$*\"\nexec %q -test.run='^$'\n", os.Args[0])
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "slurm")
	var stdout, stderr bytes.Buffer
	if err := Main(context.Background(), []string{"slurm", suite, "--dir", out, "--bench", wrapper, "--threads", "1", "--assets", assetsDir}, &stdout, &stderr); err != nil {
		t.Fatalf("slurm: %v\n%s", err, stderr.String())
	}
	sub := readSubmission(t, out)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		states := jobStates(context.Background(), sub.Jobs)
		last := states[len(states)-1]
		if last.State == "COMPLETED" {
			break
		}
		if last.State == "FAILED" || last.State == "CANCELLED" || time.Now().After(deadline) {
			logs, _ := filepath.Glob(filepath.Join(out, "logs", "*"))
			var all string
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				all += l + ":\n" + string(b) + "\n"
			}
			t.Fatalf("measure job %s (%s); jobs %+v\n%s", last.State, last.Reason, states, all)
		}
		time.Sleep(time.Second)
	}
	for _, s := range jobStates(context.Background(), sub.Jobs) {
		if s.State != "COMPLETED" {
			t.Errorf("job %s: %s", s.Name, s.State)
		}
	}
	// The same suite run here, with its own cache.
	local := filepath.Join(dir, "local")
	os.MkdirAll(local, 0o755)
	localSuite := slurmSuite(t, local, filepath.Join(dir, "local-cache"))
	localDB := filepath.Join(dir, "local.db")
	if err := Main(context.Background(), []string{"run", localSuite, "--db", localDB, "--report", filepath.Join(dir, "local-report"), "--assets", assetsDir, "--threads", "1", "--train-workers", "1"}, &stdout, &stderr); err != nil {
		t.Fatalf("local run: %v\n%s", err, stderr.String())
	}
	summary := func(path string) map[string]string {
		snap, err := store.OpenSnapshots(path)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, e := range snap.Experiments {
			top1 := "-"
			for _, x := range e.Metrics {
				if x.Name == metrics.Top1 {
					top1 = fmt.Sprintf("%.4f", x.Value)
				}
			}
			m[e.Name] = fmt.Sprintf("%s %s %s", e.Status, e.Hash[:12], top1)
		}
		return m
	}
	cluster, here := summary(sub.DB), summary(localDB)
	if len(cluster) != 3 || fmt.Sprint(cluster) != fmt.Sprint(here) {
		t.Errorf("cluster run %v\nlocal run   %v", cluster, here)
	}
}

// TestBuildAll checks that bench build --all puts every artifact of the
// plan in the cache and creates no database, so that shards sharing the
// cache only evaluate and time.
func TestBuildAll(t *testing.T) {
	dir := t.TempDir()
	cacheDir := filepath.Join(dir, "cache")
	suite := slurmSuite(t, dir, cacheDir)
	var stdout, stderr bytes.Buffer
	if err := Main(context.Background(), []string{"build", suite, "--all", "--threads", "1"}, &stdout, &stderr); err != nil {
		t.Fatalf("build --all: %v\n%s", err, stderr.String())
	}
	metas, _ := filepath.Glob(filepath.Join(cacheDir, "*", "*.pt.meta.json"))
	if len(metas) != 3 { // a, b and the heads stage
		t.Errorf("%d artifacts cached, want 3: %v", len(metas), metas)
	}
	if dbs, _ := filepath.Glob(filepath.Join(dir, "*.db")); len(dbs) > 0 {
		t.Errorf("build wrote a database: %v", dbs)
	}
	if err := Main(context.Background(), []string{"build", suite}, &stdout, &stderr); exitCode(err, &stderr) != 2 {
		t.Errorf("build without --node or --all: %v, want bad input", err)
	}
}
