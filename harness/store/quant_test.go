package store

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func testQuant() *Quantization {
	return &Quantization{
		Precision: "int",
		Sites: []QuantSite{
			{Key: "blocks.0.attn.qkv.weight", Kind: SiteWeight, Quantizer: "uniform", Bits: 4, Axis: 0, Symmetric: true,
				Sensitivity: []float64{3e-4, 1e-7}, Trace: 6.5e-4},
			{Key: "blocks.0.attn_map", Kind: SiteAct, Quantizer: "log-sqrt2", Bits: 4, Axis: -1},
			{Key: "blocks.0.norm1_in", Kind: SiteAct, Quantizer: "power-of-two-factor", Bits: 8, Axis: -1},
		},
		Mixed: &MixedSearch{Method: "hawq-v3", Budget: "size", BudgetBits: 6, Limit: 100, Cost: 96, Choices: []int{4, 8}},
	}
}

func TestQuantSitesRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := openAt(t, filepath.Join(t.TempDir(), "results.db"))
	defer db.Close()
	r := beginTest(t, db)
	q := testQuant()
	tests := []struct {
		name  string
		quant *Quantization
	}{
		{"float", nil},
		{"mixed", q},
		{"cast", &Quantization{Precision: "bf16", Sites: []QuantSite{}}},
	}
	for _, tt := range tests {
		e := testExperiment(r.ID, "q/"+tt.name, 1)
		e.Quant = tt.quant
		if err := db.SaveExperiment(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	exps, err := db.Experiments(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		if !reflect.DeepEqual(exps[i].Quant, tt.quant) {
			t.Errorf("%s: read back %+v, want %+v", tt.name, exps[i].Quant, tt.quant)
		}
	}
	var buf bytes.Buffer
	if err := WriteCSV(&buf, &Snapshot{Experiments: exps}); err != nil {
		t.Fatal(err)
	}
	want := "blocks.0.attn.qkv.weight=uniform/4/per-channel(0)/sym; blocks.0.attn_map=log-sqrt2/4/per-tensor; blocks.0.norm1_in=power-of-two-factor/8/per-tensor"
	if !strings.Contains(buf.String(), want) || !strings.Contains(buf.String(), ",quant_sites,") {
		t.Errorf("csv lacks the quant_sites column or %q:\n%s", want, buf.String())
	}
}

// TestQuantSitesOldDatabase checks that a database from before migration
// 0006 is refused read-only, upgraded read-write, reads its experiments
// back without sites, and stores sites after.
func TestQuantSitesOldDatabase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "results.db")
	db := openAt(t, path)
	r := beginTest(t, db)
	if err := db.SaveExperiment(ctx, testExperiment(r.ID, "old", 1)); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`ALTER TABLE experiments DROP COLUMN quant_sites`,
		`DELETE FROM migrations WHERE name = '0006_quant_sites.sql'`,
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
	defer db.Close()
	exps, err := db.Experiments(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(exps) != 1 || exps[0].Quant != nil {
		t.Fatalf("old experiment read back %+v, want one without sites", exps)
	}
	e := testExperiment(r.ID, "new", 2)
	e.Quant = testQuant()
	if err := db.SaveExperiment(ctx, e); err != nil {
		t.Fatal(err)
	}
	if exps, err = db.Experiments(ctx, r.ID); err != nil || len(exps) != 2 || !reflect.DeepEqual(exps[1].Quant, e.Quant) {
		t.Fatalf("after the migration: %v, %+v", err, exps)
	}
}
