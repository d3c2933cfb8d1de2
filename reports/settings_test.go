package reports

import (
	"math"
	"strings"
	"testing"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/store"
)

// TestLiteratureMeasuredQuantize checks which measured quantize
// experiments the literature's quantization charts place, and where: the
// weight width comes from the stored setting quantize.weight_bits only,
// fixed or swept; nothing is guessed from swept-parameter names or layers.
func TestLiteratureMeasuredQuantize(t *testing.T) {
	quant := func(settings ...string) []store.Setting {
		var out []store.Setting
		for _, kv := range settings {
			k, v, _ := strings.Cut(kv, "=")
			out = append(out, store.Setting{Name: "quantize." + k, Technique: "quantize", Key: k, Value: v})
		}
		return out
	}
	tests := []struct {
		name     string
		settings []store.Setting
		params   map[string]string
		bits     int // a layer's stored width
		top1     float64
		wantX    float64 // 0: not placed, counted as missing
	}{
		// all.toml's fixed-width PTQ: nothing swept but the calibrator.
		{name: "ptq-w8a8/minmax", settings: quant("weight_bits=8", "act_bits=8", "calibrator=minmax"),
			params: map[string]string{"calibrator": "minmax"}, top1: 79.5, wantX: 8},
		{name: "weight-only/w4", settings: func() []store.Setting {
			s := quant("weight_bits=4", "act_bits=0")
			s[0].Swept = true
			return s
		}(), params: map[string]string{"weight_bits": "4"}, top1: 75, wantX: 4},
		// Stored before settings: the old guesses are gone.
		{name: "old/w6", params: map[string]string{"weight_bits": "6"}, bits: 6, top1: 77},
		// A float cast has the default weight_bits but no integer weights.
		{name: "bf16", settings: quant("weight_bits=8", "precision=bf16"), top1: 80},
		{name: "float-weights", settings: quant("weight_bits=32", "act_bits=8"), top1: 79.9},
	}
	run := store.Run{ID: 1, UUID: "u", Machine: store.Machine{Hostname: "lab", CPU: "cpu"}, Status: store.StatusOK}
	exps := []store.Experiment{{RunID: 1, Name: "base", Model: "vit", Dataset: "cifar10", Status: store.StatusOK,
		Metrics: []metrics.Metric{metrics.New(metrics.Top1, 80)}}}
	for _, tt := range tests {
		e := store.Experiment{RunID: 1, Name: tt.name, Model: "vit", Dataset: "cifar10", Baseline: "base",
			Families: []string{"quantize"}, Status: store.StatusOK, Settings: tt.settings, Params: tt.params,
			Metrics: []metrics.Metric{metrics.New(metrics.Top1, tt.top1)}}
		if tt.bits > 0 {
			e.Layers = []store.Layer{{Name: "blocks.0.attn.qkv", Kind: "linear", Bits: tt.bits}}
		}
		exps = append(exps, e)
	}
	v := newView([]store.Run{run}, exps)

	srcs, err := published()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ptq4vit", "fqvit"} { // the wide and the long layout
		var plot *litPlot
		for i := range srcs {
			if srcs[i].ID == id {
				if plot, err = plotSource(&srcs[i], sourceName(&srcs[i])); err != nil {
					t.Fatal(err)
				}
			}
		}
		if plot == nil || plot.family != familyQuantize {
			t.Fatalf("%s: no quantization plot (%+v)", id, plot)
		}
		groups, missing := measuredSeries(plot, v.current)
		if len(groups) != 1 || groups[0].Dataset != "cifar10" {
			t.Fatalf("%s: measured groups %+v, want one for cifar10", id, groups)
		}
		placed := map[string]measuredPoint{}
		for _, pt := range groups[0].Points {
			placed[pt.Row.exp.Name] = pt
		}
		wantMissing := 0
		for _, tt := range tests {
			pt, ok := placed[tt.name]
			switch {
			case tt.wantX == 0 && ok:
				t.Errorf("%s: %s placed at x = %g, want not placed", id, tt.name, pt.X)
			case tt.wantX == 0:
				wantMissing++
			case !ok:
				t.Errorf("%s: %s not placed, want x = %g", id, tt.name, tt.wantX)
			case pt.X != tt.wantX || math.Abs(pt.Y-(tt.top1-80)) > 1e-9:
				t.Errorf("%s: %s at (%g, %g), want (%g, %g)", id, tt.name, pt.X, pt.Y, tt.wantX, tt.top1-80)
			}
		}
		if missing != wantMissing {
			t.Errorf("%s: %d experiments counted as lacking values, want %d", id, missing, wantMissing)
		}
	}
}

// TestExperimentPageSettings checks that an experiment's page lists every
// stage parameter, the swept ones marked.
func TestExperimentPageSettings(t *testing.T) {
	snap := synthSnapshot()
	files := readSite(t, render(t, snap, fakeAssets(t)))
	var page string
	for name, body := range files {
		if strings.HasPrefix(name, "exp-1-combo") && strings.Contains(body, "prune(heads=0.5) → distill(T=4) → quantize(w8a8)") {
			page = body
		}
	}
	if page == "" {
		t.Fatal("no page for combo/prune-kd-int8")
	}
	for _, want := range []string{
		"<h2>Parameters</h2>",
		`<td class="num">3</td><td>quantize</td><td>weight_bits</td><td>8</td><td></td><td>quantize.weight_bits</td>`,
		`<td>calibrator</td><td>minmax</td>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("combo page lacks %q", want)
		}
	}
	for name, body := range files {
		if strings.HasPrefix(name, "exp-1-ptq-w4a4") {
			if want := `<td>weight_bits</td><td class="swept">4</td><td>swept</td>`; !strings.Contains(body, want) {
				t.Errorf("%s lacks %q", name, want)
			}
		}
	}
}
