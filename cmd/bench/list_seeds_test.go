package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/stats"
	"github.com/vitbench/vitbench/harness/store"
)

// seedsDB writes a run with experiment q at seeds 0, 1 and 2 (top-1 70,
// 72, 74) and an older row without a seed.
func seedsDB(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "results.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := &store.Run{SuiteName: "s", Device: "cpu"}
	if err := db.BeginRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	for i, top1 := range []float64{70, 72, 74} {
		seed := int64(i)
		e := &store.Experiment{RunID: r.ID, Name: fmt.Sprintf("q/seed%d", i), Replica: "q", Seed: &seed, Group: "q",
			Status: store.StatusOK, Metrics: []metrics.Metric{metrics.New(metrics.Top1, top1), metrics.New(metrics.Top1Delta, top1-71), metrics.New(metrics.Params, 1000)}}
		if err := db.SaveExperiment(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.SaveExperiment(ctx, &store.Experiment{RunID: r.ID, Name: "old", Status: store.StatusOK}); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestListSeeds(t *testing.T) {
	path := seedsDB(t)
	mean := stats.Mean([]float64{70, 72, 74})
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, out string)
	}{
		{"text: a mean row after the last replica", []string{"list", "--db", path}, func(t *testing.T, out string) {
			// The delta's half-width is unsigned: "+1.00 ±2.48", not "±+2.48".
			want := fmt.Sprintf("q (mean of 3 seeds) ok 72.00 ±%.2f +1.00 ±%.2f 1.0K -", mean.Hi-72, mean.Hi-72)
			lines := strings.Split(out, "\n")
			for i, line := range lines {
				if strings.Join(strings.Fields(line), " ") == want {
					if !strings.HasPrefix(strings.TrimSpace(lines[i-1]), "q/seed2") {
						t.Errorf("the mean row follows %q, want q/seed2", lines[i-1])
					}
					return
				}
			}
			t.Errorf("no line %q in:\n%s", want, out)
		}},
		{"json: seeds and replica sets", []string{"list", "--db", path, "--json"}, func(t *testing.T, out string) {
			var got struct {
				Runs []struct {
					Experiments []struct {
						Name    string
						Replica string
						Seed    *int64
					}
					Replicas []struct {
						Name        string
						Seeds       []int64
						Experiments []string
						Metrics     map[string]struct {
							Mean, Lo, Hi *float64
							N            int
						}
					}
				}
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out)
			}
			exps := got.Runs[0].Experiments
			if exps[1].Replica != "q" || exps[1].Seed == nil || *exps[1].Seed != 1 || exps[3].Seed != nil || exps[3].Replica != "old" {
				t.Errorf("experiments %+v", exps)
			}
			sets := got.Runs[0].Replicas
			if len(sets) != 1 || sets[0].Name != "q" || len(sets[0].Seeds) != 3 || len(sets[0].Experiments) != 3 {
				t.Fatalf("replica sets %+v", sets)
			}
			top1 := sets[0].Metrics["top1"]
			if top1.Mean == nil || *top1.Mean != 72 || top1.N != 3 || top1.Lo == nil || *top1.Lo != mean.Lo || *top1.Hi != mean.Hi {
				t.Errorf("top1 mean %+v, want %+v", top1, mean)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := Main(context.Background(), tt.args, &stdout, &stderr); err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
			tt.check(t, stdout.String())
		})
	}
}
