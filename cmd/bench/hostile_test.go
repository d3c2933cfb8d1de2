package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/store"
)

// hostileBase is a valid suite the hostile cases break one line of: its
// model line numbers are fixed (the model table starts on line 8).
const hostileBase = `[suite]
name = "hostile"

[suite.measure]
warmup = 1
iters = 3

[models.m]
arch = { img_size = 32, patch_size = 8, embed_dim = 32, depth = 1, num_heads = 2 }
data = { name = "synthetic", val_size = 200 }
train = { epochs = 1, batch_size = 100 }
`

// seedDB writes a database holding one finished run with one experiment,
// as a user's results database does before a hostile run.
func seedDB(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := &store.Run{Machine: store.Machine{Hostname: "vm", CPU: "AMD EPYC", Cores: 2}, Threads: 2, SuiteName: "earlier", Device: "cpu"}
	if err := db.BeginRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	e := &store.Experiment{RunID: r.ID, Name: "kept", Group: "kept", Model: "m", Dataset: "synthetic", Status: store.StatusOK,
		SpecJSON: "{}", Hash: "h", Executed: "fp32", Started: time.Now(), Ended: time.Now(),
		Metrics: []metrics.Metric{metrics.New(metrics.Top1, 50)}}
	if err := db.SaveExperiment(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishRun(ctx, r.ID, store.StatusOK); err != nil {
		t.Fatal(err)
	}
}

// dbState is what must not change: the integrity check's answer and the
// row count of every table.
func dbState(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	state := "integrity " + check
	for _, tb := range tables {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM "` + tb + `"`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		state += fmt.Sprintf(", %s %d", tb, n)
	}
	return state
}

// TestHostileSuites runs suites and command lines a hostile user would
// try. Each is bad input: exit status 2, a message naming the file, line
// and key where there is one, and the results database exactly as it was
// (integrity check ok, every table's rows the same).
func TestHostileSuites(t *testing.T) {
	// replace swaps one line of hostileBase; add appends to it.
	replace := func(old, new string) string {
		if !strings.Contains(hostileBase, old) {
			panic("hostile case: " + old + " not in the base suite")
		}
		return strings.Replace(hostileBase, old, new, 1)
	}
	add := func(s string) string { return hostileBase + s }
	exp := func(pipeline string) string {
		return add("\n[[experiment]]\nname = \"x\"\nmodel = \"m\"\npipeline = [" + pipeline + "]\n")
	}
	dir := t.TempDir()
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, bytes.Repeat([]byte("# padding\n"), 500_000), 0o644); err != nil {
		t.Fatal(err)
	}
	notCkpt := filepath.Join(dir, "notes.pth")
	if err := os.WriteFile(notCkpt, []byte("these are my notes, not weights\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	timed := "\n[models.t]\narch = { img_size = 32, patch_size = 8, embed_dim = 32, depth = 1, num_heads = 2 }\ndata = \"synthetic\"\ntimed_only = true\n" // a timed-only model t, lines 13-16
	var sweep strings.Builder
	for i := range 3 {
		fmt.Fprintf(&sweep, "\n[[experiment]]\nname = \"s%d\"\nmodel = \"m\"\npipeline = [{ technique = \"prune\", kind = \"unstructured\", amount = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9] }, { technique = \"quantize\", weight_bits = [2, 3, 4, 5, 6, 7, 8], act_bits = [2, 3, 4, 5, 6, 7, 8], calibrator = [\"minmax\", \"percentile\"] }]\n", i)
	}
	tests := []struct {
		name  string
		suite string   // the suite's text; "" runs args alone
		args  []string // extra arguments
		want  []string // in the error output
	}{
		// Sizes that would be allocated.
		{"max batch", replace("batch_size = 100", "batch_size = 9223372036854775807"), nil, []string{"suite.toml:11", "models.m.train.batch_size", "must be in [1, 65536]"}},
		{"huge batch", replace("batch_size = 100", "batch_size = 100000000"), nil, []string{"suite.toml:11", "models.m.train.batch_size"}},
		{"batch over memory", replace("embed_dim = 32, depth = 1", "embed_dim = 4096, depth = 64"), nil, []string{"suite.toml:11", "models.m.train.batch_size", "of memory"}},
		{"zero batch", replace("batch_size = 100", "batch_size = 0"), nil, []string{"suite.toml:11", "models.m.train.batch_size"}},
		{"negative batch", replace("batch_size = 100", "batch_size = -5"), nil, []string{"models.m.train.batch_size"}},
		{"huge depth", replace("depth = 1", "depth = 100000000"), nil, []string{"suite.toml:9", "models.m.arch.depth", "must be in [1, 256]"}},
		{"huge width", replace("embed_dim = 32", "embed_dim = 1000000"), nil, []string{"suite.toml:9", "models.m.arch.embed_dim"}},
		{"huge image", replace("img_size = 32", "img_size = 1000000"), nil, []string{"models.m.arch.img_size"}},
		{"zero patch", replace("patch_size = 8", "patch_size = 0"), nil, []string{"models.m.arch.patch_size"}},
		{"image size not the data's", replace("img_size = 32", "img_size = 16"), nil, []string{"suite.toml:9", "models.m.arch.img_size", "synthetic images are 32x32"}},
		{"heads do not divide", replace("num_heads = 2", "num_heads = 3"), nil, []string{"models.m.arch.num_heads", "not divisible"}},
		{"patch does not divide", replace("patch_size = 8", "patch_size = 7"), nil, []string{"models.m.arch.patch_size"}},
		{"huge iters", replace("iters = 3", "iters = 9000000000"), nil, []string{"suite.toml:6", "suite.measure.iters"}},
		{"zero iters", replace("iters = 3", "iters = 0"), nil, []string{"suite.toml:6", "suite.measure.iters"}},
		{"negative warmup", replace("warmup = 1", "warmup = -1"), nil, []string{"suite.toml:5", "suite.measure.warmup"}},
		{"huge throughput batch", replace("iters = 3", "iters = 3\nthroughput_batch = 10000000"), nil, []string{"suite.measure.throughput_batch"}},
		{"huge eval batch", replace("iters = 3", "iters = 3\neval_batch = 10000000"), nil, []string{"suite.measure.eval_batch"}},
		{"negative threads", replace("iters = 3", "iters = 3\nthreads = -2"), nil, []string{"suite.measure.threads"}},
		// Values of the wrong kind.
		{"nan lr", replace("batch_size = 100 }", "batch_size = 100, lr = nan }"), nil, []string{"models.m.train.lr"}},
		{"inf epochs", replace("epochs = 1", "epochs = inf"), nil, []string{"models.m.train.epochs"}},
		{"string batch", replace("batch_size = 100", `batch_size = "100"`), nil, []string{"models.m.train.batch_size", "want an integer"}},
		{"negative epochs", replace("epochs = 1", "epochs = -1"), nil, []string{"models.m.train.epochs"}},
		{"unknown optimizer", replace("batch_size = 100 }", `batch_size = 100, optimizer = "lion" }`), nil, []string{"models.m.train.optimizer"}},
		{"unknown suite key", replace("name = \"hostile\"", "name = \"hostile\"\nbogus = 1"), nil, []string{"suite.toml:3", "suite.bogus"}},
		{"unknown top key", add("\n[nope]\nx = 1\n"), nil, []string{"nope", "unknown key"}},
		{"unknown data set", replace(`data = { name = "synthetic", val_size = 200 }`, `data = "imagenet-22k"`), nil, []string{"models.m.data"}},
		{"data set nowhere", replace(`data = { name = "synthetic", val_size = 200 }`, `data = { name = "imagefolder", path = "/nonexistent/images" }`), nil, []string{"suite.toml:8", "models.m.data", "/nonexistent/images"}},
		{"weights not a checkpoint", add(fmt.Sprintf("\n[models.w]\narch = \"deit_tiny_patch16_224\"\ndata = \"cifar10\"\nweights = %q\n[[experiment]]\nname = \"e\"\nmodel = \"w\"\n", notCkpt)), nil, []string{"suite.toml:13", "models.w.weights", "not a PyTorch checkpoint"}},
		{"weights missing", add("\n[models.w]\narch = \"deit_tiny_patch16_224\"\ndata = \"cifar10\"\nweights = \"nope.pth\"\n"), nil, []string{"suite.toml:13", "models.w.weights"}},
		{"unknown arch", replace("arch = { img_size = 32, patch_size = 8, embed_dim = 32, depth = 1, num_heads = 2 }", `arch = "vit_giant_patch1_9999"`), nil, []string{"suite.toml:9", "models.m.arch"}},
		{"missing arch", replace("arch = { img_size = 32, patch_size = 8, embed_dim = 32, depth = 1, num_heads = 2 }\n", ""), nil, []string{"models.m.arch", "missing"}},
		{"syntax error", replace("iters = 3", "iters = = 3"), nil, []string{"suite.toml:6"}},
		{"unclosed table", add("\n[models.t\n"), nil, []string{"suite.toml:13", `(in "[models.t")`}},
		{"duplicate key", replace("iters = 3", "iters = 3\niters = 4"), nil, []string{"suite.toml:7", "iters"}},
		{"no suite table", strings.Replace(hostileBase, "[suite]\nname = \"hostile\"\n", "", 1), nil, []string{"suite"}},
		{"empty file", "\n", nil, []string{"suite"}},
		// Experiments.
		{"unknown model", add("\n[[experiment]]\nname = \"x\"\nmodel = \"ghost\"\n"), nil, []string{"suite.toml:15", "experiment[0].model", "ghost"}},
		{"unknown technique", exp(`{ technique = "magic" }`), nil, []string{"suite.toml:16", "magic"}},
		{"bad bits", exp(`{ technique = "quantize", weight_bits = 99 }`), nil, []string{"suite.toml:16", "weight_bits"}},
		{"bad prune amount", exp(`{ technique = "prune", kind = "heads", amount = 1.5 }`), nil, []string{"suite.toml:16", "amount"}},
		{"bad prune kind", exp(`{ technique = "prune", kind = "everything" }`), nil, []string{"suite.toml:16", "kind"}},
		{"unknown stage key", exp(`{ technique = "quantize", wieght_bits = 8 }`), nil, []string{"suite.toml:16", "wieght_bits"}},
		{"unknown teacher", exp(`{ technique = "distill", teacher = "ghost" }`), nil, []string{"suite.toml:16", "ghost"}},
		{"timed-only model fine-tuned", add(timed + "[[experiment]]\nname = \"e\"\nmodel = \"t\"\npipeline = [{ technique = \"prune\", kind = \"heads\", finetune_epochs = 0.5 }]\n"), nil,
			[]string{"suite.toml:20", "experiment[0].pipeline[0]", "timed_only and untrained"}},
		{"timed-only model as teacher", add(timed + "[[experiment]]\nname = \"e\"\nmodel = \"m\"\npipeline = [{ technique = \"distill\", teacher = \"t\", finetune_epochs = 0.5 }]\n"), nil,
			[]string{"suite.toml:20", "timed_only and untrained: it has nothing to teach"}},
		{"timed-only model trained", add(timed + "train = { epochs = 1 }\n"), nil, []string{"suite.toml:17", "models.t.train", "not trained"}},
		{"renamed lowrank level", exp(`{ technique = "lowrank", rank_ratio = 0.5 }`), nil, []string{"suite.toml:16", "rank_ratio", "params_kept"}},
		{"empty sweep", exp(`{ technique = "quantize", weight_bits = [] }`), nil, []string{"suite.toml:16", "weight_bits"}},
		{"sweep of bad values", exp(`{ technique = "quantize", weight_bits = [99, 98, 97, 96, 95, 94, 93, 92], act_bits = [8, 6, 4, 3, 2, 99, 98, 97, 96, 95], calibrator = ["minmax", "percentile", "omse", "nope"] }`), nil, []string{"suite.toml:16", "weight_bits"}},
		{"duplicate experiment", exp(`{ technique = "quantize" }`) + "\n[[experiment]]\nname = \"x\"\nmodel = \"m\"\n", nil, []string{"suite.toml:19", "experiment[1].name"}},
		{"suite-wide grid", add(sweep.String()), nil, []string{"suite.toml", "more than 2000 experiments", "--max-experiments"}},
		{"too many seeds", replace("batch_size = 100 }", "batch_size = 100 }\nseeds = [0, 0]"), nil, []string{"models.m.seeds"}},
		// Includes.
		{"include a device", replace("name = \"hostile\"", "name = \"hostile\"\ninclude = \"/dev/zero\""), nil, []string{"suite.toml:3", "suite.include", "not a regular file"}},
		{"include a folder", replace("name = \"hostile\"", "name = \"hostile\"\ninclude = \"/tmp\""), nil, []string{"suite.toml:3", "suite.include", "not a regular file"}},
		{"include a huge file", replace("name = \"hostile\"", fmt.Sprintf("name = \"hostile\"\ninclude = %q", big)), nil, []string{"suite.toml:3", "suite.include", "at most"}},
		{"include a missing file", replace("name = \"hostile\"", "name = \"hostile\"\ninclude = \"nope.toml\""), nil, []string{"suite.toml:3", "suite.include"}},
		{"include itself", replace("name = \"hostile\"", "name = \"hostile\"\ninclude = \"suite.toml\""), nil, []string{"suite.toml:3", "include cycle"}},
		// Command lines.
		{"threads -1", hostileBase, []string{"--threads", "-1"}, []string{"--threads -1"}},
		{"train workers -3", hostileBase, []string{"--train-workers", "-3"}, []string{"--train-workers -3"}},
		{"empty db", hostileBase, []string{"--db", ""}, []string{"--db is empty"}},
		{"missing data dir", hostileBase, []string{"--data-dir", "/nonexistent"}, []string{"--data-dir"}},
		{"bad device", hostileBase, []string{"--device", "tpu"}, []string{"--device"}},
		{"bad shard", hostileBase, []string{"--shard", "3/2"}, []string{"--shard"}},
		{"only matches nothing", hostileBase, []string{"--only", "zzz"}, []string{"--only"}},
		{"zero experiment limit", hostileBase, []string{"--max-experiments", "0"}, []string{"--max-experiments"}},
		{"unknown flag", hostileBase, []string{"--frobnicate"}, []string{"frobnicate"}},
		{"two suites", hostileBase, []string{"other.toml"}, []string{"want one suite file"}},
		{"suite is a folder", "", []string{"run", "/tmp"}, []string{"not a regular file"}},
		{"suite missing", "", []string{"run", "/nonexistent/s.toml"}, []string{"/nonexistent/s.toml"}},
	}
	if len(tests) < 40 {
		t.Fatalf("%d hostile cases, want at least 40", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			dbPath := filepath.Join(dir, "results.db")
			seedDB(t, dbPath)
			before := dbState(t, dbPath)
			args := tt.args
			if tt.suite != "" {
				p := filepath.Join(dir, "suite.toml")
				if err := os.WriteFile(p, []byte(tt.suite), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append([]string{"run", p, "--db", dbPath, "--report", filepath.Join(dir, "report")}, args...)
			} else {
				args = append(args, "--db", dbPath)
			}
			// Relative includes resolve against the suite's folder.
			var stdout, stderr bytes.Buffer
			err := Main(context.Background(), args, &stdout, &stderr)
			code := exitCode(err, &stderr)
			out := stdout.String() + stderr.String()
			if code != 2 {
				t.Fatalf("exit status %d, want 2 (bad input)\n%s", code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, firstLines(out, 8))
				}
			}
			if lines := strings.Count(out, "\n"); lines > 60 {
				t.Errorf("%d lines of output for one bad suite", lines)
			}
			if after := dbState(t, dbPath); after != before {
				t.Errorf("database changed:\n before %s\n after  %s", before, after)
			}
		})
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
