package reports

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/store"
)

func TestRenderWritesSite(t *testing.T) {
	snap := synthSnapshot()
	out := render(t, snap, fakeAssets(t))
	files := readSite(t, out)

	want := []string{IndexPage, "sweeps.html", "combinations.html", "machines.html", "literature.html", EChartsScript}
	var tradeoffs []string
	for name := range files {
		if strings.HasPrefix(name, "tradeoff-") {
			tradeoffs = append(tradeoffs, name)
		}
	}
	sort.Strings(tradeoffs)
	if len(tradeoffs) != 2 {
		t.Fatalf("trade-off pages = %v, want one per (data set, model): 2", tradeoffs)
	}
	want = append(want, tradeoffs...)
	for _, name := range want {
		if _, ok := files[name]; !ok {
			t.Errorf("missing %s", name)
		}
	}
	exps := 0
	for name := range files {
		if strings.HasPrefix(name, "exp-") {
			exps++
		}
	}
	if exps != len(snap.Experiments) {
		t.Errorf("experiment pages = %d, want %d", exps, len(snap.Experiments))
	}

	index := files[IndexPage]
	for _, s := range []string{
		"cifar10-vit", "laptop", "server", // suite, machines
		`class="sortable"`, "Δ top-1 (pts)", "MACs (G)", "p50 latency (ms)", "speed-up [95%]", "executed",
		"geomean vs baseline",
		"Within half the baseline", // findings
		"Ranked", "rank",           // the ranked table
		"Pareto front",
		"combo/prune-kd-int8",
		"GMACs", // the MACs note
	} {
		if !strings.Contains(index, s) {
			t.Errorf("index.html lacks %q", s)
		}
	}
	// Every page loads the script by relative path and nothing else.
	for _, name := range htmlPages(files) {
		page := files[name]
		if strings.Contains(page, "chart-1") && !strings.Contains(page, `<script src="echarts.min.js"></script>`) {
			t.Errorf("%s has charts but does not load echarts.min.js by relative path", name)
		}
	}
	// The second run lacks two experiments: the machines page warns.
	if m := files["machines.html"]; !strings.Contains(m, "experiment sets differ") {
		t.Errorf("machines.html does not warn that the runs' experiment sets differ")
	}
	// Speed figures are read against each run's SIMD flags and int8 kernels.
	for _, s := range []string{">SIMD<", "avx512_vnni", ">int8 engine<", "oneDNN 2.6.3 avx512_core_vnni"} {
		if !strings.Contains(files["machines.html"], s) {
			t.Errorf("machines.html lacks %q", s)
		}
	}
	lit := files["literature.html"]
	for _, s := range []string{"published (ImageNet-1k, authors' numbers)", "measured (laptop, cifar10)", "PTQ4ViT", "Yuan et al."} {
		if !strings.Contains(lit, s) {
			t.Errorf("literature.html lacks %q", s)
		}
	}
}

// TestNoNetworkURLs checks that no written file refers to a script, style,
// font or image over the network.
func TestNoNetworkURLs(t *testing.T) {
	assets := filepath.Join("..", DefaultAssetsDir) // the real script, when set up
	if _, err := os.Stat(filepath.Join(assets, EChartsScript)); err != nil {
		assets = fakeAssets(t)
	}
	out := render(t, synthSnapshot(), assets)
	attr := regexp.MustCompile(`(?i)\b(src|href|srcset|action|poster|data)\s*=\s*["']?\s*(https?:)?//`)
	css := regexp.MustCompile(`(?i)(url\(\s*["']?\s*(https?:)?//|@import\s+["']?(https?:)?//)`)
	for name, content := range readSite(t, out) {
		if m := attr.FindString(content); m != "" {
			t.Errorf("%s: network reference %q", name, m)
		}
		if m := css.FindString(content); m != "" {
			t.Errorf("%s: network reference in CSS %q", name, m)
		}
		if strings.HasSuffix(name, ".html") && (strings.Contains(content, "go-echarts.github.io") || strings.Contains(content, "cdn")) {
			t.Errorf("%s mentions a CDN", name)
		}
	}
}

func TestRenderEscapesNames(t *testing.T) {
	const evil = `<script>alert(1)</script>`
	snap := synthSnapshot()
	for i := range snap.Experiments {
		e := &snap.Experiments[i]
		if e.Name == "ptq/w8a8" && e.RunID == 1 && e.Dataset == "cifar10" {
			e.Name = evil
			e.Pipeline = evil + " → quantize"
			e.Params = map[string]string{"weight_bits": "8", "act_bits": evil}
			e.Group = evil
			e.SpecJSON = `{"name":"` + evil + `"}`
			e.Curves = append(e.Curves, store.Point{Series: evil, Step: 1, Value: 1})
			e.Layers = append(e.Layers, store.Layer{Name: evil, Kind: evil})
		}
		if e.Name == "prune/tokens" {
			e.Error = evil
		}
		if e.Name == "lowrank/r50" && e.RunID == 2 {
			e.Dataset = evil
			e.Model = evil
		}
	}
	snap.Runs[1].Machine.Hostname = evil
	snap.Runs[1].SuiteName = evil
	out := render(t, snap, fakeAssets(t))
	files := readSite(t, out)
	found := 0
	for name, content := range files {
		if name == EChartsScript {
			continue
		}
		if strings.Contains(content, evil) {
			t.Errorf("%s contains the name unescaped", name)
		}
		if strings.Contains(strings.ToLower(content), "<script>alert") {
			t.Errorf("%s contains an unescaped script tag", name)
		}
		if strings.Contains(content, "alert(1)") {
			found++
		}
	}
	// The name must still be shown (escaped), on the index, the trade-off
	// page's chart option, its own page, the sweeps and the machines page.
	if found < 5 {
		t.Errorf("the escaped name appears in %d files, want it shown on at least 5", found)
	}
	if !strings.Contains(files[IndexPage], "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("index.html does not show the name HTML-escaped")
	}
	var tradeoff string
	for name, c := range files {
		if strings.HasPrefix(name, "tradeoff-cifar10") {
			tradeoff = c
		}
	}
	// In chart options the tooltip is HTML-escaped, then JSON-escaped.
	if !strings.Contains(tradeoff, `\u0026lt;script\u0026gt;alert(1)`) {
		t.Errorf("trade-off chart tooltip does not carry the escaped name")
	}
}

func TestRenderEmptyAndPartial(t *testing.T) {
	assets := fakeAssets(t)
	oneRun := synthSnapshot()
	oneRun.Runs = oneRun.Runs[:1]
	var exps []store.Experiment
	for _, e := range oneRun.Experiments {
		if e.RunID == 1 {
			exps = append(exps, e)
		}
	}
	oneRun.Experiments = exps
	// A baseline that failed: no budgets can be stated in its group.
	noBase := &store.Snapshot{Runs: oneRun.Runs[:1]}
	for _, e := range oneRun.Experiments[:4] {
		if e.Name == "baseline" {
			e.Status, e.Error, e.Metrics = store.StatusFailed, "train: loss is NaN", nil
		}
		noBase.Experiments = append(noBase.Experiments, e)
	}
	// Metrics missing: only top-1 recorded.
	sparse := &store.Snapshot{Runs: oneRun.Runs[:1]}
	for _, e := range oneRun.Experiments[:3] {
		e.Metrics = []metrics.Metric{metrics.New(metrics.Top1, 50)}
		e.Layers, e.Curves, e.SpecJSON = nil, nil, ""
		sparse.Experiments = append(sparse.Experiments, e)
	}
	// An experiment whose run is not in the snapshot.
	orphan := &store.Snapshot{Experiments: oneRun.Experiments[:2]}

	tests := []struct {
		name string
		snap *store.Snapshot
		want map[string][]string // page (prefix) -> texts it must contain
	}{
		{"nil", nil, map[string][]string{
			IndexPage:         {"holds no runs", "No findings"},
			"machines.html":   {"No runs recorded"},
			"sweeps.html":     {"No sweeps"},
			"literature.html": {"No measured quantize experiment yet"},
		}},
		{"empty", &store.Snapshot{}, map[string][]string{IndexPage: {"holds no runs"}}},
		{"one run", oneRun, map[string][]string{
			"machines.html":      {"One run: to compare machines"},
			IndexPage:            {"1 experiment did not succeed and is left out: prune/tokens"},
			"exp-1-prune-tokens": {"out of memory", "not recorded: the experiment failed"},
			"tradeoff-cifar10":   {"combo/lowrank-int8 (missing metric)"},
		}},
		{"failed baseline", noBase, map[string][]string{
			IndexPage:        {"No successful baseline"},
			"exp-1-baseline": {"train: loss is NaN"},
		}},
		{"missing metrics", sparse, map[string][]string{
			IndexPage:        {"No successful experiment has both top-1 and executed MACs"},
			"exp-1-baseline": {"No per-layer counts were recorded", "No training or fine-tuning curve", "No resolved spec", "latency p50, batch 1 (latency_p50): not recorded"},
		}},
		{"orphans", orphan, map[string][]string{IndexPage: {"belong to no run"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := readSite(t, render(t, tt.snap, assets))
			for _, p := range []string{IndexPage, "sweeps.html", "combinations.html", "machines.html", "literature.html"} {
				if !strings.Contains(files[p], "</html>") {
					t.Errorf("%s not written completely", p)
				}
			}
			for prefix, texts := range tt.want {
				var page, pname string
				for name, c := range files {
					if strings.HasPrefix(name, prefix) {
						page, pname = c, name
						break
					}
				}
				if pname == "" {
					t.Errorf("no page %s*", prefix)
					continue
				}
				for _, s := range texts {
					if !strings.Contains(page, s) {
						t.Errorf("%s lacks %q", pname, s)
					}
				}
			}
		})
	}
}

func TestRenderMissingAssets(t *testing.T) {
	err := Render(&store.Snapshot{}, Options{OutDir: t.TempDir(), AssetsDir: filepath.Join(t.TempDir(), "none")})
	if !errors.Is(err, errNoAssets) {
		t.Fatalf("err = %v, want errNoAssets", err)
	}
	if !strings.Contains(err.Error(), "scripts/assets.sh") {
		t.Errorf("error %q does not name scripts/assets.sh", err)
	}
	if err := Render(nil, Options{}); err == nil {
		t.Errorf("Render without OutDir: no error")
	}
}

func TestRenderRemovesStalePages(t *testing.T) {
	assets := fakeAssets(t)
	out := filepath.Join(t.TempDir(), "report")
	if err := Render(synthSnapshot(), Options{OutDir: out, AssetsDir: assets}); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(out, "notes.html")
	if err := os.WriteFile(keep, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Render(&store.Snapshot{}, Options{OutDir: out, AssetsDir: assets}); err != nil {
		t.Fatal(err)
	}
	files := readSite(t, out)
	for name := range files {
		if strings.HasPrefix(name, "exp-") || strings.HasPrefix(name, "tradeoff-") {
			t.Errorf("stale page %s left behind", name)
		}
	}
	if _, ok := files["notes.html"]; !ok {
		t.Errorf("a file the report did not write was removed")
	}
}

// TestRenderDescriptions checks that the suite's, the models' and the
// experiments' descriptions reach the overview and the experiment pages.
func TestRenderDescriptions(t *testing.T) {
	snap := synthSnapshot()
	for i := range snap.Runs {
		snap.Runs[i].SuiteDescription = "every family on a CIFAR ViT"
	}
	for i := range snap.Experiments {
		e := &snap.Experiments[i]
		e.ModelDescription = "ViT with 4x4 patches"
		if e.Group == "ptq" {
			e.Description = "post-training quantization at three widths"
		}
	}
	files := readSite(t, render(t, snap, fakeAssets(t)))
	index := files[IndexPage]
	for _, s := range []string{"every family on a CIFAR ViT", "Baseline model: ViT with 4x4 patches.", "What was run", "post-training quantization at three widths"} {
		if !strings.Contains(index, s) {
			t.Errorf("index.html lacks %q", s)
		}
	}
	found := false
	for name, page := range files {
		if strings.HasPrefix(name, "exp-") && strings.Contains(name, "ptq") {
			found = strings.Contains(page, "post-training quantization at three widths") && strings.Contains(page, "ViT with 4x4 patches")
			if !found {
				t.Errorf("%s lacks the experiment's or the model's description", name)
			}
			break
		}
	}
	if !found {
		t.Error("no ptq experiment page with descriptions")
	}
}
