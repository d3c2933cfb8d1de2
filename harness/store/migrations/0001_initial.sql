-- 0001: the initial schema. Times are UTC text of a fixed width
-- (2006-01-02T15:04:05.000000000Z) so they sort as text; NULL when unset.
-- JSON columns hold what encoding/json writes for the matching Go field.

-- A machine is identified by its fingerprint: a hash of the fields that
-- identify a computer (see Fingerprint). What varies between runs of one
-- machine (threads, sgemm speed, CUDA use) lives on the run.
CREATE TABLE machines (
	id           INTEGER PRIMARY KEY,
	fingerprint  TEXT    NOT NULL UNIQUE,
	hostname     TEXT    NOT NULL,
	cpu          TEXT    NOT NULL,
	cores        INTEGER NOT NULL,
	memory_bytes INTEGER NOT NULL,
	gpu          TEXT    NOT NULL,
	os           TEXT    NOT NULL,
	libtorch     TEXT    NOT NULL,
	blas         TEXT    NOT NULL,
	gotch        TEXT    NOT NULL,
	go           TEXT    NOT NULL,
	created      TEXT    NOT NULL
);

-- One invocation of `bench run`. pid, pid_start and host name the process
-- that writes it, so that a run left 'running' by a killed process can be
-- recognised as interrupted.
CREATE TABLE runs (
	id           INTEGER PRIMARY KEY,
	uuid         TEXT    NOT NULL UNIQUE,
	machine_id   INTEGER NOT NULL REFERENCES machines (id),
	threads      INTEGER NOT NULL,
	sgemm_gflops REAL,
	cuda         INTEGER NOT NULL,
	suite_name   TEXT    NOT NULL,
	suite_path   TEXT    NOT NULL,
	suite_hash   TEXT    NOT NULL,
	git_commit   TEXT    NOT NULL,
	args         TEXT    NOT NULL, -- JSON array of strings
	device       TEXT    NOT NULL,
	started      TEXT    NOT NULL,
	ended        TEXT,
	status       TEXT    NOT NULL,
	pid          INTEGER NOT NULL,
	pid_start    INTEGER NOT NULL, -- process start time in clock ticks, 0 when unknown
	host         TEXT    NOT NULL
);
CREATE INDEX runs_status ON runs (status, host);

CREATE TABLE experiments (
	id         INTEGER PRIMARY KEY,
	run_id     INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	name       TEXT    NOT NULL,
	group_name TEXT    NOT NULL,
	model      TEXT    NOT NULL,
	dataset    TEXT    NOT NULL,
	baseline   TEXT    NOT NULL,
	families   TEXT    NOT NULL, -- JSON array of strings
	pipeline   TEXT    NOT NULL,
	params     TEXT    NOT NULL, -- JSON object of strings
	spec       TEXT    NOT NULL, -- the resolved spec, JSON
	hash       TEXT    NOT NULL,
	status     TEXT    NOT NULL,
	error      TEXT    NOT NULL,
	executed   TEXT    NOT NULL,
	started    TEXT,
	ended      TEXT,
	UNIQUE (run_id, name)
);
CREATE INDEX experiments_hash ON experiments (hash, status);

-- value is NULL for NaN (SQLite stores no NaN).
CREATE TABLE metrics (
	experiment_id INTEGER NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
	name          TEXT    NOT NULL,
	seq           INTEGER NOT NULL,
	value         REAL,
	unit          TEXT    NOT NULL,
	PRIMARY KEY (experiment_id, name)
) WITHOUT ROWID;

CREATE TABLE layers (
	experiment_id INTEGER NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
	seq           INTEGER NOT NULL,
	name          TEXT    NOT NULL,
	kind          TEXT    NOT NULL,
	params        INTEGER NOT NULL,
	macs          INTEGER NOT NULL,
	bits          INTEGER NOT NULL,
	PRIMARY KEY (experiment_id, seq)
) WITHOUT ROWID;

CREATE TABLE curves (
	experiment_id INTEGER NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
	seq           INTEGER NOT NULL,
	series        TEXT    NOT NULL,
	step          INTEGER NOT NULL,
	value         REAL,
	PRIMARY KEY (experiment_id, seq)
) WITHOUT ROWID;

-- Cached stage outputs on disk, keyed by the hash of what determines them.
CREATE TABLE artifacts (
	hash    TEXT    PRIMARY KEY,
	kind    TEXT    NOT NULL,
	path    TEXT    NOT NULL,
	sha256  TEXT    NOT NULL,
	bytes   INTEGER NOT NULL,
	created TEXT    NOT NULL
);
