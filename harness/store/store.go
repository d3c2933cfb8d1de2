// Package store keeps vitbench's results in SQLite: the machines runs
// executed on, the runs, their experiments with metrics, per-layer counts and
// training curves, and the index of cached artifacts. The runner writes
// through a DB and nothing else writes results; reports read a Snapshot
// (OpenSnapshots merges the databases of several machines into one), and
// WriteCSV and WriteJSON export one for pandas or a spreadsheet.
//
// A database is one file in WAL mode with foreign keys on and a busy timeout,
// so several bench processes, and several goroutines of one, may write the
// same file at once: writers take the write lock when their transaction
// begins (BEGIN IMMEDIATE) and wait for each other instead of failing.
// Every change is one transaction, so a process killed at any point leaves
// the file as it was before or after that change, never in between.
//
// The schema is a numbered series of embedded migrations (migrations/*.sql)
// applied in lexical order, one transaction each, and recorded by name in
// the migrations table, after benbjohnson/wtf's sqlite package.
//
// A run whose process died (kill -9, a crash, a power cut) stays "running" in
// the file. Open, Runs, Experiments and Snapshot look for such runs recorded
// by this host and, when their process no longer exists, report them as
// interrupted (and, unless read-only, record them so). Runs recorded on other
// hosts are left alone: their liveness cannot be checked from here.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// DefaultPath is where bench keeps its results unless told otherwise.
const DefaultPath = "results/results.db"

// defaultBusyTimeout is how long a writer waits for another writer's lock
// before failing with "database is locked".
const defaultBusyTimeout = 10 * time.Second

// Errors returned by the store, wrapped with what was being done.
var (
	// errReadOnly is returned by writes to a database opened read-only.
	errReadOnly = errors.New("database is open read-only")
	// errNotFound is returned when a run named by ID does not exist.
	errNotFound = errors.New("not found")
	// errNewerSchema is returned when the database records migrations this
	// version of vitbench does not know: a newer version wrote it.
	errNewerSchema = errors.New("database was written by a newer vitbench")
	// errOlderSchema is returned when a database opened read-only lacks
	// migrations; opening it read-write (bench run) upgrades it.
	errOlderSchema = errors.New("database schema is older than this vitbench (open it read-write to migrate)")
)

// DB is a results database, opened with Open or OpenReadOnly.
// A DB is safe for concurrent use by several goroutines.
type DB struct {
	// Path is the database file.
	Path string

	// ReadOnly opens an existing file without creating, migrating or
	// writing it. Runs found interrupted are reported so, not recorded.
	ReadOnly bool

	// BusyTimeout is how long a writer waits for the write lock.
	BusyTimeout time.Duration

	// Now returns the current time. Tests replace it.
	Now func() time.Time

	wdb  *sql.DB // writers: BEGIN IMMEDIATE, one connection; nil when read-only
	rdb  *sql.DB // readers: BEGIN DEFERRED, consistent snapshots
	host string  // this host's name, for the liveness of runs
}

// newDB returns an unopened DB for the file at path with default settings.
func newDB(path string) *DB {
	return &DB{
		Path:        path,
		BusyTimeout: defaultBusyTimeout,
		Now:         time.Now,
	}
}

// Open opens the database at path for reading and writing, creating it and
// its parent directories when missing and applying pending migrations.
func Open(path string) (*DB, error) {
	db := newDB(path)
	if err := db.open(); err != nil {
		return nil, err
	}
	return db, nil
}

// OpenReadOnly opens an existing database at path for reading. A missing
// file is an error that wraps fs.ErrNotExist and names the path; nothing is
// created.
func OpenReadOnly(path string) (*DB, error) {
	db := newDB(path)
	db.ReadOnly = true
	if err := db.open(); err != nil {
		return nil, err
	}
	return db, nil
}

// open opens the database at db.Path. On failure every handle is closed, so
// open may be called again.
func (db *DB) open() (err error) {
	if db.Path == "" {
		return errors.New("open database: no path")
	}
	if db.Now == nil {
		db.Now = time.Now
	}
	if db.BusyTimeout <= 0 {
		db.BusyTimeout = defaultBusyTimeout
	}
	defer func() {
		if err != nil {
			db.closeHandles()
			err = fmt.Errorf("open %s: %w", db.Path, err)
		}
	}()
	abs, err := filepath.Abs(db.Path)
	if err != nil {
		return err
	}
	db.host, _ = os.Hostname()
	ctx := context.Background()

	if db.ReadOnly {
		if _, err := os.Stat(abs); err != nil {
			return err
		}
		if db.rdb, err = sql.Open("sqlite3", db.dsn(abs, "deferred", true)); err != nil {
			return err
		}
		if err := db.checkMigrations(ctx); err != nil {
			return err
		}
		return nil
	}

	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return err
	}
	if db.wdb, err = sql.Open("sqlite3", db.dsn(abs, "immediate", false)); err != nil {
		return err
	}
	// One writer connection per process: goroutines queue here rather than
	// in SQLite's busy handler; other processes wait in the busy handler.
	db.wdb.SetMaxOpenConns(1)
	if err := db.setWAL(ctx); err != nil {
		return err
	}
	if err := db.migrate(ctx); err != nil {
		return err
	}
	if db.rdb, err = sql.Open("sqlite3", db.dsn(abs, "deferred", false)); err != nil {
		return err
	}
	if _, err := db.reap(ctx); err != nil {
		return err
	}
	return nil
}

// setWAL switches the database to write-ahead logging. Processes opening
// a new file at once each read it under a shared lock and then want the
// exclusive lock the switch takes; SQLite fails all but one of them at
// once with SQLITE_BUSY rather than calling the busy handler (waiting
// could deadlock), so the switch is retried here, backing off, until the
// busy timeout.
func (db *DB) setWAL(ctx context.Context) error {
	deadline := time.Now().Add(db.BusyTimeout)
	for wait := 2 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		var mode string
		err := db.wdb.QueryRowContext(ctx, "PRAGMA journal_mode = wal").Scan(&mode)
		switch {
		case err == nil && mode != "wal":
			return fmt.Errorf("set journal mode: got %q, want \"wal\"", mode)
		case err == nil:
			return nil
		case !isBusy(err) || time.Now().Add(wait).After(deadline):
			return fmt.Errorf("set journal mode: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("set journal mode: %w", ctx.Err())
		case <-time.After(wait):
		}
	}
}

// isBusy reports whether err is SQLite's "database is locked" or "table
// is locked".
func isBusy(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && (se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked)
}

// Close closes the database.
func (db *DB) Close() error {
	return db.closeHandles()
}

func (db *DB) closeHandles() error {
	var errs []error
	if db.rdb != nil {
		errs = append(errs, db.rdb.Close())
		db.rdb = nil
	}
	if db.wdb != nil {
		errs = append(errs, db.wdb.Close())
		db.wdb = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close %s: %w", db.Path, err)
	}
	return nil
}

// dsn returns mattn/go-sqlite3's data source name for the file at abs: a
// SQLite URI (so that any character in the path survives) with the driver's
// connection settings as parameters.
func (db *DB) dsn(abs, txlock string, readOnly bool) string {
	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(db.BusyTimeout.Milliseconds(), 10))
	q.Set("_foreign_keys", "on")
	q.Set("_txlock", txlock)
	if readOnly {
		q.Set("mode", "ro")
		// A WAL database read while no writer has it open (no -wal file)
		// is opened immutable: SQLite then creates no -wal or -shm beside
		// it, so a read leaves a copied or shared folder as it was. With
		// a -wal present a writer may be active, and the reader takes
		// part in WAL locking as usual.
		if _, err := os.Stat(abs + "-wal"); errors.Is(err, fs.ErrNotExist) {
			q.Set("immutable", "1")
		}
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}

// migrationNames returns the embedded migrations in the order they apply.
func migrationNames() ([]string, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	for i, n := range names {
		names[i] = path.Base(n)
	}
	slices.Sort(names)
	return names, nil
}

// migrations returns the names of the schema migrations this version of
// vitbench applies, in order.
func migrations() []string {
	names, _ := migrationNames()
	return names
}

// migrate applies every embedded migration the database lacks. Each one
// runs in its own immediate transaction that first checks whether another
// process applied it meanwhile, so concurrent first opens are safe.
func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.wdb.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS migrations (
	name    TEXT PRIMARY KEY,
	applied TEXT NOT NULL
)`); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	names, err := migrationNames()
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	applied, err := appliedMigrations(ctx, db.wdb)
	if err != nil {
		return err
	}
	for _, a := range applied {
		if !slices.Contains(names, a) {
			return fmt.Errorf("migration %s: %w", a, errNewerSchema)
		}
	}
	for _, name := range names {
		if err := db.applyMigration(ctx, name); err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	}
	return nil
}

func (db *DB) applyMigration(ctx context.Context, name string) error {
	tx, err := db.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = rollback(tx) }()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM migrations WHERE name = ?`, name).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	buf, err := migrationFS.ReadFile("migrations/" + name)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, string(buf)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO migrations (name, applied) VALUES (?, ?)`,
		name, formatTime(db.Now())); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return tx.Commit()
}

// checkMigrations verifies, without writing, that a database opened
// read-only has exactly the migrations this version knows.
func (db *DB) checkMigrations(ctx context.Context) error {
	var n int
	if err := db.rdb.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'migrations'`).Scan(&n); err != nil {
		return fmt.Errorf("read schema: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("no migrations table: %w", errOlderSchema)
	}
	applied, err := appliedMigrations(ctx, db.rdb)
	if err != nil {
		return err
	}
	names, err := migrationNames()
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	for _, a := range applied {
		if !slices.Contains(names, a) {
			return fmt.Errorf("migration %s: %w", a, errNewerSchema)
		}
	}
	for _, name := range names {
		if !slices.Contains(applied, name) {
			return fmt.Errorf("migration %s not applied: %w", name, errOlderSchema)
		}
	}
	return nil
}

func appliedMigrations(ctx context.Context, q *sql.DB) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM migrations ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("read migrations: %w", err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	return names, nil
}

// rollback rolls tx back. It is meant for a deferred call after which the
// transaction may already be committed, which is not an error.
func rollback(tx *sql.Tx) error {
	if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return err
	}
	return nil
}

// write runs fn in one immediate write transaction and commits it; errors
// are wrapped with op.
func (db *DB) write(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	if db.wdb == nil {
		if db.rdb == nil {
			return fmt.Errorf("%s: database is closed", op)
		}
		return fmt.Errorf("%s: %w", op, errReadOnly)
	}
	tx, err := db.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", op, err)
	}
	defer func() { _ = rollback(tx) }()
	if err := fn(tx); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", op, err)
	}
	return nil
}

// read runs fn in one read transaction: everything fn reads comes from the
// same state of the database, whatever writers do meanwhile.
func (db *DB) read(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	if db.rdb == nil {
		return fmt.Errorf("%s: database is closed", op)
	}
	tx, err := db.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("%s: begin: %w", op, err)
	}
	defer func() { _ = rollback(tx) }()
	if err := fn(tx); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

func (db *DB) now() time.Time {
	if db.Now == nil {
		return time.Now()
	}
	return db.Now()
}

// timeLayout is how times are stored: UTC and fixed width, so that they sort
// as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return formatTime(t)
}

func parseTime(s sql.NullString) (time.Time, error) {
	if !s.Valid || s.String == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s.String)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse time: %w", err)
	}
	return t, nil
}

// nullFloat stores NaN as NULL; SQLite has no NaN.
func nullFloat(v float64) any {
	if math.IsNaN(v) {
		return nil
	}
	return v
}

func floatOrNaN(v sql.NullFloat64) float64 {
	if !v.Valid {
		return math.NaN()
	}
	return v.Float64
}

// validStatus reports whether s is one of the Status constants.
func validStatus(s string) bool {
	switch s {
	case StatusRunning, StatusOK, StatusFailed, StatusInterrupted:
		return true
	}
	return false
}
