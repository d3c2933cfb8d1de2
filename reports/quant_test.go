package reports

import (
	"fmt"
	"html"
	"strings"
	"testing"

	"github.com/vitbench/vitbench/harness/store"
)

// mixedQuant is a 12-block model: qkv weights at 4 bits in blocks 0-3
// and 6, 8 bits elsewhere (a mixed-precision search), fc1 weights at 8
// bits everywhere, and two kinds of activation sites, one of a quantizer
// this package has never heard of.
func mixedQuant() *store.Quantization {
	q := &store.Quantization{Precision: "int",
		Mixed: &store.MixedSearch{Method: "hawq-v3", Budget: "size", BudgetBits: 6, Limit: 1000, Cost: 990, Choices: []int{4, 8}}}
	for b := range 12 {
		bits := 8
		if b <= 3 || b == 6 {
			bits = 4
		}
		q.Sites = append(q.Sites,
			store.QuantSite{Key: fmt.Sprintf("blocks.%d.attn.qkv.weight", b), Kind: store.SiteWeight, Quantizer: "uniform", Bits: bits, Axis: 0, Symmetric: true,
				Sensitivity: []float64{float64(b+1) * 1e-4, 1e-7}, Trace: 1e-3},
			store.QuantSite{Key: fmt.Sprintf("blocks.%d.mlp.fc1.weight", b), Kind: store.SiteWeight, Quantizer: "uniform", Bits: 8, Axis: 0, Symmetric: true,
				Sensitivity: []float64{2e-4, 2e-7}, Trace: 2e-3},
			store.QuantSite{Key: fmt.Sprintf("blocks.%d.attn_map", b), Kind: store.SiteAct, Quantizer: "log-sqrt2", Bits: 4, Axis: -1},
			store.QuantSite{Key: fmt.Sprintf("blocks.%d.norm1_in", b), Kind: store.SiteAct, Quantizer: "power-of-two-factor", Bits: 8, Axis: -1})
	}
	q.Sites = append(q.Sites, store.QuantSite{Key: "head.weight", Kind: store.SiteWeight, Quantizer: "uniform", Bits: 8, Axis: 0, Symmetric: true})
	return q
}

func TestQuantTable(t *testing.T) {
	tab, note := quantTable(mixedQuant())
	var got []string
	for _, r := range tab.Rows {
		var cells []string
		for _, c := range r {
			cells = append(cells, c.Text)
		}
		got = append(got, strings.Join(cells, " | "))
	}
	want := []string{
		"weight | blocks.*.attn.qkv.weight | uniform | 8 | per-channel(0) | yes | 4–5, 7–11",
		"weight | blocks.*.attn.qkv.weight | uniform | 4 | per-channel(0) | yes | 0–3, 6",
		"weight | blocks.*.mlp.fc1.weight | uniform | 8 | per-channel(0) | yes | all (12)",
		"weight | head.weight | uniform | 8 | per-channel(0) | yes | —",
		"act | blocks.*.attn_map | log-sqrt2 | 4 | per-tensor | no | all (12)",
		"act | blocks.*.norm1_in | power-of-two-factor | 8 | per-tensor | no | all (12)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(note, "49 quantized sites") || !strings.Contains(note, "hawq-v3") {
		t.Errorf("note %q", note)
	}
	if m := mixedTable(mixedQuant()); len(m.Rows) != 24 || len(m.Head) != 5 {
		t.Errorf("mixed table: %d rows, %d columns; want 24 searched weights, 5 columns", len(m.Rows), len(m.Head))
	}
	if tab, _ := quantTable(nil); len(tab.Rows) != 0 || tab.Empty == "" {
		t.Error("a float model's table is not empty with its note")
	}
}

func TestRenderQuantSites(t *testing.T) {
	snap := synthSnapshot()
	// Every run's experiment of that name (names repeat across runs).
	name := snap.Experiments[1].Name
	for i := range snap.Experiments {
		if snap.Experiments[i].Name == name {
			snap.Experiments[i].Quant = mixedQuant()
		}
	}
	files := readSite(t, render(t, snap, fakeAssets(t)))
	var pages []string
	for f, body := range files {
		if strings.HasPrefix(f, "exp-") && strings.Contains(body, html.EscapeString("Experiment "+name)) {
			pages = append(pages, body)
		}
	}
	if len(pages) == 0 {
		t.Fatalf("no page for experiment %s", name)
	}
	for _, page := range pages {
		for _, s := range []string{"Quantized sites", "blocks.*.attn.qkv.weight", "0–3, 6", "4–5, 7–11", "power-of-two-factor",
			"Mixed-precision search", "Ω at 4 bits", "blocks.11.attn.qkv.weight"} {
			if !strings.Contains(page, s) && !strings.Contains(page, html.EscapeString(s)) {
				t.Errorf("experiment page lacks %q", s)
			}
		}
	}
	for f, body := range files {
		if strings.HasPrefix(f, "exp-") && !strings.Contains(body, html.EscapeString("Experiment "+name)) && strings.Contains(body, "Mixed-precision search") {
			t.Errorf("%s shows a mixed-precision search it does not have", f)
		}
	}
}
