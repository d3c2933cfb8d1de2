package vit

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// threadCPU is the CPU time the calling OS thread has used. On a busy
// machine it moves much less than wall time: with one libtorch thread
// (and OPENBLAS_NUM_THREADS=1) it is the forward pass's whole cost,
// gotch's Go-side overhead included.
func threadCPU(b *testing.B) time.Duration {
	const rusageThread = 1 // RUSAGE_THREAD, Linux
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkForward times deit_tiny_patch16_224's fp32 forward pass on the
// CPU under no-grad, one libtorch thread, at batch 1 (where gotch's
// per-op cost shows), 8 and 64 (where the kernels dominate). B/op and allocs/op are the Go side's
// share: every tensor gotch creates allocates a Go wrapper. thread-cpu-ms/op
// is the CPU time of the benchmark's thread (see threadCPU).
//
//	OPENBLAS_NUM_THREADS=1 go test ./harness/vit -run '^$' -bench Forward -benchmem -cpuprofile cpu.out
func BenchmarkForward(b *testing.B) {
	cfg, err := Lookup("deit_tiny_patch16_224")
	if err != nil {
		b.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	torchrt.SetNumThreads(1)
	m, err := New(cfg, gotch.CPU)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Drop()
	for _, batch := range []int64{1, 8, 64} {
		b.Run(fmt.Sprintf("%s/batch=%d", cfg.Name, batch), func(b *testing.B) {
			// Sub-benchmarks run on another goroutine: pin it and set
			// its thread's OpenMP thread count too.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			torchrt.SetNumThreads(1)
			x := ts.MustRandn([]int64{batch, 3, 224, 224}, gotch.Float, gotch.CPU)
			defer x.MustDrop()
			var cpu time.Duration
			torchrt.NoGrad(func() {
				m.Forward(x).MustDrop() // warm-up
				b.ReportAllocs()
				b.ResetTimer()
				start := threadCPU(b)
				for b.Loop() {
					m.Forward(x).MustDrop()
				}
				cpu = threadCPU(b) - start
			})
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/op")
			b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(b.N), "thread-cpu-ms/op")
		})
	}
}

// BenchmarkForwardPaced compares deit_tiny_patch16_224's forward pass
// with and without the yields between blocks (torchrt.Pacer), at libtorch
// threads = all cores, where sysmon's wake-ups compete with libtorch's
// threads; csw/op counts the process's context switches. On this 2-core
// VM (-count 4 -benchtime 40x) batch 1 took 32.9-38.4 ms unpaced and
// 29.2-31.3 ms paced, with 792-887 and 577-608 context switches per
// pass; at batch 8 the two overlap (218-244 ms).
//
//	go test ./harness/vit -run '^$' -bench ForwardPaced -count 5
func BenchmarkForwardPaced(b *testing.B) {
	m := deitTiny(b)
	for _, batch := range []int64{1, 8} {
		for _, unpaced := range []bool{true, false} {
			b.Run(fmt.Sprintf("batch=%d/paced=%v", batch, !unpaced), func(b *testing.B) {
				m.unpaced = unpaced
				defer func() { m.unpaced = false }()
				timePasses(b, batch, runtime.NumCPU(), plainForward(m))
			})
		}
	}
}

// BenchmarkForwardInPlace compares deit_tiny_patch16_224's no-grad forward
// pass with its inference path (in-place residual adds and GELU) and
// without it (the op sequence of an autograd pass, as PyTorch eager runs
// it), on all cores with libtorch's intra-op pool.
//
//	go test ./harness/vit -run '^$' -bench ForwardInPlace -count 3 -benchtime 10x
func BenchmarkForwardInPlace(b *testing.B) {
	m := deitTiny(b)
	for _, batch := range []int64{1, 64} {
		for _, inPlace := range []bool{false, true} {
			b.Run(fmt.Sprintf("batch=%d/inplace=%v", batch, inPlace), func(b *testing.B) {
				m.noInPlace = !inPlace
				defer func() { m.noInPlace = false }()
				timePasses(b, batch, runtime.NumCPU(), plainForward(m))
			})
		}
	}
}

// BenchmarkForwardParallel compares deit_tiny_patch16_224's forward pass
// on all cores run two ways: one pass with libtorch's intra-op threads and
// OpenBLAS's pool at the core count (ways=1, as PyTorch eager runs it),
// and Parallel's shares of one thread each (ways=cores, OpenBLAS's pool at
// one thread), by images at batch 64 and by tokens at batch 1.
//
//	go test ./harness/vit -run '^$' -bench ForwardParallel -count 3 -benchtime 10x
func BenchmarkForwardParallel(b *testing.B) {
	m := deitTiny(b)
	cores := runtime.NumCPU()
	blas := torchrt.BLASThreads()
	for _, batch := range []int64{1, 64} {
		for _, ways := range []int{1, cores} {
			b.Run(fmt.Sprintf("batch=%d/ways=%d", batch, ways), func(b *testing.B) {
				p, err := NewParallel(m, ways)
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				threads := cores
				if ways > 1 {
					threads = 1
					torchrt.SetBLASThreads(1)
					defer torchrt.SetBLASThreads(blas)
				}
				timePasses(b, batch, threads, p.Forward)
			})
		}
	}
}

// deitTiny builds deit_tiny_patch16_224 with random weights for the
// forward benchmarks, freed when b ends.
func deitTiny(b *testing.B) *Model {
	cfg, err := Lookup("deit_tiny_patch16_224")
	if err != nil {
		b.Fatal(err)
	}
	m, err := New(cfg, gotch.CPU)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Drop)
	return m
}

// timePasses times forward on batch random images under no-grad, on this
// goroutine locked to its OS thread with threads libtorch threads, after
// one untimed pass, and reports ms/op and the process's context switches
// per pass (csw/op).
func timePasses(b *testing.B, batch int64, threads int, forward forwarder) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	torchrt.SetNumThreads(threads)
	x := ts.MustRandn([]int64{batch, 3, 224, 224}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	pass := func() {
		y, err := forward(x)
		if err != nil {
			b.Fatal(err)
		}
		y.MustDrop()
	}
	var switches int64
	torchrt.NoGrad(func() {
		pass() // warm-up
		b.ResetTimer()
		start := contextSwitches(b)
		for b.Loop() {
			pass()
		}
		switches = contextSwitches(b) - start
	})
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/op")
	b.ReportMetric(float64(switches)/float64(b.N), "csw/op")
}

// contextSwitches is the process's voluntary and involuntary context
// switches so far, all threads.
func contextSwitches(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Nvcsw + ru.Nivcsw
}

// BenchmarkLayerNorm compares libtorch's bfloat16 LayerNorm kernel with
// layerNorm, which normalises a bfloat16 input in float32 and casts back,
// on the CIFAR ViT's and deit_tiny's activation shapes at batch 64, one
// thread.
//
//	go test ./harness/vit -run '^$' -bench LayerNorm -count 5
func BenchmarkLayerNorm(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	torchrt.SetNumThreads(1)
	for _, shape := range [][]int64{{64, 65, 128}, {64, 197, 192}} {
		d := shape[len(shape)-1]
		x := ts.MustRandn(shape, gotch.Float, gotch.CPU).MustTotype(gotch.BFloat16, true)
		w := ts.MustOnes([]int64{d}, gotch.BFloat16, gotch.CPU)
		bias := ts.MustZeros([]int64{d}, gotch.BFloat16, gotch.CPU)
		norm := []int64{d}
		for _, tt := range []struct {
			name string
			f    func() *ts.Tensor
		}{
			{"bf16-kernel", func() *ts.Tensor { return ts.MustLayerNorm(x, norm, w, bias, 1e-6, false) }},
			{"float32-compute", func() *ts.Tensor { return layerNorm(x, norm, w, bias, 1e-6) }},
		} {
			b.Run(fmt.Sprintf("%v/%s", shape, tt.name), func(b *testing.B) {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				torchrt.SetNumThreads(1)
				torchrt.NoGrad(func() {
					for b.Loop() {
						tt.f().MustDrop()
					}
				})
			})
		}
		for _, t := range []*ts.Tensor{x, w, bias} {
			t.MustDrop()
		}
	}
}
