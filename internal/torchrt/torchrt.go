// Package torchrt reaches the few libtorch runtime controls that gotch
// v0.9.1 compiles into its C API (torch_api.cpp) but does not expose to Go:
// the global seed and the intra-op thread count.
//
// The functions live in gotch's libtch object, which every binary that
// imports gotch links. They are declared weak here so that cgo's own
// link check of this package (which sees only this package's objects)
// succeeds; the real definitions win at the final link.
package torchrt

/*
#include <stdint.h>
extern void at_manual_seed(int64_t) __attribute__((weak));
extern void at_set_num_threads(int) __attribute__((weak));
extern int at_get_num_threads(void) __attribute__((weak));
static int torchrt_linked(void) { return at_manual_seed != 0 && at_set_num_threads != 0 && at_get_num_threads != 0; }

#include <dlfcn.h>
// OpenBLAS keeps its own thread pool beside libtorch's OpenMP one; its
// controls are looked up at run time, as the BLAS behind libtorch is
// whichever the system's alternatives select.
static int torchrt_blas_get(void) {
	int (*get)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "openblas_get_num_threads");
	return get ? get() : -1;
}
static int torchrt_blas_set(int n) {
	void (*set)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
	if (!set) return 0;
	set(n);
	return 1;
}
*/
import "C"

import (
	"runtime"
	"time"

	// Imported for its cgo object, which defines the functions above.
	"github.com/sugarme/gotch"
	_ "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

func linked() {
	if C.torchrt_linked() == 0 {
		panic("torchrt: gotch's libtch is not linked into this binary")
	}
}

// ManualSeed seeds libtorch's global generators (CPU and CUDA).
func ManualSeed(seed int64) {
	linked()
	C.at_manual_seed(C.int64_t(seed))
}

// SetNumThreads sets libtorch's intra-op thread count; n <= 0 leaves it.
func SetNumThreads(n int) {
	linked()
	if n > 0 {
		C.at_set_num_threads(C.int(n))
	}
}

// NumThreads returns libtorch's intra-op thread count.
func NumThreads() int {
	linked()
	return int(C.at_get_num_threads())
}

// BLASThreads returns the thread count of OpenBLAS's own pool, or -1 when
// libtorch's BLAS is not OpenBLAS.
func BLASThreads() int { return int(C.torchrt_blas_get()) }

// SetBLASThreads sets the thread count of OpenBLAS's pool (process-wide)
// and reports whether the BLAS is OpenBLAS. libtorch calls sgemm outside
// its OpenMP regions, so a GEMM runs on OpenBLAS's threads, not libtorch's.
func SetBLASThreads(n int) bool {
	if n <= 0 {
		return false
	}
	return C.torchrt_blas_set(C.int(n)) != 0
}

// UseThreads sets the calling thread's libtorch intra-op thread count and
// OpenBLAS's pool (process-wide, when the BLAS is OpenBLAS) to n, and
// returns a function that puts both back. The caller must stay locked to
// its OS thread until then.
func UseThreads(n int) (restore func()) {
	threads, blas := NumThreads(), BLASThreads()
	SetNumThreads(n)
	if blas > 0 {
		SetBLASThreads(n)
	}
	return func() {
		SetNumThreads(threads)
		if blas > 0 {
			SetBLASThreads(blas)
		}
	}
}

// NoGrad runs fn with autograd off. libtorch's grad mode is per OS thread
// while goroutines move between threads, so the goroutine is pinned to its
// thread for the duration; gotch's ts.NoGrad alone is not enough and fails
// at random ("a leaf Variable that requires grad is being used in an
// in-place operation").
func NoGrad(fn func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ts.NoGrad(fn)
}

// WithGrad runs fn with autograd on, the goroutine pinned to its OS thread
// for the duration for the reason NoGrad gives: unpinned, a collection pass
// resumed on a thread whose mode is off records no graph, and its backward
// fails or leaves gradients undefined.
func WithGrad(fn func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	prev := ts.MustGradSetEnabled(true)
	defer ts.MustGradSetEnabled(prev)
	fn()
}

// Pacer yields its goroutine to Go's scheduler now and then while the
// goroutine makes a long run of libtorch calls: call Tick between them.
//
// Go's sysmon counts a goroutine that has not been rescheduled for 10 ms
// as running too long. Found inside a cgo call, it loses its P (Go 1.26's
// retake), and sysmon, having retaken something, goes back to polling
// every 20 µs before it backs off again. On a machine whose cores are all
// busy with libtorch's threads each of those wake-ups preempts a compute
// thread, so a forward pass that yields between blocks makes fewer
// context switches and runs faster (harness/vit BenchmarkForwardPaced, at
// batch 1 on all cores). A yield restarts the 10 ms clock; it costs a few
// microseconds, so Tick yields only when paceEvery has passed.
//
// The goroutine must be locked to its OS thread (runtime.LockOSThread),
// as every libtorch caller's must be: grad mode and the thread count are
// per thread, and a yield may otherwise resume it on another.
type Pacer struct{ last time.Time }

// paceEvery is half of sysmon's 10 ms, so that a run of calls each
// shorter than it never goes 10 ms without a yield.
const paceEvery = 5 * time.Millisecond

// NewPacer returns a Pacer counting from now.
func NewPacer() Pacer { return Pacer{last: time.Now()} }

// Tick yields if paceEvery has passed since the last yield.
func (p *Pacer) Tick() {
	if time.Since(p.last) < paceEvery {
		return
	}
	runtime.Gosched()
	p.last = time.Now()
}

// GradEnabled reports whether autograd records operations on this OS
// thread. libtorch's C API only sets the mode (returning the old one), so
// this sets it and puts it back, pinned to the thread in between: moved
// to another thread between the two calls, it would leave the first one
// with autograd off for whichever goroutine runs there next.
func GradEnabled() bool {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	was := ts.MustGradSetEnabled(false)
	if was {
		ts.MustGradSetEnabled(true)
	}
	return was
}

// Float64s copies a tensor's values out as float64, in row-major order
// whatever its strides (gotch's Float64Values copies storage order, which
// differs for a strided view of a float64 tensor).
func Float64s(t *ts.Tensor) []float64 {
	d := t.MustTotype(gotch.Double, false).MustContiguous(true)
	defer d.MustDrop()
	out := make([]float64, d.Numel())
	d.MustCopyData(out, uint(len(out)))
	return out
}
