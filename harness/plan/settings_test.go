package plan

import (
	"reflect"
	"testing"
)

// TestSettings checks that every experiment carries every parameter of
// every stage, defaults included, in pipeline and field order, with the
// swept ones marked and a technique's second stage keyed "technique#2.".
func TestSettings(t *testing.T) {
	p := build(t, header+`
[[experiment]]
name = "fixed"
model = "vit"
pipeline = [{ technique = "fquantize", weight_bits = 8 }]

[[experiment]]
name = "sweep"
model = "vit"
pipeline = [
  { technique = "fprune", amount = [0.25, 0.5] },
  { technique = "fquantize", weight_bits = 4, groups = ["qkv", "fc1"] },
  { technique = "fquantize", act_bits = [6] },
]
`)
	q := func(name string, stage int, key, value string, swept bool) Setting {
		return Setting{Name: name, Stage: stage, Technique: "fquantize", Key: key, Value: value, Swept: swept}
	}
	pr := func(key, value string, swept bool) Setting {
		return Setting{Name: "fprune." + key, Stage: 0, Technique: "fprune", Key: key, Value: value, Swept: swept}
	}
	tests := []struct {
		experiment string
		want       []Setting
	}{
		{"vit", nil}, // a baseline has no stages
		{"fixed", []Setting{
			q("fquantize.weight_bits", 0, "weight_bits", "8", false),
			q("fquantize.act_bits", 0, "act_bits", "8", false), // defaults from NewConfig
			q("fquantize.calibrator", 0, "calibrator", "minmax", false),
			q("fquantize.per_channel", 0, "per_channel", "false", false),
			q("fquantize.groups", 0, "groups", "[]", false),
		}},
		{"sweep/a0.5", []Setting{
			pr("amount", "0.5", true),
			pr("kind", "heads", false),
			pr("epochs", "0", false),
			pr("steps", "4", false),
			q("fquantize.weight_bits", 1, "weight_bits", "4", false),
			q("fquantize.act_bits", 1, "act_bits", "8", false),
			q("fquantize.calibrator", 1, "calibrator", "minmax", false),
			q("fquantize.per_channel", 1, "per_channel", "false", false),
			q("fquantize.groups", 1, "groups", "[qkv,fc1]", false),
			q("fquantize#2.weight_bits", 2, "weight_bits", "8", false),
			q("fquantize#2.act_bits", 2, "act_bits", "6", true), // a one-value list is swept
			q("fquantize#2.calibrator", 2, "calibrator", "minmax", false),
			q("fquantize#2.per_channel", 2, "per_channel", "false", false),
			q("fquantize#2.groups", 2, "groups", "[]", false),
		}},
	}
	// The sweep's experiments are found by group and amount, whatever
	// their generated names.
	byName := map[string]*Experiment{}
	for _, e := range p.Experiments {
		name := e.Name
		if e.Group == "sweep" {
			name = "sweep/a" + e.Params["amount"]
		}
		byName[name] = e
	}
	for _, tt := range tests {
		e := byName[tt.experiment]
		if e == nil {
			t.Errorf("no experiment %s in %v", tt.experiment, experimentNames(p))
			continue
		}
		if !reflect.DeepEqual(e.Settings, tt.want) {
			t.Errorf("%s: Settings =\n%+v\nwant\n%+v", tt.experiment, e.Settings, tt.want)
		}
	}
	// Params still hold only the swept parameters, for sweep curves.
	if got, want := byName["fixed"].Params, map[string]string{}; !reflect.DeepEqual(got, want) {
		t.Errorf("fixed: Params = %v, want %v", got, want)
	}
	if got, want := byName["sweep/a0.5"].Params, map[string]string{"amount": "0.5", "act_bits": "6"}; !reflect.DeepEqual(got, want) {
		t.Errorf("sweep/a0.5: Params = %v, want %v", got, want)
	}
}

func TestSettingName(t *testing.T) {
	tests := []struct {
		technique  string
		occurrence int
		key, want  string
	}{
		{"quantize", 1, "weight_bits", "quantize.weight_bits"},
		{"quantize", 2, "weight_bits", "quantize#2.weight_bits"},
		{"prune", 3, "amount", "prune#3.amount"},
	}
	for _, tt := range tests {
		if got := settingName(tt.technique, tt.occurrence, tt.key); got != tt.want {
			t.Errorf("settingName(%q, %d, %q) = %q, want %q", tt.technique, tt.occurrence, tt.key, got, tt.want)
		}
	}
}
