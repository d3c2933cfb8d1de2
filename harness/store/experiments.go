package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/vitbench/vitbench/harness/metrics"
)

// SaveExperiment records e, which belongs to run e.RunID, and sets e.ID. An
// experiment of the same run and name is replaced: its fields, settings,
// metrics, layers and curves together, in one transaction, so a reader sees either
// the old record or the new one. Saving as the experiment progresses
// (running, then ok or failed) therefore keeps one row.
func (db *DB) SaveExperiment(ctx context.Context, e *Experiment) error {
	op := fmt.Sprintf("save experiment %q", e.Name)
	if err := checkExperiment(e); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	families, err := json.Marshal(nonNil(e.Families))
	if err != nil {
		return fmt.Errorf("%s: encode families: %w", op, err)
	}
	params := e.Params
	if params == nil {
		params = map[string]string{}
	}
	paramsJSON, err := json.Marshal(params)
	if err != nil {
		return fmt.Errorf("%s: encode params: %w", op, err)
	}
	quant, err := encodeQuant(e.Quant)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	var id int64
	err = db.write(ctx, op, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO experiments (
	run_id, name, group_name, model, dataset, baseline, families, pipeline, params, spec, hash,
	status, error, executed, exec_detail, quant_sites, started, ended, seed, replica,
	description, model_description
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (run_id, name) DO UPDATE SET
	group_name = excluded.group_name, model = excluded.model, dataset = excluded.dataset,
	baseline = excluded.baseline, families = excluded.families, pipeline = excluded.pipeline,
	params = excluded.params, spec = excluded.spec, hash = excluded.hash, status = excluded.status,
	error = excluded.error, executed = excluded.executed, exec_detail = excluded.exec_detail,
	quant_sites = excluded.quant_sites, started = excluded.started,
	ended = excluded.ended, seed = excluded.seed, replica = excluded.replica,
	description = excluded.description, model_description = excluded.model_description
RETURNING id`,
			e.RunID, e.Name, e.Group, e.Model, e.Dataset, e.Baseline, string(families), e.Pipeline,
			string(paramsJSON), e.SpecJSON, e.Hash, e.Status, e.Error, e.Executed, e.ExecDetail, quant,
			nullTime(e.Started), nullTime(e.Ended), e.Seed, e.Replica,
			e.Description, e.ModelDescription,
		).Scan(&id)
		if err != nil {
			return fmt.Errorf("insert experiment: %w", err)
		}
		for _, table := range []string{"experiment_settings", "metrics", "layers", "curves", "outcomes", "samples"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE experiment_id = ?`, id); err != nil {
				return fmt.Errorf("delete old %s: %w", table, err)
			}
		}
		if err := insertRows(ctx, tx, "settings",
			`INSERT INTO experiment_settings (experiment_id, name, seq, stage, technique, key, value, swept) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			len(e.Settings), func(i int) []any {
				s := e.Settings[i]
				return []any{id, s.Name, i, s.Stage, s.Technique, s.Key, s.Value, s.Swept}
			}); err != nil {
			return err
		}
		if err := insertRows(ctx, tx, "metrics",
			`INSERT INTO metrics (experiment_id, name, seq, value, unit) VALUES (?, ?, ?, ?, ?)`,
			len(e.Metrics), func(i int) []any {
				m := e.Metrics[i]
				return []any{id, m.Name, i, nullFloat(m.Value), m.Unit}
			}); err != nil {
			return err
		}
		if err := insertRows(ctx, tx, "layers",
			`INSERT INTO layers (experiment_id, seq, name, kind, params, macs, bits) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			len(e.Layers), func(i int) []any {
				l := e.Layers[i]
				return []any{id, i, l.Name, l.Kind, l.Params, l.MACs, l.Bits}
			}); err != nil {
			return err
		}
		if err := insertRows(ctx, tx, "curves",
			`INSERT INTO curves (experiment_id, seq, series, step, value) VALUES (?, ?, ?, ?, ?)`,
			len(e.Curves), func(i int) []any {
				p := e.Curves[i]
				return []any{id, i, p.Series, p.Step, nullFloat(p.Value)}
			}); err != nil {
			return err
		}
		if err := insertRows(ctx, tx, "outcomes",
			`INSERT INTO outcomes (experiment_id, metric, images, n, bits) VALUES (?, ?, ?, ?, ?)`,
			len(e.Outcomes), func(i int) []any {
				o := e.Outcomes[i]
				return []any{id, o.Metric, o.Images, o.N, o.Bits}
			}); err != nil {
			return err
		}
		return insertRows(ctx, tx, "samples",
			`INSERT INTO samples (experiment_id, series, seq, round, value) VALUES (?, ?, ?, ?, ?)`,
			len(e.Samples), func(i int) []any {
				s := e.Samples[i]
				return []any{id, s.Series, i, s.Round, s.Value}
			})
	})
	if err != nil {
		return err
	}
	e.ID = id
	return nil
}

// insertRows runs the prepared statement query once for each of n rows.
func insertRows(ctx context.Context, tx *sql.Tx, table, query string, n int, row func(i int) []any) error {
	if n == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, query)
	if err != nil {
		return fmt.Errorf("insert %s: %w", table, err)
	}
	defer stmt.Close()
	for i := range n {
		if _, err := stmt.ExecContext(ctx, row(i)...); err != nil {
			return fmt.Errorf("insert %s: %w", table, err)
		}
	}
	return nil
}

// checkExperiment rejects what the schema would reject with a less clear
// message, or would store wrongly.
func checkExperiment(e *Experiment) error {
	if e.RunID == 0 {
		return errors.New("no run ID (call BeginRun first)")
	}
	if e.Name == "" {
		return errors.New("no name")
	}
	if !validStatus(e.Status) {
		return fmt.Errorf("invalid status %q", e.Status)
	}
	if e.SpecJSON != "" && !json.Valid([]byte(e.SpecJSON)) {
		return errors.New("spec is not valid JSON")
	}
	if err := uniqueNames("setting", len(e.Settings), func(i int) string { return e.Settings[i].Name }); err != nil {
		return err
	}
	return uniqueNames("metric", len(e.Metrics), func(i int) string { return e.Metrics[i].Name })
}

// uniqueNames checks that the n names of a kind of row are set and
// distinct.
func uniqueNames(kind string, n int, name func(i int) string) error {
	seen := make(map[string]bool, n)
	for i := range n {
		s := name(i)
		if s == "" {
			return fmt.Errorf("%s with no name", kind)
		}
		if seen[s] {
			return fmt.Errorf("%s %q given twice", kind, s)
		}
		seen[s] = true
	}
	return nil
}

// completedExperiment returns the newest experiment that finished with
// status ok and has the given hash, on the machine with the given
// fingerprint, in any run; nil and no error when there is none: what an
// experiment measures is determined by its hash and the machine. Only the
// tests call it; the runner resumes from cached artifacts instead.
func (db *DB) completedExperiment(ctx context.Context, machineFingerprint, hash string) (*Experiment, error) {
	if hash == "" {
		return nil, nil
	}
	var exps []Experiment
	err := db.read(ctx, "find completed experiment", func(tx *sql.Tx) error {
		var err error
		exps, err = loadExperiments(ctx, tx, `e.id = (
	SELECT x.id FROM experiments x
	JOIN runs r ON r.id = x.run_id
	JOIN machines m ON m.id = r.machine_id
	WHERE m.fingerprint = ? AND x.hash = ? AND x.status = ?
	ORDER BY COALESCE(x.ended, x.started, r.started) DESC, x.id DESC
	LIMIT 1)`, machineFingerprint, hash, StatusOK)
		return err
	})
	if err != nil || len(exps) == 0 {
		return nil, err
	}
	return &exps[0], nil
}

// Experiments returns the experiments of run runID in the order they were
// first saved, with their settings, metrics, layers and curves.
func (db *DB) Experiments(ctx context.Context, runID int64) ([]Experiment, error) {
	dead, err := db.reap(ctx)
	if err != nil {
		return nil, err
	}
	var exps []Experiment
	err = db.read(ctx, fmt.Sprintf("list experiments of run %d", runID), func(tx *sql.Tx) error {
		exps, err = loadExperiments(ctx, tx, `e.run_id = ?`, runID)
		return err
	})
	if err != nil {
		return nil, err
	}
	markDead(dead, nil, exps)
	return exps, nil
}

const experimentColumns = `e.id, e.run_id, e.name, e.group_name, e.model, e.dataset, e.baseline,
	e.families, e.pipeline, e.params, e.spec, e.hash, e.status, e.error, e.executed, e.exec_detail, e.quant_sites, e.started, e.ended, e.seed, e.replica,
	e.description, e.model_description`

// loadExperiments returns the experiments matching where (a condition on
// experiments e, with args), ordered by run and then by ID, with their
// settings, metrics, layers, curves, outcomes and samples: seven queries
// whatever their number.
func loadExperiments(ctx context.Context, tx *sql.Tx, where string, args ...any) ([]Experiment, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+experimentColumns+`
FROM experiments e WHERE `+where+` ORDER BY e.run_id, e.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("query experiments: %w", err)
	}
	defer rows.Close()
	var exps []Experiment
	index := map[int64]int{}
	for rows.Next() {
		var (
			e                Experiment
			families, params string
			quant            string
			started, ended   sql.NullString
			seed             sql.NullInt64
		)
		if err := rows.Scan(&e.ID, &e.RunID, &e.Name, &e.Group, &e.Model, &e.Dataset, &e.Baseline,
			&families, &e.Pipeline, &params, &e.SpecJSON, &e.Hash, &e.Status, &e.Error, &e.Executed,
			&e.ExecDetail, &quant, &started, &ended, &seed, &e.Replica, &e.Description, &e.ModelDescription); err != nil {
			return nil, fmt.Errorf("scan experiment: %w", err)
		}
		if err := json.Unmarshal([]byte(families), &e.Families); err != nil {
			return nil, fmt.Errorf("experiment %q: decode families: %w", e.Name, err)
		}
		if err := json.Unmarshal([]byte(params), &e.Params); err != nil {
			return nil, fmt.Errorf("experiment %q: decode params: %w", e.Name, err)
		}
		if e.Quant, err = decodeQuant(quant); err != nil {
			return nil, fmt.Errorf("experiment %q: %w", e.Name, err)
		}
		if len(e.Families) == 0 {
			e.Families = nil
		}
		if seed.Valid {
			e.Seed = &seed.Int64
		}
		if len(e.Params) == 0 {
			e.Params = nil
		}
		if e.Started, err = parseTime(started); err != nil {
			return nil, fmt.Errorf("experiment %q: %w", e.Name, err)
		}
		if e.Ended, err = parseTime(ended); err != nil {
			return nil, fmt.Errorf("experiment %q: %w", e.Name, err)
		}
		index[e.ID] = len(exps)
		exps = append(exps, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query experiments: %w", err)
	}
	rows.Close()
	if len(exps) == 0 {
		return nil, nil
	}
	ids := `SELECT e.id FROM experiments e WHERE ` + where

	err = eachRow(ctx, tx, "settings", `SELECT experiment_id, name, stage, technique, key, value, swept
FROM experiment_settings WHERE experiment_id IN (`+ids+`) ORDER BY experiment_id, seq`, args,
		func(rows *sql.Rows) error {
			var (
				id int64
				s  Setting
			)
			if err := rows.Scan(&id, &s.Name, &s.Stage, &s.Technique, &s.Key, &s.Value, &s.Swept); err != nil {
				return err
			}
			e := &exps[index[id]]
			e.Settings = append(e.Settings, s)
			return nil
		})
	if err != nil {
		return nil, err
	}

	err = eachRow(ctx, tx, "metrics", `SELECT experiment_id, name, value, unit FROM metrics
WHERE experiment_id IN (`+ids+`) ORDER BY experiment_id, seq`, args,
		func(rows *sql.Rows) error {
			var (
				id int64
				m  metrics.Metric
				v  sql.NullFloat64
			)
			if err := rows.Scan(&id, &m.Name, &v, &m.Unit); err != nil {
				return err
			}
			m.Value = floatOrNaN(v)
			e := &exps[index[id]]
			e.Metrics = append(e.Metrics, m)
			return nil
		})
	if err != nil {
		return nil, err
	}
	err = eachRow(ctx, tx, "layers", `SELECT experiment_id, name, kind, params, macs, bits FROM layers
WHERE experiment_id IN (`+ids+`) ORDER BY experiment_id, seq`, args,
		func(rows *sql.Rows) error {
			var (
				id int64
				l  Layer
			)
			if err := rows.Scan(&id, &l.Name, &l.Kind, &l.Params, &l.MACs, &l.Bits); err != nil {
				return err
			}
			e := &exps[index[id]]
			e.Layers = append(e.Layers, l)
			return nil
		})
	if err != nil {
		return nil, err
	}
	err = eachRow(ctx, tx, "curves", `SELECT experiment_id, series, step, value FROM curves
WHERE experiment_id IN (`+ids+`) ORDER BY experiment_id, seq`, args,
		func(rows *sql.Rows) error {
			var (
				id int64
				p  Point
				v  sql.NullFloat64
			)
			if err := rows.Scan(&id, &p.Series, &p.Step, &v); err != nil {
				return err
			}
			p.Value = floatOrNaN(v)
			e := &exps[index[id]]
			e.Curves = append(e.Curves, p)
			return nil
		})
	if err != nil {
		return nil, err
	}
	err = eachRow(ctx, tx, "outcomes", `SELECT experiment_id, metric, images, n, bits FROM outcomes
WHERE experiment_id IN (`+ids+`) ORDER BY experiment_id, metric`, args,
		func(rows *sql.Rows) error {
			var (
				id int64
				o  Outcome
			)
			if err := rows.Scan(&id, &o.Metric, &o.Images, &o.N, &o.Bits); err != nil {
				return err
			}
			e := &exps[index[id]]
			e.Outcomes = append(e.Outcomes, o)
			return nil
		})
	if err != nil {
		return nil, err
	}
	err = eachRow(ctx, tx, "samples", `SELECT experiment_id, series, round, value FROM samples
WHERE experiment_id IN (`+ids+`) ORDER BY experiment_id, series, seq`, args,
		func(rows *sql.Rows) error {
			var (
				id int64
				s  Sample
			)
			if err := rows.Scan(&id, &s.Series, &s.Round, &s.Value); err != nil {
				return err
			}
			e := &exps[index[id]]
			e.Samples = append(e.Samples, s)
			return nil
		})
	if err != nil {
		return nil, err
	}
	return exps, nil
}

// eachRow calls fn for each row of query.
func eachRow(ctx context.Context, tx *sql.Tx, what, query string, args []any, fn func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("query %s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return fmt.Errorf("scan %s: %w", what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("query %s: %w", what, err)
	}
	return nil
}
