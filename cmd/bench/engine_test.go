package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/vitbench/vitbench/harness/store"
)

// TestLatencyEngineMatchesRun checks that bench latency and bench run
// resolve the engine alike: for each thread count and engine asked for
// (--engine, or the suite's [suite.measure] engine), the engine that
// latency --json reports is the one the run records.
func TestLatencyEngineMatchesRun(t *testing.T) {
	dir := t.TempDir()
	art := saveTinyArtifact(t, dir, false)
	db := filepath.Join(dir, "r.db")
	for i, tt := range []struct {
		threads int
		engine  string // "" asks for none
	}{
		{1, ""}, {1, "split"}, {2, ""}, {2, "split"}, {2, "eager"},
	} {
		name := fmt.Sprintf("%d threads, engine %q", tt.threads, tt.engine)
		args := []string{"latency", "--json", "--weights", art, "--threads", strconv.Itoa(tt.threads), "--warmup", "0", "--iters", "1"}
		if tt.engine != "" {
			args = append(args, "--engine", tt.engine)
		}
		var lat latencyResult
		runJSON(t, args, &lat)

		// One suite file per case; the shared cache trains the model once.
		setting := ""
		if tt.engine != "" {
			setting = fmt.Sprintf("engine = %q\n", tt.engine)
		}
		suite := filepath.Join(dir, fmt.Sprintf("suite%d.toml", i))
		src := fmt.Sprintf(`
[suite]
name = "engine"
cache_dir = %q

[suite.measure]
warmup = 0
iters = 1
throughput_batch = 2
%s
[models.a]
arch = { img_size = 32, patch_size = 8, embed_dim = 16, depth = 1, num_heads = 2 }
data = { name = "synthetic", train_size = 64, test_size = 16 }
train = { epochs = 1, batch_size = 32 }
`, filepath.Join(dir, "artifacts"), setting)
		if err := os.WriteFile(suite, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err := Main(context.Background(), []string{"run", suite, "--db", db, "--report", filepath.Join(dir, "report"),
			"--threads", strconv.Itoa(tt.threads), "--assets", assetsDir}, &out, &out)
		if err != nil {
			t.Fatalf("%s: bench run: %v\n%s", name, err, out.String())
		}
		s, err := store.OpenReadOnly(db)
		if err != nil {
			t.Fatal(err)
		}
		runs, err := s.Runs(context.Background())
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != i+1 {
			t.Fatalf("%s: %d runs stored, want %d", name, len(runs), i+1)
		}
		if got := runs[i].Engine; got != lat.Engine {
			t.Errorf("%s: bench latency times with %q, bench run records %q", name, lat.Engine, got)
		}
	}
}
