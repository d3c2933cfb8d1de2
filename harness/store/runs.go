package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"
)

// Fingerprint identifies a machine: a hash of the fields that tell one
// computer, or one software set-up on it, from another (hostname, CPU,
// cores, memory, GPU, OS, libtorch, BLAS, gotch, Go): every field of
// Machine. Threads, engines, sgemm speed, SIMD flags and CUDA use are
// settings or measurements of a run (Run), not part of it.
//
// Note: each field is length-prefixed before hashing, so no two different
// machines can share the hashed text.
func Fingerprint(m Machine) string {
	h := sha256.New()
	for _, f := range []string{
		m.Hostname, m.CPU, strconv.Itoa(m.Cores), strconv.FormatInt(m.MemoryBytes, 10),
		m.GPU, m.OS, m.Libtorch, m.BLAS, m.Gotch, m.Go,
	} {
		fmt.Fprintf(h, "%d:%s\n", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// eagerEngine is the engine of a run that names none: measure.EngineEager,
// the default of the runs.engine column (migration 0002). Runs stored
// before engines were recorded timed eagerly.
const eagerEngine = "eager"

// TimedEngine is how r's timed CPU passes used their threads: r.Engine, or
// eager (measure.EngineEager) when that is empty.
func (r *Run) TimedEngine() string {
	if r.Engine == "" {
		return eagerEngine
	}
	return r.Engine
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// BeginRun records the start of a run and fills in its ID, its UUID (when
// empty), Started (when zero), Status (running), PID and Host. Its machine
// is recorded once per fingerprint.
func (db *DB) BeginRun(ctx context.Context, r *Run) error {
	if r.UUID == "" {
		r.UUID = newUUID()
	}
	if r.Started.IsZero() {
		r.Started = db.now()
	}
	args, err := json.Marshal(nonNil(r.Args))
	if err != nil {
		return fmt.Errorf("begin run: encode args: %w", err)
	}
	pid := os.Getpid()
	var id int64
	err = db.write(ctx, "begin run", func(tx *sql.Tx) error {
		mid, err := db.machineID(ctx, tx, r.Machine)
		if err != nil {
			return err
		}
		engine := r.TimedEngine()
		r.Engine = engine
		err = tx.QueryRowContext(ctx, `INSERT INTO runs (
	uuid, machine_id, threads, engine, sgemm_gflops, simd, int8_engine, cuda, suite_name, suite_path, suite_hash,
	git_commit, args, device, started, ended, status, pid, pid_start, host, suite_description
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?) RETURNING id`,
			r.UUID, mid, r.Threads, engine, nullFloat(r.SgemmGFLOPS), r.SIMD, r.Int8Engine, r.CUDA,
			r.SuiteName, r.SuitePath, r.SuiteHash,
			r.GitCommit, string(args), r.Device, formatTime(r.Started), StatusRunning,
			pid, int64(processStart(pid)), db.host, r.SuiteDescription,
		).Scan(&id)
		if err != nil {
			return fmt.Errorf("insert run: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.ID, r.Status, r.Ended, r.PID, r.Host = id, StatusRunning, time.Time{}, pid, db.host
	return nil
}

// machineID returns the id of m's row in machines, inserting it when new.
func (db *DB) machineID(ctx context.Context, tx *sql.Tx, m Machine) (int64, error) {
	fp := Fingerprint(m)
	_, err := tx.ExecContext(ctx, `INSERT INTO machines (
	fingerprint, hostname, cpu, cores, memory_bytes, gpu, os, libtorch, blas, gotch, go, created
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (fingerprint) DO NOTHING`,
		fp, m.Hostname, m.CPU, m.Cores, m.MemoryBytes, m.GPU, m.OS, m.Libtorch, m.BLAS, m.Gotch, m.Go,
		formatTime(db.now()))
	if err != nil {
		return 0, fmt.Errorf("insert machine: %w", err)
	}
	var id int64
	if err := tx.QueryRowContext(ctx, `SELECT id FROM machines WHERE fingerprint = ?`, fp).Scan(&id); err != nil {
		return 0, fmt.Errorf("find machine: %w", err)
	}
	return id, nil
}

// FinishRun records the end of run runID with status StatusOK, StatusFailed
// or StatusInterrupted. Experiments of the run still running are recorded as
// interrupted.
func (db *DB) FinishRun(ctx context.Context, runID int64, status string) error {
	switch status {
	case StatusOK, StatusFailed, StatusInterrupted:
	default:
		return fmt.Errorf("finish run %d: invalid status %q", runID, status)
	}
	ended := formatTime(db.now())
	return db.write(ctx, fmt.Sprintf("finish run %d", runID), func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE runs SET status = ?, ended = ? WHERE id = ?`, status, ended, runID)
		if err != nil {
			return fmt.Errorf("update run: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("update run: %w", err)
		} else if n == 0 {
			return errNotFound
		}
		if _, err := tx.ExecContext(ctx, `UPDATE experiments SET status = ? WHERE run_id = ? AND status = ?`,
			StatusInterrupted, runID, StatusRunning); err != nil {
			return fmt.Errorf("update experiments: %w", err)
		}
		return nil
	})
}

// Runs returns every run, oldest first, with its machine.
func (db *DB) Runs(ctx context.Context) ([]Run, error) {
	dead, err := db.reap(ctx)
	if err != nil {
		return nil, err
	}
	var runs []Run
	err = db.read(ctx, "list runs", func(tx *sql.Tx) error {
		runs, err = loadRuns(ctx, tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	markDead(dead, runs, nil)
	return runs, nil
}

const runColumns = `r.id, r.uuid, r.threads, r.engine, r.sgemm_gflops, r.simd, r.int8_engine, r.cuda,
	r.suite_name, r.suite_path, r.suite_hash, r.git_commit, r.args, r.device, r.started, r.ended, r.status, r.pid, r.host, r.suite_description,
	m.hostname, m.cpu, m.cores, m.memory_bytes, m.gpu, m.os, m.libtorch, m.blas, m.gotch, m.go`

func loadRuns(ctx context.Context, tx *sql.Tx) ([]Run, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+runColumns+`
FROM runs r JOIN machines m ON m.id = r.machine_id
ORDER BY r.started, r.id`)
	if err != nil {
		return nil, fmt.Errorf("query runs: %w", err)
	}
	defer rows.Close()
	var runs []Run
	for rows.Next() {
		var (
			r              Run
			m              = &r.Machine
			sgemm          sql.NullFloat64
			args           string
			started, ended sql.NullString
		)
		if err := rows.Scan(&r.ID, &r.UUID, &r.Threads, &r.Engine, &sgemm, &r.SIMD, &r.Int8Engine, &r.CUDA,
			&r.SuiteName, &r.SuitePath, &r.SuiteHash, &r.GitCommit, &args, &r.Device, &started, &ended, &r.Status, &r.PID, &r.Host, &r.SuiteDescription,
			&m.Hostname, &m.CPU, &m.Cores, &m.MemoryBytes, &m.GPU, &m.OS, &m.Libtorch, &m.BLAS, &m.Gotch, &m.Go,
		); err != nil {
			return nil, fmt.Errorf("scan run: %w", err)
		}
		r.SgemmGFLOPS = floatOrNaN(sgemm)
		if err := json.Unmarshal([]byte(args), &r.Args); err != nil {
			return nil, fmt.Errorf("run %s: decode args: %w", r.UUID, err)
		}
		if len(r.Args) == 0 {
			r.Args = nil
		}
		if r.Started, err = parseTime(started); err != nil {
			return nil, fmt.Errorf("run %s: %w", r.UUID, err)
		}
		if r.Ended, err = parseTime(ended); err != nil {
			return nil, fmt.Errorf("run %s: %w", r.UUID, err)
		}
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query runs: %w", err)
	}
	return runs, nil
}

// reap finds the runs of this host still recorded as running whose process
// no longer exists, and returns their IDs. Unless the database is read-only,
// it records them as interrupted, with the experiments they left running;
// such a run ends at its last sign of life (its latest experiment time).
func (db *DB) reap(ctx context.Context) (map[int64]bool, error) {
	if db.host == "" || db.rdb == nil {
		return nil, nil
	}
	type cand struct {
		id    int64
		pid   int
		start int64
	}
	var cands []cand
	err := db.read(ctx, "find interrupted runs", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, pid, pid_start FROM runs WHERE status = ? AND host = ?`,
			StatusRunning, db.host)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c cand
			if err := rows.Scan(&c.id, &c.pid, &c.start); err != nil {
				return err
			}
			cands = append(cands, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	dead := map[int64]bool{}
	for _, c := range cands {
		if !processAlive(c.pid, uint64(c.start)) {
			dead[c.id] = true
		}
	}
	if len(dead) == 0 || db.wdb == nil {
		return dead, nil
	}
	err = db.write(ctx, "mark interrupted runs", func(tx *sql.Tx) error {
		for _, c := range cands {
			if !dead[c.id] {
				continue
			}
			// The pid condition keeps a run that was meanwhile resumed, or
			// finished, by a live process as it is.
			if _, err := tx.ExecContext(ctx, `UPDATE runs SET status = ?,
	ended = COALESCE((SELECT MAX(COALESCE(e.ended, e.started)) FROM experiments e WHERE e.run_id = runs.id), runs.started)
WHERE id = ? AND status = ? AND pid = ? AND host = ?`,
				StatusInterrupted, c.id, StatusRunning, c.pid, db.host); err != nil {
				return fmt.Errorf("update run: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE experiments SET status = ? WHERE run_id = ? AND status = ?`,
				StatusInterrupted, c.id, StatusRunning); err != nil {
				return fmt.Errorf("update experiments: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return dead, nil
}

// markDead reports the runs in dead, and their running experiments, as
// interrupted. It matters for read-only databases, where reap records
// nothing.
func markDead(dead map[int64]bool, runs []Run, exps []Experiment) {
	if len(dead) == 0 {
		return
	}
	for i := range runs {
		if dead[runs[i].ID] && runs[i].Status == StatusRunning {
			runs[i].Status = StatusInterrupted
		}
	}
	for i := range exps {
		if dead[exps[i].RunID] && exps[i].Status == StatusRunning {
			exps[i].Status = StatusInterrupted
		}
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
