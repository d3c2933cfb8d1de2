package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vitbench/vitbench/harness/config"
	"github.com/vitbench/vitbench/harness/plan"
	"github.com/vitbench/vitbench/harness/store"
	"github.com/vitbench/vitbench/techniques"
)

// settingsSuite has all.toml's shape of a fixed-width PTQ: weight_bits = 8
// written once, not swept; act_bits is swept, the rest left at defaults.
const settingsSuite = `
[suite]
name = "settings"
seed = 0

[models.vit]
arch = { img_size = 32, patch_size = 8, embed_dim = 32, depth = 1, num_heads = 2, mlp_ratio = 2.0 }
data = { name = "cifar10", train_size = 512, test_size = 100, val_size = 64 }
train = { epochs = 1, batch_size = 64 }

[[experiment]]
name = "ptq-w8a8"
model = "vit"
pipeline = [{ technique = "quantize", weight_bits = 8, act_bits = [8, 4] }]
`

// settingsDB plans settingsSuite with the real technique registry, stores
// its experiments as the runner records them, and returns the database's
// path and the plan.
func settingsDB(t *testing.T) (string, *plan.Plan) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	suite, err := config.Parse(strings.NewReader(settingsSuite), filepath.Join(dir, "suite.toml"), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Build(suite, "test")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "results.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := &store.Run{Machine: store.Machine{Hostname: "lab", CPU: "cpu", Cores: 2}, SuiteName: "settings",
		Device: "cpu", Started: time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)}
	if err := db.BeginRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	for _, e := range p.Experiments {
		rec := &store.Experiment{RunID: r.ID, Name: e.Name, Group: e.Group, Model: e.Model, Families: e.Families,
			Pipeline: e.Pipeline, Params: e.Params, Settings: storeSettings(e.Settings), Hash: e.Hash(), Status: store.StatusOK}
		if err := db.SaveExperiment(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	return path, p
}

// storeSettings is what the runner does with a plan's settings.
func storeSettings(in []plan.Setting) []store.Setting {
	out := make([]store.Setting, len(in))
	for i, s := range in {
		out[i] = store.Setting(s)
	}
	return out
}

// quantizeKeys are the flat keys of every quantize parameter, from the
// registry: the export must have them all, defaults included.
func quantizeKeys(t *testing.T) []string {
	t.Helper()
	tech, err := techniques.Lookup("quantize")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, s := range config.Settings(tech.NewConfig()) {
		keys = append(keys, "quantize."+s.Key)
	}
	return keys
}

func TestExportSettingsFixedWeightBits(t *testing.T) {
	path, p := settingsDB(t)
	if n := len(p.Experiments); n != 3 {
		t.Fatalf("planned %d experiments, want the baseline and two act_bits", n)
	}
	keys := quantizeKeys(t)
	for _, format := range []string{"csv", "json"} {
		t.Run(format, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := Main(context.Background(), []string{"export", "--db", path, "--format", format}, &stdout, &stderr); err != nil {
				t.Fatalf("bench export: %v\n%s", err, stderr.String())
			}
			// Each row as column -> cell; a JSON null reads as "<null>".
			var rows []map[string]string
			var head []string
			if format == "csv" {
				recs, err := csv.NewReader(&stdout).ReadAll()
				if err != nil {
					t.Fatal(err)
				}
				head = recs[0]
				for _, rec := range recs[1:] {
					row := map[string]string{}
					for i, c := range rec {
						row[head[i]] = c
					}
					rows = append(rows, row)
				}
			} else {
				var objs []map[string]any
				if err := json.Unmarshal(stdout.Bytes(), &objs); err != nil {
					t.Fatal(err)
				}
				for _, o := range objs {
					row := map[string]string{}
					for k, v := range o {
						if v == nil {
							row[k] = "<null>"
						} else if s, ok := v.(string); ok {
							row[k] = s
						}
					}
					rows = append(rows, row)
				}
			}
			if len(rows) != 3 {
				t.Fatalf("%d rows, want 3", len(rows))
			}
			for _, k := range keys {
				if format == "csv" && !slices.Contains(head, "param:"+k) {
					t.Errorf("no column param:%s in %q", k, head)
				}
			}
			none := map[string]string{"csv": "", "json": "<null>"}[format]
			for _, row := range rows {
				want := "8"
				if row["experiment"] == "vit" {
					want = none // the baseline has no quantize stage
				}
				if got := row["param:quantize.weight_bits"]; got != want {
					t.Errorf("%s: param:quantize.weight_bits = %q, want %q", row["experiment"], got, want)
				}
				if a := row["param:quantize.act_bits"]; row["experiment"] != "vit" && a != "8" && a != "4" {
					t.Errorf("%s: param:quantize.act_bits = %q, want 8 or 4", row["experiment"], a)
				}
			}
		})
	}
}

func TestListJSONSettings(t *testing.T) {
	path, _ := settingsDB(t)
	var stdout, stderr bytes.Buffer
	if err := Main(context.Background(), []string{"list", "--db", path, "--json"}, &stdout, &stderr); err != nil {
		t.Fatalf("bench list: %v\n%s", err, stderr.String())
	}
	var out struct {
		Runs []struct {
			Experiments []struct {
				Name     string
				Params   map[string]string
				Settings []struct {
					Name, Technique, Key, Value string
					Stage                       int
					Swept                       bool
				}
			}
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Runs) != 1 || len(out.Runs[0].Experiments) != 3 {
		t.Fatalf("list --json: %+v", out)
	}
	keys := quantizeKeys(t)
	for _, e := range out.Runs[0].Experiments {
		if e.Settings == nil {
			t.Errorf("%s: settings missing or null", e.Name)
		}
		if e.Name == "vit" {
			if len(e.Settings) != 0 {
				t.Errorf("baseline settings %+v, want []", e.Settings)
			}
			continue
		}
		var names []string
		for _, s := range e.Settings {
			names = append(names, s.Name)
			if s.Technique != "quantize" || s.Stage != 0 || s.Swept != (s.Key == "act_bits") {
				t.Errorf("%s: setting %+v", e.Name, s)
			}
			if s.Name == "quantize.weight_bits" && s.Value != "8" {
				t.Errorf("%s: weight_bits %q, want 8", e.Name, s.Value)
			}
		}
		if !slices.Equal(names, keys) {
			t.Errorf("%s: settings %q, want every quantize parameter in field order %q", e.Name, names, keys)
		}
		if _, ok := e.Params["weight_bits"]; ok {
			t.Errorf("%s: params %v hold the fixed weight_bits (want the swept only)", e.Name, e.Params)
		}
	}
}
