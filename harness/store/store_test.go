package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vitbench/vitbench/harness/metrics"
)

// clock returns a Now function that starts at a fixed time and advances one
// second per call; safe for concurrent use.
func clock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

// openTest opens a fresh database in a temporary directory with a fake
// clock, and closes it at the end of the test.
func openTest(t *testing.T) *DB {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "results.db"))
}

func openAt(t *testing.T, path string) *DB {
	t.Helper()
	db := newDB(path)
	db.Now = clock()
	if err := db.open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func testMachine() Machine {
	return Machine{
		Hostname: "lab-1", CPU: "AMD EPYC 7B13", Cores: 2, MemoryBytes: 8 << 30,
		OS: "linux/amd64 Debian 12", Libtorch: "1.13.1", BLAS: "openblas 0.3.21",
		Gotch: "v0.9.1", Go: "go1.26.8",
	}
}

func testRun() *Run {
	return &Run{
		Machine:          testMachine(),
		Threads:          2,
		SgemmGFLOPS:      121.5,
		SIMD:             "sse4_2 avx avx2 fma f16c",
		Int8Engine:       "oneDNN 2.6.3 avx2",
		SuiteName:        "cifar10-vit",
		SuitePath:        "experiments/quick.toml",
		SuiteHash:        "abc123",
		SuiteDescription: "heads and int8 on CIFAR-10",
		GitCommit:        "0123456789abcdef",
		Args:             []string{"run", "experiments/quick.toml", "--threads", "2"},
		Device:           "cpu",
	}
}

func beginTest(t *testing.T, db *DB) *Run {
	t.Helper()
	r := testRun()
	if err := db.BeginRun(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

// testExperiment returns an experiment of run runID with a few metrics,
// two layers and a curve of n points.
func testExperiment(runID int64, name string, n int) *Experiment {
	e := &Experiment{
		RunID:            runID,
		Name:             name,
		Group:            strings.SplitN(name, "/", 2)[0],
		Model:            "vit_cifar",
		Dataset:          "cifar10",
		Baseline:         "baseline",
		Families:         []string{"prune", "quantize"},
		Pipeline:         "prune(heads=0.5) → quantize(w8a8)",
		Description:      "half the heads, then int8",
		ModelDescription: "ViT for CIFAR-10",
		Params:           map[string]string{"amount": "0.5", "weight_bits": "8"},
		SpecJSON:         `{"pipeline":[{"technique":"prune"},{"technique":"quantize"}]}`,
		Hash:             "hash-" + name,
		Status:           StatusOK,
		Executed:         "simulated",
		Started:          time.Date(2025, 3, 4, 6, 0, 0, 0, time.UTC),
		Ended:            time.Date(2025, 3, 4, 6, 1, 0, 500, time.UTC),
		Metrics: []metrics.Metric{
			metrics.New(metrics.Top1, 91.25),
			metrics.New(metrics.Params, 5717416),
			metrics.New(metrics.LatencyP50, 0.00321),
		},
		Layers: []Layer{
			{Name: "blocks.0.attn.qkv", Kind: "linear", Params: 111168, MACs: 7225920, Bits: 8},
			{Name: "head", Kind: "linear", Params: 1930, MACs: 1920},
		},
		Outcomes: []Outcome{
			{Metric: metrics.Top1, Images: "cifar10/test/all", N: 10, Bits: []byte{0xb5, 0x02}},
			{Metric: metrics.Top5, Images: "cifar10/test/all", N: 10, Bits: []byte{0xff, 0x03}},
		},
		Samples: []Sample{
			{Series: SeriesLatency, Round: 0, Value: 0.0031},
			{Series: SeriesLatency, Round: 1, Value: 0.0033},
			{Series: SeriesThroughput, Round: 0, Value: 912.5},
		},
	}
	for i := range n {
		e.Curves = append(e.Curves, Point{Series: "train_loss", Step: i, Value: 2.3 / float64(i+1)})
	}
	return e
}

func count(t *testing.T, db *DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.rdb.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestOpenSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b c?#%", "results.db")
	db := openAt(t, path)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file not created where asked: %v", err)
	}
	for _, tc := range []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "10000"},
	} {
		for name, pool := range map[string]*sql.DB{"writer": db.wdb, "reader": db.rdb} {
			var got string
			if err := pool.QueryRow("PRAGMA " + tc.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("%s PRAGMA %s = %q, want %q", name, tc.pragma, got, tc.want)
			}
		}
	}
}

func TestMigrationsApplyOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.db")
	for i := range 3 {
		db := openAt(t, path)
		if got, want := count(t, db, `SELECT COUNT(*) FROM migrations`), len(migrations()); got != want {
			t.Fatalf("open %d: %d migrations recorded, want %d", i+1, got, want)
		}
		if i == 0 {
			beginTest(t, db)
		}
		if got := count(t, db, `SELECT COUNT(*) FROM runs`); got != 1 {
			t.Fatalf("open %d: %d runs, want the 1 written before", i+1, got)
		}
		db.Close()
	}
	if len(migrations()) == 0 || migrations()[0] != "0001_initial.sql" {
		t.Errorf("migrations() = %v", migrations())
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.db")
	db := openAt(t, path)
	if _, err := db.wdb.Exec(`INSERT INTO migrations (name, applied) VALUES ('9999_future.sql', 'x')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path); !errors.Is(err, errNewerSchema) {
		t.Errorf("Open: err = %v, want errNewerSchema", err)
	}
	if _, err := OpenReadOnly(path); !errors.Is(err, errNewerSchema) {
		t.Errorf("OpenReadOnly: err = %v, want errNewerSchema", err)
	}
}

func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope", "results.db")
	_, err := OpenReadOnly(missing)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("OpenReadOnly(missing) err = %v, want ErrNotExist naming the path", err)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenReadOnly created %s", filepath.Dir(missing))
	}

	notDB := filepath.Join(dir, "suite.toml")
	os.WriteFile(notDB, []byte("[suite]\nname = \"x\"\n"), 0o644)
	if _, err := OpenReadOnly(notDB); err == nil {
		t.Error("OpenReadOnly(a TOML file) succeeded")
	}
	if _, err := Open(notDB); err == nil || !strings.Contains(err.Error(), notDB) {
		t.Errorf("Open(a TOML file) err = %v, want an error naming it", err)
	}

	path := filepath.Join(dir, "results.db")
	w := openAt(t, path)
	r := beginTest(t, w)
	if err := w.SaveExperiment(context.Background(), testExperiment(r.ID, "ptq/w8", 3)); err != nil {
		t.Fatal(err)
	}
	w.Close() // the last connection checkpoints and removes the -wal and -shm files

	ro, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	snap, err := ro.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Runs) != 1 || len(snap.Experiments) != 1 {
		t.Fatalf("read-only snapshot: %d runs, %d experiments, want 1 and 1", len(snap.Runs), len(snap.Experiments))
	}
	if err := ro.BeginRun(context.Background(), testRun()); !errors.Is(err, errReadOnly) {
		t.Errorf("BeginRun on a read-only database: err = %v, want errReadOnly", err)
	}
	if err := ro.PutArtifact(context.Background(), Artifact{Hash: "h"}); !errors.Is(err, errReadOnly) {
		t.Errorf("PutArtifact on a read-only database: err = %v, want errReadOnly", err)
	}
}

func TestFingerprint(t *testing.T) {
	base := testMachine()
	fp := Fingerprint(base)
	if len(fp) != 32 {
		t.Errorf("Fingerprint = %q, want 32 hex digits", fp)
	}
	// Fingerprints are stored: the same machine must keep its fingerprint
	// across versions (this value predates threads, engine, sgemm speed
	// and CUDA use moving from Machine to Run).
	if want := "7f655a922e9657031bf4ae958b4f01d5"; fp != want {
		t.Errorf("Fingerprint = %q, want %q as stored by earlier versions", fp, want)
	}
	for _, tc := range []struct {
		name string
		edit func(*Machine)
		same bool
	}{
		{"hostname", func(m *Machine) { m.Hostname = "lab-2" }, false},
		{"cpu", func(m *Machine) { m.CPU = "Intel Xeon" }, false},
		{"cores", func(m *Machine) { m.Cores = 4 }, false},
		{"memory", func(m *Machine) { m.MemoryBytes++ }, false},
		{"gpu", func(m *Machine) { m.GPU = "NVIDIA H100" }, false},
		{"os", func(m *Machine) { m.OS = "darwin/arm64" }, false},
		{"libtorch", func(m *Machine) { m.Libtorch = "2.1.0" }, false},
		{"blas", func(m *Machine) { m.BLAS = "reference" }, false},
		{"gotch", func(m *Machine) { m.Gotch = "v0.9.2" }, false},
		{"go", func(m *Machine) { m.Go = "go1.27" }, false},
		{"fields run together", func(m *Machine) { m.Hostname, m.CPU = "lab-1AMD", " EPYC 7B13" }, false},
	} {
		m := base
		tc.edit(&m)
		if got := Fingerprint(m) == fp; got != tc.same {
			t.Errorf("changing %s: same fingerprint = %v, want %v", tc.name, got, tc.same)
		}
	}
}

func TestRuns(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)

	r1 := beginTest(t, db)
	if r1.ID == 0 || len(r1.UUID) != 36 || r1.Started.IsZero() || r1.Status != StatusRunning ||
		r1.PID != os.Getpid() || r1.Host == "" {
		t.Fatalf("BeginRun filled %+v", r1)
	}
	r2 := testRun()
	r2.UUID = "fixed-uuid"
	r2.Threads = 1 // same machine, other setting
	r2.SgemmGFLOPS = 60
	r2.SIMD, r2.Int8Engine = "", "none" // flags not read; int8 models stayed simulated
	r2.Args = nil
	if err := db.BeginRun(ctx, r2); err != nil {
		t.Fatal(err)
	}
	r3 := testRun()
	r3.Machine.CPU = "Intel Xeon"
	if err := db.BeginRun(ctx, r3); err != nil {
		t.Fatal(err)
	}
	dup := testRun()
	dup.UUID = "fixed-uuid"
	if err := db.BeginRun(ctx, dup); err == nil || !strings.Contains(err.Error(), "begin run") {
		t.Errorf("BeginRun with a used UUID: err = %v", err)
	}
	if got := count(t, db, `SELECT COUNT(*) FROM machines`); got != 2 {
		t.Errorf("%d machines recorded, want 2", got)
	}

	if err := db.FinishRun(ctx, r1.ID, StatusOK); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishRun(ctx, r3.ID, StatusFailed); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id     int64
		status string
		want   error
	}{
		{r2.ID, StatusRunning, nil},
		{r2.ID, "done", nil},
		{9999, StatusOK, errNotFound},
	} {
		err := db.FinishRun(ctx, tc.id, tc.status)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("FinishRun(%d, %q) err = %v, want an error (%v)", tc.id, tc.status, err, tc.want)
		}
	}

	runs, err := db.Runs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 {
		t.Fatalf("Runs returned %d runs, want 3", len(runs))
	}
	want1 := *r1
	want1.Status = StatusOK
	if runs[0].Ended.IsZero() {
		t.Errorf("finished run has no end time")
	}
	want1.Ended = runs[0].Ended
	if !reflect.DeepEqual(runs[0], want1) {
		t.Errorf("run 1 read back\n got %+v\nwant %+v", runs[0], want1)
	}
	if !reflect.DeepEqual(runs[1], *r2) {
		t.Errorf("run 2 read back\n got %+v\nwant %+v", runs[1], *r2)
	}
	// Spelled out as well as compared: the SIMD flags and int8 engine are
	// what speed figures are read against.
	for i, want := range []struct{ simd, int8 string }{
		{"sse4_2 avx avx2 fma f16c", "oneDNN 2.6.3 avx2"},
		{"", "none"},
	} {
		if runs[i].SIMD != want.simd || runs[i].Int8Engine != want.int8 {
			t.Errorf("run %d read back SIMD %q, Int8Engine %q; want %q, %q",
				i+1, runs[i].SIMD, runs[i].Int8Engine, want.simd, want.int8)
		}
	}
	if runs[2].Machine.CPU != "Intel Xeon" || runs[2].Status != StatusFailed {
		t.Errorf("run 3 read back %+v", runs[2])
	}
}

// equalExperiment compares experiments, NaN equal to NaN.
func equalExperiment(a, b Experiment) bool {
	if len(a.Metrics) != len(b.Metrics) || len(a.Curves) != len(b.Curves) {
		return false
	}
	a.Metrics, b.Metrics = nanFree(a.Metrics), nanFree(b.Metrics)
	ac, bc := append([]Point(nil), a.Curves...), append([]Point(nil), b.Curves...)
	for i := range ac {
		if math.IsNaN(ac[i].Value) && math.IsNaN(bc[i].Value) {
			ac[i].Value, bc[i].Value = 0, 0
		}
	}
	a.Curves, b.Curves = ac, bc
	return reflect.DeepEqual(a, b)
}

func nanFree(ms []metrics.Metric) []metrics.Metric {
	out := append([]metrics.Metric(nil), ms...)
	for i := range out {
		if math.IsNaN(out[i].Value) {
			out[i].Value = -12345
		}
	}
	return out
}

func TestSaveExperimentRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	r := beginTest(t, db)

	full := testExperiment(r.ID, "ptq/w8a8-minmax", 5)
	full.Metrics = append(full.Metrics,
		metrics.Metric{Name: "custom_nan", Value: math.NaN(), Unit: "x"},
		metrics.Metric{Name: "custom_inf", Value: math.Inf(1), Unit: "x"},
	)
	full.Curves[2].Value = math.NaN()
	failed := &Experiment{RunID: r.ID, Name: "prune/heads-0.9", Status: StatusFailed, Error: "loss is NaN at step 3"}
	for _, e := range []*Experiment{full, failed} {
		if err := db.SaveExperiment(ctx, e); err != nil {
			t.Fatal(err)
		}
		if e.ID == 0 {
			t.Errorf("SaveExperiment(%q) did not set ID", e.Name)
		}
	}
	got, err := db.Experiments(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("Experiments returned %d, want 2", len(got))
	}
	for i, want := range []*Experiment{full, failed} {
		if !equalExperiment(got[i], *want) {
			t.Errorf("experiment %d read back\n got %+v\nwant %+v", i, got[i], *want)
		}
	}
	if other, err := db.Experiments(ctx, r.ID+100); err != nil || len(other) != 0 {
		t.Errorf("Experiments(unknown run) = %v, %v; want none", other, err)
	}
}

func TestSaveExperimentUpsert(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	r := beginTest(t, db)

	e := testExperiment(r.ID, "ptq/w4a4", 10)
	e.Status, e.Metrics, e.Ended = StatusRunning, nil, time.Time{}
	if err := db.SaveExperiment(ctx, e); err != nil {
		t.Fatal(err)
	}
	firstID := e.ID
	e2 := testExperiment(r.ID, "ptq/w4a4", 4)
	e2.Metrics = []metrics.Metric{metrics.New(metrics.Top1, 80)}
	e2.Layers = e2.Layers[:1]
	if err := db.SaveExperiment(ctx, e2); err != nil {
		t.Fatal(err)
	}
	if e2.ID != firstID {
		t.Errorf("upsert changed the ID from %d to %d", firstID, e2.ID)
	}
	for _, tc := range []struct {
		table string
		want  int
	}{
		{"experiments", 1},
		{"metrics", 1},
		{"layers", 1},
		{"curves", 4},
	} {
		if got := count(t, db, `SELECT COUNT(*) FROM `+tc.table); got != tc.want {
			t.Errorf("after upsert: %d rows in %s, want %d", got, tc.table, tc.want)
		}
	}
	got, err := db.Experiments(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !equalExperiment(got[0], *e2) {
		t.Errorf("after upsert read back %+v, want %+v", got, *e2)
	}

	// The same name in another run is another experiment.
	r2 := beginTest(t, db)
	if err := db.SaveExperiment(ctx, testExperiment(r2.ID, "ptq/w4a4", 1)); err != nil {
		t.Fatal(err)
	}
	if got := count(t, db, `SELECT COUNT(*) FROM experiments`); got != 2 {
		t.Errorf("%d experiments, want 2", got)
	}
}

func TestSaveExperimentInvalid(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	r := beginTest(t, db)
	for _, tc := range []struct {
		name string
		edit func(*Experiment)
		want string
	}{
		{"no run", func(e *Experiment) { e.RunID = 0 }, "no run ID"},
		{"unknown run", func(e *Experiment) { e.RunID = 999 }, "FOREIGN KEY"},
		{"no name", func(e *Experiment) { e.Name = "" }, "no name"},
		{"bad status", func(e *Experiment) { e.Status = "done" }, "invalid status"},
		{"bad spec", func(e *Experiment) { e.SpecJSON = "{" }, "not valid JSON"},
		{"metric twice", func(e *Experiment) { e.Metrics = append(e.Metrics, metrics.New(metrics.Top1, 1)) }, "given twice"},
		{"metric no name", func(e *Experiment) { e.Metrics = append(e.Metrics, metrics.Metric{Value: 1}) }, "no name"},
	} {
		e := testExperiment(r.ID, "x", 3)
		tc.edit(e)
		err := db.SaveExperiment(ctx, e)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	for _, table := range []string{"experiments", "metrics", "layers", "curves"} {
		if got := count(t, db, `SELECT COUNT(*) FROM `+table); got != 0 {
			t.Errorf("failed saves left %d rows in %s", got, table)
		}
	}
}

func TestCompletedExperiment(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	fp := Fingerprint(testMachine())

	save := func(r *Run, name, hash, status string, ended time.Time) *Experiment {
		t.Helper()
		e := testExperiment(r.ID, name, 2)
		e.Hash, e.Status, e.Ended = hash, status, ended
		if err := db.SaveExperiment(ctx, e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	day := func(d int) time.Time { return time.Date(2025, 1, d, 0, 0, 0, 0, time.UTC) }

	old := beginTest(t, db)
	newer := beginTest(t, db)
	elsewhere := testRun()
	elsewhere.Machine.Hostname = "gpu-box"
	if err := db.BeginRun(ctx, elsewhere); err != nil {
		t.Fatal(err)
	}
	save(old, "a", "H1", StatusOK, day(1))
	want := save(newer, "a", "H1", StatusOK, day(2))
	save(newer, "b", "H1", StatusFailed, day(3))
	save(elsewhere, "a", "H1", StatusOK, day(4))
	save(newer, "c", "H2", StatusFailed, day(1))
	save(elsewhere, "d", "H3", StatusOK, day(1))
	save(newer, "e", "", StatusOK, day(1))

	for _, tc := range []struct {
		name, fp, hash string
		want           *Experiment
	}{
		{"newest ok of this machine", fp, "H1", want},
		{"only failed", fp, "H2", nil},
		{"only on another machine", fp, "H3", nil},
		{"other machine", Fingerprint(elsewhere.Machine), "H3", &Experiment{Name: "d"}},
		{"unknown hash", fp, "H9", nil},
		{"empty hash", fp, "", nil},
		{"unknown machine", "nope", "H1", nil},
	} {
		got, err := db.completedExperiment(ctx, tc.fp, tc.hash)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		switch {
		case tc.want == nil && got != nil:
			t.Errorf("%s: got experiment %q of run %d, want none", tc.name, got.Name, got.RunID)
		case tc.want != nil && got == nil:
			t.Errorf("%s: got none, want %q", tc.name, tc.want.Name)
		case tc.want != nil && tc.want.ID != 0 && !equalExperiment(*got, *tc.want):
			t.Errorf("%s: got %+v\nwant %+v", tc.name, *got, *tc.want)
		case tc.want != nil && got.Name != tc.want.Name:
			t.Errorf("%s: got %q, want %q", tc.name, got.Name, tc.want.Name)
		}
	}
}

func TestArtifacts(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	a := Artifact{Hash: "h1", Kind: "baseline", Path: "/cache/h1.pt", SHA256: "aa", Bytes: 100}
	if err := db.PutArtifact(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := db.artifact(ctx, "h1")
	if err != nil || got == nil {
		t.Fatalf("artifact(h1) = %v, %v", got, err)
	}
	if got.Created.IsZero() {
		t.Error("PutArtifact did not set Created")
	}
	a.Created = got.Created
	if *got != a {
		t.Errorf("artifact(h1) = %+v, want %+v", *got, a)
	}
	a.SHA256, a.Bytes = "bb", 200
	if err := db.PutArtifact(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.artifact(ctx, "h1"); got == nil || got.SHA256 != "bb" || got.Bytes != 200 {
		t.Errorf("after replace: %+v", got)
	}
	if err := db.PutArtifact(ctx, Artifact{Hash: "h2", Kind: "stage"}); err != nil {
		t.Fatal(err)
	}
	if all, err := db.artifacts(ctx); err != nil || len(all) != 2 {
		t.Errorf("artifacts() = %d, %v; want 2", len(all), err)
	}
	if err := db.PutArtifact(ctx, Artifact{}); err == nil {
		t.Error("PutArtifact without a hash succeeded")
	}
	for _, h := range []string{"h1", "h1", "missing"} {
		if err := db.deleteArtifact(ctx, h); err != nil {
			t.Errorf("deleteArtifact(%s): %v", h, err)
		}
	}
	if got, err := db.artifact(ctx, "h1"); got != nil || err != nil {
		t.Errorf("after delete: %v, %v; want nil, nil", got, err)
	}
}

// deadPID returns the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestInterruptedRuns(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "results.db")
	db := openAt(t, path)
	gone := deadPID(t)
	self := os.Getpid()

	cases := []struct {
		name  string
		pid   int
		start int64 // -1: the true start time
		host  string
		want  string
	}{
		{"dead process, this host", gone, 0, db.host, StatusInterrupted},
		{"dead process, other host", gone, 0, "elsewhere", StatusRunning},
		{"live process", self, -1, db.host, StatusRunning},
		{"live, start unknown", self, 0, db.host, StatusRunning},
		{"pid reused", self, 1, db.host, StatusInterrupted},
	}
	ids := map[string]int64{}
	for _, tc := range cases {
		r := beginTest(t, db)
		ids[tc.name] = r.ID
		e := testExperiment(r.ID, "a", 1)
		e.Status, e.Ended = StatusRunning, time.Time{}
		if err := db.SaveExperiment(ctx, e); err != nil {
			t.Fatal(err)
		}
		start := tc.start
		if start == -1 {
			start = int64(processStart(self))
		}
		if _, err := db.wdb.Exec(`UPDATE runs SET pid = ?, pid_start = ?, host = ? WHERE id = ?`,
			tc.pid, start, tc.host, r.ID); err != nil {
			t.Fatal(err)
		}
	}
	check := func(label string, runs []Run, exps []Experiment) {
		t.Helper()
		status := map[int64]string{}
		for _, r := range runs {
			status[r.ID] = r.Status
		}
		for _, e := range exps {
			if e.Status != status[e.RunID] {
				t.Errorf("%s: experiment of run %d is %s, its run %s", label, e.RunID, e.Status, status[e.RunID])
			}
		}
		for _, tc := range cases {
			if got := status[ids[tc.name]]; got != tc.want {
				t.Errorf("%s: %s: status %q, want %q", label, tc.name, got, tc.want)
			}
		}
	}

	// Read-only: reported, not recorded.
	ro, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := ro.Snapshot(ctx)
	ro.Close()
	if err != nil {
		t.Fatal(err)
	}
	check("read-only snapshot", snap.Runs, snap.Experiments)
	if got := count(t, db, `SELECT COUNT(*) FROM runs WHERE status = 'running'`); got != len(cases) {
		t.Errorf("read-only open recorded a change: %d runs running, want %d", got, len(cases))
	}

	// Read-write: recorded on open.
	db.Close()
	db = openAt(t, path)
	if got := count(t, db, `SELECT COUNT(*) FROM runs WHERE status = 'interrupted' AND ended IS NOT NULL`); got != 2 {
		t.Errorf("open recorded %d interrupted runs with an end, want 2", got)
	}
	snap, err = db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check("snapshot after open", snap.Runs, snap.Experiments)
	runs, err := db.Runs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check("Runs", runs, nil)
	r := snap.run(ids["dead process, this host"])
	if want := time.Date(2025, 3, 4, 6, 0, 0, 0, time.UTC); !r.Ended.Equal(want) {
		t.Errorf("interrupted run ended %v, want its last sign of life %v", r.Ended, want)
	}
}

func TestFinishRunInterruptsRunningExperiments(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	r := beginTest(t, db)
	for i, st := range []string{StatusOK, StatusRunning, StatusFailed} {
		e := testExperiment(r.ID, fmt.Sprint("e", i), 1)
		e.Status = st
		if err := db.SaveExperiment(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.FinishRun(ctx, r.ID, StatusInterrupted); err != nil {
		t.Fatal(err)
	}
	exps, err := db.Experiments(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range exps {
		got = append(got, e.Status)
	}
	if want := []string{StatusOK, StatusInterrupted, StatusFailed}; !reflect.DeepEqual(got, want) {
		t.Errorf("statuses after FinishRun = %v, want %v", got, want)
	}
}

// engineSplit is measure.EngineSplit, which the store only stores.
const engineSplit = "split"

// TestRunEngine checks that a run's engine is stored and read back, and
// that a database from before the engine column reads its runs as eager
// once opened read-write (and is refused read-only until then).
func TestRunEngine(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "results.db")
	db := openAt(t, path)
	old := testRun()
	old.Engine = engineSplit
	if err := db.BeginRun(ctx, old); err != nil {
		t.Fatal(err)
	}
	// Back to the schema of 0001: the run forgets its engine.
	for _, q := range []string{
		`ALTER TABLE runs DROP COLUMN engine`,
		`DELETE FROM migrations WHERE name = '0002_run_engine.sql'`,
	} {
		if _, err := db.wdb.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	if _, err := OpenReadOnly(path); !errors.Is(err, errOlderSchema) {
		t.Errorf("OpenReadOnly before the migration: err = %v, want errOlderSchema", err)
	}

	db = openAt(t, path)
	plain, split := testRun(), testRun()
	split.Engine = engineSplit
	for _, r := range []*Run{plain, split} {
		if err := db.BeginRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	runs, err := db.Runs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// In the order stored: the test clock restarts with each open, so
	// the start times do not say it.
	slices.SortFunc(runs, func(a, b Run) int { return cmp.Compare(a.ID, b.ID) })
	var got []string
	for _, r := range runs {
		got = append(got, r.Engine)
	}
	if want := []string{eagerEngine, eagerEngine, engineSplit}; !slices.Equal(got, want) {
		t.Errorf("engines read back %q, want %q (a run from before the column, an unset one, a split one)", got, want)
	}
}
