package torchrt

import (
	"runtime"
	"sync"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// TestGradEnabledLeavesNoThreadOff: GradEnabled turns grad mode off and
// back on; a goroutine moved to another OS thread between the two calls
// once left its first thread with autograd off, so that a later training
// or calibration pass there recorded no graph. Many unpinned goroutines
// asking at once must always see the default (on).
func TestGradEnabledLeavesNoThreadOff(t *testing.T) {
	const workers, calls = 16, 20000
	// Busy libtorch threads make the OS preempt a thread inside its cgo
	// call, which is when Go moves the goroutine to another thread.
	stop := make(chan struct{})
	var busy sync.WaitGroup
	for range 4 {
		busy.Add(1)
		go func() {
			defer busy.Done()
			a := ts.MustRand([]int64{256, 256}, gotch.Float, gotch.CPU)
			defer a.MustDrop()
			for {
				select {
				case <-stop:
					return
				default:
				}
				a.MustMatmul(a, false).MustDrop()
			}
		}()
	}
	defer func() { close(stop); busy.Wait() }()
	var wg sync.WaitGroup
	off := make([]int, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				if !GradEnabled() {
					off[w]++
				}
				if i%64 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, n := range off {
		total += n
	}
	if total > 0 {
		t.Errorf("grad mode found off %d times in %d calls on unpinned goroutines", total, workers*calls)
	}
}
