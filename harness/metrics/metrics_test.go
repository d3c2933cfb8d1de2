package metrics

import "testing"

func TestSiblings(t *testing.T) {
	for _, c := range []struct {
		name, metric, kind string
		ok                 bool
		label              string
	}{
		{Lo(Top1), Top1, "lo", true, "top-1 (%), 95% low"},
		{Hi(LatencyP50), LatencyP50, "hi", true, "latency p50, batch 1, 95% high"},
		{P(Top1Delta), Top1Delta, "p", true, "p-value of Δ top-1 vs baseline (points)"},
		{"custom_lo", "", "", false, ""},
		{Top1, "", "", false, "top-1 (%)"},
	} {
		metric, kind, ok := Of(c.name)
		if metric != c.metric || kind != c.kind || ok != c.ok {
			t.Errorf("Of(%q) = %q, %q, %v; want %q, %q, %v", c.name, metric, kind, ok, c.metric, c.kind, c.ok)
		}
		if i, _ := Lookup(c.name); i.Label != c.label {
			t.Errorf("Lookup(%q).Label = %q, want %q", c.name, i.Label, c.label)
		}
	}
	if m := New(Lo(Top1), 69.3); m.Unit != UnitPercent {
		t.Errorf("New(top1_lo).Unit = %q, want %q", m.Unit, UnitPercent)
	}
}
