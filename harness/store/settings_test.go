package store

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// testSettings are the settings of a prune → quantize → quantize pipeline:
// a swept parameter, fixed ones, defaults, and a technique twice.
func testSettings() []Setting {
	return []Setting{
		{Name: "prune.amount", Stage: 0, Technique: "prune", Key: "amount", Value: "0.5", Swept: true},
		{Name: "prune.kind", Stage: 0, Technique: "prune", Key: "kind", Value: "heads"},
		{Name: "quantize.weight_bits", Stage: 1, Technique: "quantize", Key: "weight_bits", Value: "8"},
		{Name: "quantize.layers", Stage: 1, Technique: "quantize", Key: "layers", Value: "[qkv,proj]"},
		{Name: "quantize#2.weight_bits", Stage: 2, Technique: "quantize", Key: "weight_bits", Value: "4", Swept: true},
	}
}

func TestSettingsRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	r := beginTest(t, db)
	tests := []struct {
		name     string
		settings []Setting
	}{
		{"pipeline", testSettings()},
		{"one", testSettings()[2:3]},
		{"none", nil},
	}
	for _, tt := range tests {
		e := testExperiment(r.ID, tt.name, 2)
		e.Settings = tt.settings
		if err := db.SaveExperiment(ctx, e); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
	}
	got, err := db.Experiments(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(tests) {
		t.Fatalf("read back %d experiments, want %d", len(got), len(tests))
	}
	for i, tt := range tests {
		if !reflect.DeepEqual(got[i].Settings, tt.settings) {
			t.Errorf("%s: settings read back\n%+v\nwant\n%+v", tt.name, got[i].Settings, tt.settings)
		}
	}
	if v, ok := got[0].Setting("quantize#2.weight_bits"); !ok || v != "4" {
		t.Errorf(`Setting("quantize#2.weight_bits") = %q, %t; want "4", true`, v, ok)
	}
	if v, ok := got[0].Setting("quantize.act_bits"); ok {
		t.Errorf(`Setting("quantize.act_bits") = %q, true; want none`, v)
	}

	// Saving again replaces the settings, as it does metrics.
	e := testExperiment(r.ID, "pipeline", 2)
	e.Settings = testSettings()[:1]
	if err := db.SaveExperiment(ctx, e); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM experiment_settings WHERE experiment_id = ?`, e.ID); n != 1 {
		t.Errorf("after upsert: %d settings rows, want 1", n)
	}
	// Deleting the run deletes its settings.
	if _, err := db.wdb.Exec(`DELETE FROM runs`); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM experiment_settings`); n != 0 {
		t.Errorf("after deleting the run: %d settings rows, want 0", n)
	}
}

func TestSettingsInvalid(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	r := beginTest(t, db)
	for _, tc := range []struct {
		name string
		edit func([]Setting) []Setting
		want string
	}{
		{"twice", func(s []Setting) []Setting { return append(s, s[0]) }, `setting "prune.amount" given twice`},
		{"no name", func(s []Setting) []Setting { s[1].Name = ""; return s }, "setting with no name"},
	} {
		e := testExperiment(r.ID, "x", 1)
		e.Settings = tc.edit(testSettings())
		if err := db.SaveExperiment(ctx, e); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	if n := count(t, db, `SELECT COUNT(*) FROM experiments`); n != 0 {
		t.Errorf("failed saves left %d experiments", n)
	}
}

// TestSettingsOldDatabase checks that a database from before the settings
// table is refused read-only, upgraded read-write, and reads its
// experiments back with no settings.
func TestSettingsOldDatabase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "results.db")
	db := openAt(t, path)
	r := beginTest(t, db)
	if err := db.SaveExperiment(ctx, testExperiment(r.ID, "old", 1)); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DROP TABLE experiment_settings`,
		`DELETE FROM migrations WHERE name = '0003_experiment_settings.sql'`,
	} {
		if _, err := db.wdb.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	if _, err := OpenReadOnly(path); !errors.Is(err, errOlderSchema) {
		t.Errorf("OpenReadOnly before the migration: err = %v, want errOlderSchema", err)
	}
	db = openAt(t, path)
	exps, err := db.Experiments(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(exps) != 1 || exps[0].Settings != nil {
		t.Fatalf("old experiment read back %+v, want one without settings", exps)
	}
	if _, ok := exps[0].Setting("quantize.weight_bits"); ok {
		t.Error("an old experiment has quantize.weight_bits")
	}
}

// TestExportSettings checks the stage parameter columns of both exports:
// one per flat key of any experiment, sorted, between the experiment and
// the metric columns; empty (null) where a pipeline lacks the stage.
func TestExportSettings(t *testing.T) {
	s := exportSnapshot()
	s.Experiments[1].Settings = testSettings()[:2]
	s.Experiments[2].Settings = []Setting{
		{Name: "quantize.weight_bits", Technique: "quantize", Key: "weight_bits", Value: "8"},
		{Name: "quantize.calibrator", Technique: "quantize", Key: "calibrator", Value: "min,max"},
	}
	wantSettings := []string{"param:prune.amount", "param:prune.kind", "param:quantize.calibrator", "param:quantize.weight_bits"}
	cols := columns(s)
	if got := cols[len(fixedColumns) : len(fixedColumns)+len(wantSettings)]; !slices.Equal(got, wantSettings) {
		t.Errorf("setting columns %q, want %q (all: %q)", got, wantSettings, cols)
	}
	if next := cols[len(fixedColumns)+len(wantSettings)]; next != "top1" {
		t.Errorf("column after the settings %q, want the first metric top1", next)
	}
	wantCells := []map[string]any{
		{"param:prune.amount": nil, "param:prune.kind": nil, "param:quantize.calibrator": nil, "param:quantize.weight_bits": nil},
		{"param:prune.amount": "0.5", "param:prune.kind": "heads", "param:quantize.calibrator": nil, "param:quantize.weight_bits": nil},
		{"param:prune.amount": nil, "param:prune.kind": nil, "param:quantize.calibrator": "min,max", "param:quantize.weight_bits": "8"},
	}

	var buf bytes.Buffer
	if err := WriteCSV(&buf, s); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recs[0], cols) || len(recs) != 1+len(wantCells) {
		t.Fatalf("CSV header %q and %d records", recs[0], len(recs))
	}
	for i, want := range wantCells {
		for k, v := range want {
			cell := recs[1+i][slices.Index(cols, k)]
			if w, _ := v.(string); cell != w {
				t.Errorf("CSV row %d %s = %q, want %q", i, k, cell, w)
			}
		}
	}

	buf.Reset()
	if err := WriteJSON(&buf, s); err != nil {
		t.Fatal(err)
	}
	var objs []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &objs); err != nil {
		t.Fatal(err)
	}
	for i, want := range wantCells {
		for k, v := range want {
			if got, ok := objs[i][k]; !ok || got != v {
				t.Errorf("JSON row %d %s = %#v (present %t), want %#v", i, k, got, ok, v)
			}
		}
	}
}
