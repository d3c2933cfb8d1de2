-- 0003: every resolved parameter of every stage of an experiment, defaults
-- included, in pipeline and field order (seq). name is the flat key that
-- is unique within the experiment: "technique.key" for a technique's first
-- stage in the pipeline, "technique#N.key" for its Nth (as package
-- plan names it). value is the parameter as text (config.FormatValue);
-- swept is 1 where the experiment's grid chose it. Experiments stored
-- before this migration have no rows.
CREATE TABLE experiment_settings (
	experiment_id INTEGER NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
	name          TEXT    NOT NULL,
	seq           INTEGER NOT NULL,
	stage         INTEGER NOT NULL,
	technique     TEXT    NOT NULL,
	key           TEXT    NOT NULL,
	value         TEXT    NOT NULL,
	swept         INTEGER NOT NULL,
	PRIMARY KEY (experiment_id, name)
) WITHOUT ROWID;
