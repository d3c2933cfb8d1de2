-- 0007: what intervals and paired tests are computed from, kept so that any
-- later comparison (another run, another machine) can redo them.
-- outcomes: an experiment's per-image correctness on its test images. images
-- identifies the images and their order; two outcomes pair only when equal.
-- bits: bit i (byte i/8, least significant bit first) set when image i was
-- classified correctly.
CREATE TABLE outcomes (
	experiment_id INTEGER NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
	metric        TEXT    NOT NULL,
	images        TEXT    NOT NULL,
	n             INTEGER NOT NULL,
	bits          BLOB    NOT NULL,
	PRIMARY KEY (experiment_id, metric)
) WITHOUT ROWID;

-- samples: every timed pass of an experiment's graph, by series
-- (latency: seconds per pass at batch 1; throughput: images per second of
-- one pass at the throughput batch) and the interleaved round it ran in.
CREATE TABLE samples (
	experiment_id INTEGER NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
	series        TEXT    NOT NULL,
	seq           INTEGER NOT NULL,
	round         INTEGER NOT NULL,
	value         REAL    NOT NULL,
	PRIMARY KEY (experiment_id, series, seq)
) WITHOUT ROWID;
