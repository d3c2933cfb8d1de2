package torchrt

import (
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// These check the build copy's fixes to gotch's memory handling
// (internal/gotchprep): with gotch's GC ballast gone, a tensor gotch itself
// forgets is never freed at all.

func residentBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	pages, err := strconv.ParseInt(strings.Fields(string(b))[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

// TestInPlaceOpFreesStorage: gotch's in-place ops swap in the new C handle
// libtorch returns; the old one, if not deleted, keeps the storage alive
// after the tensor is dropped.
func TestInPlaceOpFreesStorage(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	const n, mib = 20, 32
	before := residentBytes(t)
	for range n {
		x := ts.MustOnes([]int64{mib << 18}, gotch.Float, gotch.CPU) // 32 MiB
		x.MustMulScalar_(ts.FloatScalar(2))
		x.MustAdd_(x)
		x.MustDrop()
	}
	grew := residentBytes(t) - before
	if grew > 3*mib<<20 {
		t.Errorf("resident set grew %d MiB over %d dropped %d MiB tensors changed in place: their storage was not freed", grew>>20, n, mib)
	}
}

// TestValuesFreeTheirCopy: Float64Values and Int64Values copy the tensor
// to the wanted type first; the copy must be freed (on a training loss it
// holds the step's whole autograd graph).
func TestValuesFreeTheirCopy(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	x := ts.MustOnes([]int64{4}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	for _, tt := range []struct {
		name string
		read func()
	}{
		{"Float64Values", func() { _ = x.Float64Values() }},
		{"Int64Values", func() { _ = x.Int64Values() }},
	} {
		before := atomic.LoadInt64(&ts.LiveTensors)
		for range 10 {
			tt.read()
		}
		if left := atomic.LoadInt64(&ts.LiveTensors) - before; left != 0 {
			t.Errorf("%s left %d tensors alive over 10 calls", tt.name, left)
		}
	}
}
