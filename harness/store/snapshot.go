package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Snapshot is everything a report needs: runs with their machines, and the
// experiments of those runs with metrics, layers and curves. Each
// experiment's RunID is the ID of one of Runs.
type Snapshot struct {
	Runs        []Run        // oldest first
	Experiments []Experiment // grouped by run, in the order of Runs
}

// run returns the run with the given ID, or nil.
func (s *Snapshot) run(id int64) *Run {
	for i := range s.Runs {
		if s.Runs[i].ID == id {
			return &s.Runs[i]
		}
	}
	return nil
}

// Snapshot reads the whole database as one consistent state.
func (db *DB) Snapshot(ctx context.Context) (*Snapshot, error) {
	dead, err := db.reap(ctx)
	if err != nil {
		return nil, err
	}
	s := &Snapshot{}
	err = db.read(ctx, "snapshot", func(tx *sql.Tx) error {
		if s.Runs, err = loadRuns(ctx, tx); err != nil {
			return err
		}
		s.Experiments, err = loadExperiments(ctx, tx, `1 = 1`)
		return err
	})
	if err != nil {
		return nil, err
	}
	markDead(dead, s.Runs, s.Experiments)
	sortExperiments(s)
	return s, nil
}

// sortExperiments orders s.Experiments like s.Runs, keeping the order of
// each run's experiments.
func sortExperiments(s *Snapshot) {
	pos := make(map[int64]int, len(s.Runs))
	for i, r := range s.Runs {
		pos[r.ID] = i
	}
	slices.SortStableFunc(s.Experiments, func(a, b Experiment) int {
		return pos[a.RunID] - pos[b.RunID]
	})
}

// OpenSnapshots reads the databases at paths, read-only, and merges them
// (see merge). A missing file is an error wrapping fs.ErrNotExist.
func OpenSnapshots(paths ...string) (*Snapshot, error) {
	ctx := context.Background()
	snaps := make([]*Snapshot, 0, len(paths))
	for _, p := range paths {
		s, err := readSnapshot(ctx, p)
		if err != nil {
			return nil, err
		}
		snaps = append(snaps, s)
	}
	return merge(snaps...), nil
}

func readSnapshot(ctx context.Context, path string) (*Snapshot, error) {
	db, err := OpenReadOnly(path)
	if errors.Is(err, errOlderSchema) {
		return readMigratedCopy(ctx, path)
	}
	if err != nil {
		return nil, err
	}
	defer db.Close()
	s, err := db.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return s, nil
}

// merge combines snapshots, typically of the databases of several machines,
// into a new one. A run is identified by its UUID, so a run found in several
// snapshots (a database copied, or merged twice) appears once, and so does
// an experiment found under the same run and name. Of two copies the one
// that ended later is kept (one still running counts as not ended); on a tie
// the first given.
//
// Runs are ordered by start time and numbered 1, 2, ...; experiments follow
// their runs, are numbered the same way, and their RunID is their run's new
// ID. Experiments whose run is not in their snapshot are dropped. The
// inputs are not modified; the result shares no slices or maps with them.
func merge(snaps ...*Snapshot) *Snapshot {
	type expKey struct{ run, name string }
	var (
		runs   []Run
		runAt  = map[string]int{} // UUID -> index in runs
		exps   []Experiment
		expRun []string // run UUID of each of exps
		expAt  = map[expKey]int{}
	)
	for _, s := range snaps {
		if s == nil {
			continue
		}
		uuidOf := make(map[int64]string, len(s.Runs))
		for _, r := range s.Runs {
			uuidOf[r.ID] = r.UUID
			if i, ok := runAt[r.UUID]; ok {
				if laterEnd(runs[i].Ended, r.Ended) {
					runs[i] = cloneRun(r)
				}
				continue
			}
			runAt[r.UUID] = len(runs)
			runs = append(runs, cloneRun(r))
		}
		for _, e := range s.Experiments {
			uuid, ok := uuidOf[e.RunID]
			if !ok {
				continue
			}
			k := expKey{uuid, e.Name}
			if i, ok := expAt[k]; ok {
				if laterEnd(exps[i].Ended, e.Ended) {
					exps[i] = cloneExperiment(e)
				}
				continue
			}
			expAt[k] = len(exps)
			exps = append(exps, cloneExperiment(e))
			expRun = append(expRun, uuid)
		}
	}

	slices.SortStableFunc(runs, func(a, b Run) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return strings.Compare(a.UUID, b.UUID)
	})
	newID := make(map[string]int64, len(runs))
	for i := range runs {
		runs[i].ID = int64(i + 1)
		newID[runs[i].UUID] = runs[i].ID
	}
	for i := range exps {
		exps[i].RunID = newID[expRun[i]]
	}
	out := &Snapshot{Runs: runs, Experiments: exps}
	sortExperiments(out)
	for i := range out.Experiments {
		out.Experiments[i].ID = int64(i + 1)
	}
	return out
}

// laterEnd reports whether a copy that ended at cand is to replace one that
// ended at old; the zero time (not ended) is earliest.
func laterEnd(old, cand time.Time) bool {
	return cand.After(old)
}

func cloneRun(r Run) Run {
	r.Args = slices.Clone(r.Args)
	return r
}

func cloneExperiment(e Experiment) Experiment {
	e.Families = slices.Clone(e.Families)
	e.Params = maps.Clone(e.Params)
	e.Settings = slices.Clone(e.Settings)
	e.Metrics = slices.Clone(e.Metrics)
	e.Layers = slices.Clone(e.Layers)
	e.Curves = slices.Clone(e.Curves)
	return e
}

// readMigratedCopy reads a database written by an older vitbench without
// writing to it: SQLite copies it (VACUUM INTO, a consistent copy even
// while another process writes) into a private temporary file, which is
// migrated, read and removed. A database copied from another machine is
// read as it is, wherever it lies and whoever owns it.
func readMigratedCopy(ctx context.Context, path string) (*Snapshot, error) {
	dir, err := os.MkdirTemp("", "vitbench-snapshot-")
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	src := newDB(path)
	src.ReadOnly = true
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	conn, err := sql.Open("sqlite3", src.dsn(abs, "deferred", true))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	cp := filepath.Join(dir, "copy.db")
	_, err = conn.ExecContext(ctx, "VACUUM INTO ?", cp)
	conn.Close()
	if err != nil {
		return nil, fmt.Errorf("read %s: copy an older schema to migrate it: %w", path, err)
	}
	db, err := Open(cp)
	if err != nil {
		return nil, fmt.Errorf("read %s: migrate a copy: %w", path, err)
	}
	defer db.Close()
	s, err := db.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return s, nil
}
