package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// PutArtifact records a cached stage output, replacing any record with the
// same hash. A zero Created is set to now.
func (db *DB) PutArtifact(ctx context.Context, a Artifact) error {
	if a.Hash == "" {
		return errors.New("put artifact: no hash")
	}
	if a.Created.IsZero() {
		a.Created = db.now()
	}
	return db.write(ctx, "put artifact "+a.Hash, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO artifacts (hash, kind, path, sha256, bytes, created)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (hash) DO UPDATE SET kind = excluded.kind, path = excluded.path,
	sha256 = excluded.sha256, bytes = excluded.bytes, created = excluded.created`,
			a.Hash, a.Kind, a.Path, a.SHA256, a.Bytes, formatTime(a.Created))
		if err != nil {
			return fmt.Errorf("insert artifact: %w", err)
		}
		return nil
	})
}

// artifact returns the record of the artifact with the given hash; nil and
// no error when there is none.
func (db *DB) artifact(ctx context.Context, hash string) (*Artifact, error) {
	var arts []Artifact
	err := db.read(ctx, "find artifact "+hash, func(tx *sql.Tx) error {
		var err error
		arts, err = loadArtifacts(ctx, tx, `WHERE hash = ?`, hash)
		return err
	})
	if err != nil || len(arts) == 0 {
		return nil, err
	}
	return &arts[0], nil
}

// artifacts returns every artifact record, oldest first.
func (db *DB) artifacts(ctx context.Context) ([]Artifact, error) {
	var arts []Artifact
	err := db.read(ctx, "list artifacts", func(tx *sql.Tx) error {
		var err error
		arts, err = loadArtifacts(ctx, tx, `ORDER BY created, hash`)
		return err
	})
	return arts, err
}

// deleteArtifact removes the record of the artifact with the given hash, for
// instance after its file was found corrupt; removing a missing record is
// not an error. The file itself is the caller's.
func (db *DB) deleteArtifact(ctx context.Context, hash string) error {
	return db.write(ctx, "delete artifact "+hash, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM artifacts WHERE hash = ?`, hash)
		return err
	})
}

func loadArtifacts(ctx context.Context, tx *sql.Tx, tail string, args ...any) ([]Artifact, error) {
	rows, err := tx.QueryContext(ctx, `SELECT hash, kind, path, sha256, bytes, created FROM artifacts `+tail, args...)
	if err != nil {
		return nil, fmt.Errorf("query artifacts: %w", err)
	}
	defer rows.Close()
	var arts []Artifact
	for rows.Next() {
		var (
			a       Artifact
			created sql.NullString
		)
		if err := rows.Scan(&a.Hash, &a.Kind, &a.Path, &a.SHA256, &a.Bytes, &created); err != nil {
			return nil, fmt.Errorf("scan artifact: %w", err)
		}
		if a.Created, err = parseTime(created); err != nil {
			return nil, fmt.Errorf("artifact %s: %w", a.Hash, err)
		}
		arts = append(arts, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query artifacts: %w", err)
	}
	return arts, nil
}
