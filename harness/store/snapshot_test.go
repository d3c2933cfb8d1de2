package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// machineDB writes a database of one machine: runs runs of n experiments
// each, named "<host>/r<i>/e<j>", and returns its path.
func machineDB(t *testing.T, host string, start time.Time, runs, n int) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), host+".db")
	db := newDB(path)
	db.Now = func() time.Time { start = start.Add(time.Minute); return start }
	if err := db.open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range runs {
		r := testRun()
		r.Machine.Hostname = host
		if err := db.BeginRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		for j := range n {
			if err := db.SaveExperiment(ctx, testExperiment(r.ID, fmt.Sprintf("%s/r%d/e%d", host, i, j), 2)); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.FinishRun(ctx, r.ID, StatusOK); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// owners maps each experiment's name to its run's UUID.
func owners(t *testing.T, s *Snapshot) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, e := range s.Experiments {
		r := s.run(e.RunID)
		if r == nil {
			t.Fatalf("experiment %q points at run %d, not in the snapshot", e.Name, e.RunID)
		}
		m[e.Name] = r.UUID
	}
	return m
}

func TestMerge(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// Interleaved start times, so merged runs alternate between machines,
	// and the same IDs in both databases.
	laptop := machineDB(t, "laptop", t0, 2, 3)
	server := machineDB(t, "server", t0.Add(30*time.Second), 3, 2)

	var want = map[string]string{}
	var snaps []*Snapshot
	for _, p := range []string{laptop, server} {
		s, err := OpenSnapshots(p)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range owners(t, s) {
			want[k] = v
		}
		snaps = append(snaps, s)
	}
	before := fmt.Sprintf("%+v", snaps)

	for _, tc := range []struct {
		name  string
		snaps []*Snapshot
	}{
		{"two machines", snaps},
		{"reversed", []*Snapshot{snaps[1], snaps[0]}},
		{"one given twice", []*Snapshot{snaps[0], snaps[1], snaps[0]}},
		{"with nil", []*Snapshot{nil, snaps[0], snaps[1]}},
	} {
		m := merge(tc.snaps...)
		if len(m.Runs) != 5 || len(m.Experiments) != 12 {
			t.Errorf("%s: %d runs, %d experiments; want 5 and 12", tc.name, len(m.Runs), len(m.Experiments))
			continue
		}
		if got := owners(t, m); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: experiments attached to the wrong runs:\n got %v\nwant %v", tc.name, got, want)
		}
		for i, r := range m.Runs {
			if r.ID != int64(i+1) {
				t.Errorf("%s: run %d has ID %d", tc.name, i, r.ID)
			}
			if i > 0 && r.Started.Before(m.Runs[i-1].Started) {
				t.Errorf("%s: runs not in start order", tc.name)
			}
		}
		var hosts []string
		for _, r := range m.Runs {
			hosts = append(hosts, r.Machine.Hostname)
		}
		if want := []string{"laptop", "server", "laptop", "server", "server"}; !reflect.DeepEqual(hosts, want) {
			t.Errorf("%s: run hosts in order %v, want %v", tc.name, hosts, want)
		}
		last := int64(0)
		for i, e := range m.Experiments {
			if e.ID != int64(i+1) {
				t.Errorf("%s: experiment %d has ID %d", tc.name, i, e.ID)
			}
			if e.RunID < last {
				t.Errorf("%s: experiments not grouped in run order", tc.name)
			}
			last = e.RunID
		}
	}
	if after := fmt.Sprintf("%+v", snaps); after != before {
		t.Error("merge modified its inputs")
	}

	both, err := OpenSnapshots(laptop, server)
	if err != nil {
		t.Fatal(err)
	}
	if len(both.Runs) != 5 || !reflect.DeepEqual(owners(t, both), want) {
		t.Errorf("OpenSnapshots(laptop, server): %d runs, owners %v", len(both.Runs), owners(t, both))
	}
	if _, err := OpenSnapshots(laptop, filepath.Join(t.TempDir(), "missing.db")); err == nil {
		t.Error("OpenSnapshots with a missing file succeeded")
	}
}

func TestMergeKeepsLaterCopy(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	running := &Snapshot{
		Runs:        []Run{{ID: 1, UUID: "u", Started: t0, Status: StatusRunning}},
		Experiments: []Experiment{{ID: 1, RunID: 1, Name: "a", Status: StatusRunning}},
	}
	done := &Snapshot{
		Runs: []Run{{ID: 4, UUID: "u", Started: t0, Ended: t0.Add(time.Hour), Status: StatusOK}},
		Experiments: []Experiment{
			{ID: 8, RunID: 4, Name: "a", Status: StatusOK, Ended: t0.Add(time.Minute)},
			{ID: 9, RunID: 4, Name: "b", Status: StatusOK, Ended: t0.Add(2 * time.Minute)},
		},
	}
	for _, order := range [][]*Snapshot{{running, done}, {done, running}} {
		m := merge(order...)
		if len(m.Runs) != 1 || m.Runs[0].Status != StatusOK {
			t.Errorf("runs %+v, want the finished copy", m.Runs)
		}
		if len(m.Experiments) != 2 || m.Experiments[0].Status != StatusOK || m.Experiments[0].RunID != 1 {
			t.Errorf("experiments %+v, want the finished copies", m.Experiments)
		}
	}
}

// TestOpenSnapshotsOlderSchema checks that a database written by an older
// vitbench, in a folder the reader cannot write, is read through a private
// migrated copy: its runs are there, and the file and its folder are
// unchanged (no -wal or -shm left, no migration recorded).
func TestOpenSnapshotsOlderSchema(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "old.db")
	db := openAt(t, path)
	r := beginTest(t, db)
	if err := db.SaveExperiment(ctx, testExperiment(r.ID, "old", 1)); err != nil {
		t.Fatal(err)
	}
	// Undo the newest migration: the file is now as an older vitbench left it.
	for _, q := range []string{
		`ALTER TABLE experiments DROP COLUMN model_description`,
		`ALTER TABLE experiments DROP COLUMN description`,
		`ALTER TABLE runs DROP COLUMN suite_description`,
		`DELETE FROM migrations WHERE name = '0009_descriptions.sql'`,
		`PRAGMA wal_checkpoint(TRUNCATE)`,
	} {
		if _, err := db.wdb.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("folder holds %d files before reading, want only old.db", len(entries))
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o755)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := OpenSnapshots(path)
	if err != nil {
		t.Fatalf("OpenSnapshots of an older schema: %v", err)
	}
	if len(snap.Runs) != 1 || len(snap.Experiments) != 1 || snap.Experiments[0].Name != "old" {
		t.Errorf("snapshot = %d runs, %d experiments; want the 1 and 1 stored", len(snap.Runs), len(snap.Experiments))
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("reading an older database changed its file")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("folder holds %v after reading, want only old.db", names)
	}
}
