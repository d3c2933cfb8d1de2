package reports

import (
	"math"
	"strings"
	"testing"
)

func TestPublishedEmbedded(t *testing.T) {
	srcs, err := published()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]*source{}
	for i := range srcs {
		ids[srcs[i].ID] = &srcs[i]
		if srcs[i].Cite == "" {
			t.Errorf("source %s has no citation", srcs[i].ID)
		}
	}
	for _, id := range []string{"ptq4vit", "fqvit", "repqvit", "deit", "tinyvit", "uvc", "dynamicvit", "tome", "soft"} {
		s := ids[id]
		if s == nil {
			t.Errorf("source %s missing", id)
			continue
		}
		p, err := plotSource(s, sourceName(s))
		if err != nil {
			t.Errorf("source %s: %v", id, err)
			continue
		}
		n := 0
		for _, ser := range p.Series {
			n += len(ser.Points)
		}
		if n == 0 {
			t.Errorf("source %s: no points", id)
		}
	}
}

// find returns the point of a source's plot whose label starts with
// label, in the series named series.
func find(t *testing.T, id, series, label string) litPoint {
	t.Helper()
	srcs, err := published()
	if err != nil {
		t.Fatal(err)
	}
	for i := range srcs {
		if srcs[i].ID != id {
			continue
		}
		p, err := plotSource(&srcs[i], sourceName(&srcs[i]))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range p.Series {
			if s.Name != series {
				continue
			}
			for _, pt := range s.Points {
				if strings.HasPrefix(pt.Label, label) {
					return pt
				}
			}
		}
		t.Fatalf("%s: no point %q in series %q", id, label, series)
	}
	t.Fatalf("no source %s", id)
	return litPoint{}
}

func TestPublishedRelativeTerms(t *testing.T) {
	tests := []struct {
		id, series, label string
		x, y              float64
	}{
		// PTQ4ViT, ViT-S/224: base PTQ W8A8 80.468 vs fp32 81.39.
		{"ptq4vit", "base PTQ", "ViT-S/224 base PTQ W8A8", 8, 80.468 - 81.39},
		{"ptq4vit", "PTQ4ViT", "ViT-B/224 PTQ4ViT W6A6", 6, 81.65 - 84.54},
		// RepQ-ViT, DeiT-S W4A4 69.03 vs 79.85.
		{"repqvit", "RepQ-ViT", "DeiT-S RepQ-ViT W4A4", 4, 69.03 - 79.85},
		// FQ-ViT, MinMax W8/A8/Attn8 on ViT-B: 23.64 vs 84.53.
		{"fqvit", "MinMax W8/A8/Attn8", "MinMax W8/A8/Attn8, ViT-B", 8, 23.64 - 84.53},
		// UVC against DeiT-S 79.8 at ratio 0.5041.
		{"uvc", "UVC", "UVC: 78.82%", 0.5041, 78.82 - 79.8},
		// ToMe ViT-B/16: 309 → 511 img/s, 84.57 → 82.60.
		{"tome", "ToMe", "ViT-B/16", 511.0 / 309, 82.60 - 84.57},
		// DeiT-S distilled (22M) against DeiT-B (86M, 81.8).
		{"deit", "distilled", "DeiT-S distilled", 22.0 / 86, 81.2 - 81.8},
		{"deit", "trained directly", "DeiT-Ti:", 5.0 / 86, 72.2 - 81.8},
		// TinyViT-5M against TinyViT-21M (84.8%).
		{"tinyvit", "TinyViT", "TinyViT-5M", 5.4 / 21, 80.7 - 84.8},
		// SOFT has no reference: absolute top-1 vs GMACs.
		{"soft", "SOFT-Small", "SOFT-Small", 3.3, 82.2},
	}
	for _, tt := range tests {
		p := find(t, tt.id, tt.series, tt.label)
		if math.Abs(p.X-tt.x) > 1e-9 || math.Abs(p.Y-tt.y) > 1e-9 {
			t.Errorf("%s %s: (%g, %g), want (%g, %g)", tt.id, tt.label, p.X, p.Y, tt.x, tt.y)
		}
	}
}

func TestParsePublishedErrors(t *testing.T) {
	tests := []struct {
		name, toml, want string
	}{
		{"ok", `[[source]]
id = "a"
cite = "A et al."
columns = ["model", "top1"]
rows = [["x", 1.5], ["y", 2]]`, ""},
		{"row length", `[[source]]
id = "a"
cite = "A"
columns = ["model", "top1"]
rows = [["x"]]`, `source "a": row 1 has 1 cells, want 2`},
		{"missing id", `[[source]]
cite = "A"
columns = ["m"]`, "missing id"},
		{"duplicate id", `[[source]]
id = "a"
cite = "A"
columns = ["m"]
[[source]]
id = "a"
cite = "B"
columns = ["m"]`, "duplicate id"},
		{"no citation", `[[source]]
id = "a"
columns = ["m"]`, "missing cite"},
		{"bad cell", `[[source]]
id = "a"
cite = "A"
columns = ["m"]
rows = [[true]]`, "neither a string nor a number"},
		{"unknown key", `[[source]]
id = "a"
cite = "A"
columns = ["m"]
year = 2021`, "unknown key"},
		{"syntax", `[[source]`, "parse published results"},
	}
	for _, tt := range tests {
		_, err := parsePublished(strings.NewReader(tt.toml))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestSourceName(t *testing.T) {
	for _, tt := range []struct {
		src  source
		want string
	}{
		{source{ID: "a", Name: "Alpha", Cite: "X et al., Beta: a method"}, "Alpha"},
		{source{ID: "a", Cite: "X et al., Beta: a method, 2021"}, "Beta"},
		{source{ID: "a", Cite: "X et al., A long title without a colon, 2021"}, "a"},
	} {
		if got := sourceName(&tt.src); got != tt.want {
			t.Errorf("sourceName(%+v) = %q, want %q", tt.src, got, tt.want)
		}
	}
}

func TestPlotSourceUnknownLayout(t *testing.T) {
	s := &source{ID: "x", Cite: "X", Columns: []string{"model", "score"}, Rows: [][]interface{}{{"a", 1.0}}}
	if _, err := plotSource(s, "X"); err == nil || !strings.Contains(err.Error(), "no chart for columns model, score") {
		t.Errorf("err = %v", err)
	}
}
