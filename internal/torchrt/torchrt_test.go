package torchrt

import (
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func TestThreads(t *testing.T) {
	old := NumThreads()
	if old < 1 {
		t.Fatalf("NumThreads() = %d, want >= 1", old)
	}
	defer SetNumThreads(old)
	SetNumThreads(1)
	if got := NumThreads(); got != 1 {
		t.Fatalf("after SetNumThreads(1): NumThreads() = %d", got)
	}
}

func TestManualSeedRepeats(t *testing.T) {
	draw := func() []float64 {
		ManualSeed(42)
		x := ts.MustRandn([]int64{5}, gotch.Float, gotch.CPU)
		defer x.MustDrop()
		return x.Float64Values()
	}
	a, b := draw(), draw()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different draws: %v vs %v", a, b)
		}
	}
	ManualSeed(43)
	c := ts.MustRandn([]int64{5}, gotch.Float, gotch.CPU)
	defer c.MustDrop()
	if c.Float64Values()[0] == a[0] {
		t.Fatalf("different seed, same draw")
	}
}
