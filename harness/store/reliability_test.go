package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vitbench/vitbench/harness/metrics"
)

// The reliability tests re-execute the test binary as a child process that
// writes a database; TestMain sends such a child to its role.
const (
	childEnv   = "VITBENCH_STORE_CHILD" // role: write, loop or intx
	childDBEnv = "VITBENCH_STORE_DB"
	childNEnv  = "VITBENCH_STORE_N"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		if err := child(role, os.Getenv(childDBEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child is the body of a child process:
//   - write: one run of N experiments, then finish it;
//   - loop: saves experiments of 200 curve points until killed, printing
//     "saved I" after each;
//   - intx: begins a transaction, writes part of an experiment, prints
//     "in tx" and waits to be killed.
func child(role, path string) error {
	ctx := context.Background()
	db, err := Open(path)
	if err != nil {
		return err
	}
	defer db.Close()
	r := testRun()
	r.SuiteName = "child-" + role
	if err := db.BeginRun(ctx, r); err != nil {
		return err
	}
	switch role {
	case "write":
		n, err := strconv.Atoi(os.Getenv(childNEnv))
		if err != nil {
			return err
		}
		for i := range n {
			if err := db.SaveExperiment(ctx, testExperiment(r.ID, fmt.Sprint("e", i), 5)); err != nil {
				return err
			}
		}
		return db.FinishRun(ctx, r.ID, StatusOK)
	case "loop":
		for i := 0; ; i++ {
			e := testExperiment(r.ID, fmt.Sprint("e", i), 200)
			for j := range 50 {
				e.Layers = append(e.Layers, Layer{Name: fmt.Sprint("l", j), Kind: "linear", Params: int64(j)})
			}
			if err := db.SaveExperiment(ctx, e); err != nil {
				return err
			}
			// Rewrite an earlier one too: kills also land inside upserts.
			if i > 0 {
				e.Name = fmt.Sprint("e", i-1)
				if err := db.SaveExperiment(ctx, e); err != nil {
					return err
				}
			}
			fmt.Printf("saved %d\n", i)
		}
	case "intx":
		tx, err := db.wdb.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		var id int64
		if err := tx.QueryRow(`INSERT INTO experiments (run_id, name, group_name, model, dataset, baseline,
	families, pipeline, params, spec, hash, status, error, executed)
VALUES (?, 'half-written', '', '', '', '', '[]', '', '{}', '', 'H', 'ok', '', '') RETURNING id`, r.ID).Scan(&id); err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO metrics (experiment_id, name, seq, value, unit) VALUES (?, 'top1', 0, 1, '%')`, id); err != nil {
			return err
		}
		fmt.Println("in tx")
		time.Sleep(time.Minute)
		return fmt.Errorf("not killed")
	}
	return fmt.Errorf("unknown role %q", role)
}

// startChild starts a child process in role on the database at path.
func startChild(t *testing.T, role, path string, n int) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role, childDBEnv+"="+path, childNEnv+"="+strconv.Itoa(n))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("child %s stderr:\n%s", role, stderr.String())
		}
	})
	return cmd, bufio.NewScanner(out)
}

// checkIntegrity runs SQLite's integrity and foreign key checks.
func checkIntegrity(t *testing.T, db *DB) {
	t.Helper()
	var res string
	if err := db.rdb.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
		t.Errorf("integrity_check = %q, %v", res, err)
	}
	rows, err := db.rdb.Query(`PRAGMA foreign_key_check`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if rows.Next() {
		t.Error("foreign_key_check found dangling references")
	}
}

func TestConcurrentGoroutines(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "results.db")
	a := openAt(t, path)
	b := openAt(t, path) // a second handle: its own connections, like another process
	shared := beginTest(t, a)

	const workers, perWorker = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for w := range 2 * workers {
		db := a
		if w%2 == 1 {
			db = b
		}
		wg.Go(func() {
			r := testRun()
			if err := db.BeginRun(ctx, r); err != nil {
				errs <- err
				return
			}
			for i := range perWorker {
				// Into the worker's own run, into the shared run under a
				// unique name, and into the shared run under a name all
				// workers write.
				for _, e := range []*Experiment{
					testExperiment(r.ID, fmt.Sprint("e", i), 3),
					testExperiment(shared.ID, fmt.Sprintf("w%d/e%d", w, i), 3),
					testExperiment(shared.ID, fmt.Sprint("common", i), 3),
				} {
					if err := db.SaveExperiment(ctx, e); err != nil {
						errs <- err
						return
					}
				}
			}
			errs <- db.FinishRun(ctx, r.ID, StatusOK)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	exps := 2*workers*perWorker*2 + perWorker
	for _, tc := range []struct {
		query string
		want  int
	}{
		{`SELECT COUNT(*) FROM runs`, 2*workers + 1},
		{`SELECT COUNT(*) FROM runs WHERE status = 'ok'`, 2 * workers},
		{`SELECT COUNT(*) FROM experiments`, exps},
		{`SELECT COUNT(*) FROM metrics`, 3 * exps},
		{`SELECT COUNT(*) FROM curves`, 3 * exps},
		{`SELECT COUNT(*) FROM machines`, 1},
	} {
		if got := count(t, a, tc.query); got != tc.want {
			t.Errorf("%s = %d, want %d", tc.query, got, tc.want)
		}
	}
	checkIntegrity(t, a)
}

// TestConcurrentCreate starts processes that race to create, switch to
// WAL and migrate the same new file, round after round: SQLite fails one
// side of that race at once with SQLITE_BUSY, without its busy handler
// (each process holds a shared lock and wants an exclusive one), so Open
// must retry rather than fail (it did, about one CI run in ten).
func TestConcurrentCreate(t *testing.T) {
	const rounds, procs = 8, 4
	for round := range rounds {
		path := filepath.Join(t.TempDir(), fmt.Sprint("r", round), "results.db")
		var cmds []*exec.Cmd
		for range procs {
			cmd, _ := startChild(t, "write", path, 1)
			cmds = append(cmds, cmd)
		}
		for i, cmd := range cmds {
			if err := cmd.Wait(); err != nil {
				t.Fatalf("round %d, child %d: %v", round, i, err)
			}
		}
		db := openAt(t, path)
		if got := count(t, db, `SELECT COUNT(*) FROM runs WHERE status = 'ok'`); got != procs {
			t.Errorf("round %d: %d runs finished, want %d", round, got, procs)
		}
	}
}

func TestConcurrentProcesses(t *testing.T) {
	const procs, n = 3, 40
	// A fresh path: the children race to create the file and migrate it.
	path := filepath.Join(t.TempDir(), "new", "results.db")
	var cmds []*exec.Cmd
	for range procs {
		cmd, _ := startChild(t, "write", path, n)
		cmds = append(cmds, cmd)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
	}
	db := openAt(t, path)
	for _, tc := range []struct {
		query string
		want  int
	}{
		{`SELECT COUNT(*) FROM migrations`, len(migrations())},
		{`SELECT COUNT(*) FROM runs WHERE status = 'ok'`, procs},
		{`SELECT COUNT(*) FROM experiments`, procs * n},
		{`SELECT COUNT(*) FROM metrics`, 3 * procs * n},
		{`SELECT COUNT(*) FROM curves`, 5 * procs * n},
	} {
		if got := count(t, db, tc.query); got != tc.want {
			t.Errorf("%s = %d, want %d", tc.query, got, tc.want)
		}
	}
	checkIntegrity(t, db)
}

func TestKillDuringWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "results.db")
	// Each round kills a writer a little later into its transactions; each
	// next writer opens the file the killed one left.
	delays := []time.Duration{0, 3 * time.Millisecond, 7 * time.Millisecond, 13 * time.Millisecond}
	for round, delay := range delays {
		cmd, out := startChild(t, "loop", path, 0)
		for saved := 0; saved < 3; saved++ {
			if !out.Scan() {
				t.Fatalf("round %d: child stopped after %d saves", round, saved)
			}
		}
		time.Sleep(delay)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
	}

	db := openAt(t, path)
	checkIntegrity(t, db)
	runs, err := db.Runs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != len(delays) {
		t.Fatalf("after %d kills: %d runs", len(delays), len(runs))
	}
	for _, r := range runs {
		if r.Status != StatusInterrupted || r.Ended.IsZero() {
			t.Errorf("run %s: status %s, ended %v; want interrupted with an end", r.UUID, r.Status, r.Ended)
		}
		exps, err := db.Experiments(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(exps) < 3 {
			t.Errorf("run %s: %d experiments survived, want at least the 3 reported saved", r.UUID, len(exps))
		}
		for _, e := range exps {
			if len(e.Curves) != 200 || len(e.Layers) != 52 || len(e.Metrics) != 3 {
				t.Errorf("experiment %s half written: %d curve points, %d layers, %d metrics",
					e.Name, len(e.Curves), len(e.Layers), len(e.Metrics))
			}
		}
	}
	// The file takes new writes.
	r := beginTest(t, db)
	if err := db.SaveExperiment(ctx, testExperiment(r.ID, "after", 1)); err != nil {
		t.Fatal(err)
	}
}

func TestKillInsideTransaction(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "results.db")
	cmd, out := startChild(t, "intx", path, 0)
	if !out.Scan() || out.Text() != "in tx" {
		t.Fatalf("child did not reach its transaction: %q", out.Text())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	db := openAt(t, path)
	checkIntegrity(t, db)
	for _, tc := range []struct {
		query string
		want  int
	}{
		{`SELECT COUNT(*) FROM experiments`, 0},
		{`SELECT COUNT(*) FROM metrics`, 0},
		{`SELECT COUNT(*) FROM runs WHERE status = 'interrupted'`, 1},
	} {
		if got := count(t, db, tc.query); got != tc.want {
			t.Errorf("%s = %d, want %d", tc.query, got, tc.want)
		}
	}
	// The dead writer's lock is gone: a write does not wait for it.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r := beginTest(t, db)
	e := testExperiment(r.ID, "after", 1)
	e.Metrics = []metrics.Metric{metrics.New(metrics.Top1, 50)}
	if err := db.SaveExperiment(ctx, e); err != nil {
		t.Fatal(err)
	}
}
