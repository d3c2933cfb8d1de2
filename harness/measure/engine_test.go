package measure_test

import (
	"slices"
	"testing"

	"github.com/vitbench/vitbench/harness/config"
	"github.com/vitbench/vitbench/harness/measure"
	"github.com/vitbench/vitbench/harness/store"
)

func TestResolveEngine(t *testing.T) {
	for _, tt := range []struct {
		asked   string
		threads int
		cpu     bool
		want    string
		split   int
	}{
		{"", 2, true, measure.EngineAuto, 2}, // auto: split passes available, chosen per model and batch
		{"", 8, true, measure.EngineAuto, 8},
		{measure.EngineAuto, 2, true, measure.EngineAuto, 2},
		{measure.EngineAuto, 1, true, measure.EngineEager, 0},
		{measure.EngineAuto, 4, false, measure.EngineEager, 0},
		{measure.EngineSplit, 4, true, measure.EngineSplit, 4},
		{measure.EngineEager, 4, true, measure.EngineEager, 0},
		{"", 1, true, measure.EngineEager, 0},                  // one thread: nothing to split
		{measure.EngineSplit, 1, true, measure.EngineEager, 0}, // asked for, but nothing to split
		{"", 0, true, measure.EngineEager, 0},
		{"", 4, false, measure.EngineEager, 0}, // CUDA: one stream of kernels
		{measure.EngineSplit, 4, false, measure.EngineEager, 0},
	} {
		got := measure.ResolveEngine(tt.asked, tt.threads, tt.cpu)
		if got != tt.want {
			t.Errorf("ResolveEngine(%q, %d, cpu %v) = %q, want %q", tt.asked, tt.threads, tt.cpu, got, tt.want)
		}
		if split := measure.SplitFor(got, tt.threads); split != tt.split {
			t.Errorf("SplitFor(%q, %d) = %d, want %d", got, tt.threads, split, tt.split)
		}
	}
}

// TestEnginesAgree checks that the names a suite's [suite.measure] engine
// key accepts (harness/config, which does not link the timing code) are
// the engines of this package, that a suite's default engine is the one
// ResolveEngine takes when none is asked for, and that the store reads a
// run without an engine as eager.
func TestEnginesAgree(t *testing.T) {
	if !slices.Equal(config.Engines, measure.Engines) {
		t.Errorf("config.Engines = %q, measure.Engines = %q", config.Engines, measure.Engines)
	}
	if config.EngineSplit != measure.EngineSplit || config.EngineEager != measure.EngineEager || config.EngineAuto != measure.EngineAuto {
		t.Errorf("config engines %q, %q; measure engines %q, %q",
			config.EngineSplit, config.EngineEager, measure.EngineSplit, measure.EngineEager)
	}
	for _, threads := range []int{1, 2} {
		def, none := measure.ResolveEngine(config.DefaultMeasure().Engine, threads, true), measure.ResolveEngine("", threads, true)
		if def != none {
			t.Errorf("%d threads: the suite default resolves to %q, no engine asked for to %q", threads, def, none)
		}
	}
	if got := new(store.Run).TimedEngine(); got != measure.EngineEager {
		t.Errorf("a stored run without an engine reads as %q, want %q", got, measure.EngineEager)
	}
}
