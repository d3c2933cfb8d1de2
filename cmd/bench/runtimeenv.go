package main

import (
	"os"
	"syscall"
)

// runtimeEnv is what bench sets for libgomp and glibc's malloc when the
// user has not. Both read their settings once, when the process starts,
// so bench re-executes itself with them (reexecWithRuntimeEnv).
//
// OMP_WAIT_POLICY: libtorch's intra-op pool (OpenMP) and OpenBLAS's own
// pthread pool share the cores. With libgomp's default "active" waiting,
// idle OpenMP workers spin between parallel regions and steal the cores
// OpenBLAS's threads and the data loader need: on 2 cores a training step
// ran at 1.3 it/s with the default and 1.9 it/s with passive waiting (perf
// showed a quarter of the time in libgomp's spin loop and sched_yield).
//
// MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_: by default glibc
// serves every activation buffer over its (adaptive) mmap threshold with a
// fresh mapping and trims freed heap back to the system, so each forward
// pass page-faults and zeroes its activations again. Keeping blocks up to
// 32 MiB on the heap and never trimming took deit-style batch-64 inference
// of the CIFAR ViT from 312 to 921 images/s here (both settings are
// needed: either alone was slower). The same advice as jemalloc or
// tcmalloc for PyTorch on CPU, without another library; the cost is that
// the resident set stays at its peak.
//
// MALLOC_ARENA_MAX and MALLOC_MMAP_MAX_: two ways around those settings
// remained. Go runs cgo calls on whichever OS thread is free, and glibc
// gives each new thread its own arena; a secondary arena's heap (64 MiB
// at most) is unmapped as soon as it empties, whatever the trim
// threshold. And 32 MiB is the highest mmap threshold glibc accepts, while
// deit_tiny's MLP activations at batch 64 are 39 MB. One arena, no mmap:
// 2.34M page faults over six batch-64 passes of deit_tiny fell to 135k
// (PyTorch under the same settings: 128k), and the pass from 4.4-7.6 s to
// 1.6 s. bench.sh exports the same settings to PyTorch's side.
//
// OPENBLAS_THREAD_TIMEOUT: after each GEMM, OpenBLAS's worker threads
// keep polling for the next one (with sched_yield) for 2^28 cycles, about
// 0.1 s, before they sleep, while libtorch's next op, an elementwise one
// on its OpenMP workers, wants the same cores. 4 (2^4 cycles, the
// smallest) lets them sleep at once. The CIFAR ViT's training step
// (harness/train BenchmarkTrainStep, 2 cores, six alternating pairs):
// +4.7%, +8.1%, +10.2%, +1.4%, +7.5%, -7.4%: a median gain of about 6%,
// inside this VM's noise in any single pair.
var runtimeEnv = []struct{ key, value string }{
	{"OMP_WAIT_POLICY", "passive"},
	{"MALLOC_MMAP_THRESHOLD_", "33554432"},
	{"MALLOC_TRIM_THRESHOLD_", "4294967296"},
	{"MALLOC_ARENA_MAX", "1"},
	{"MALLOC_MMAP_MAX_", "0"},
	{"OPENBLAS_THREAD_TIMEOUT", "4"},
}

// reexecMarker stops a second re-exec if the exec'd binary is somehow not
// this one.
const reexecMarker = "VITBENCH_ENV_REEXEC"

// reexecWithRuntimeEnv re-executes the running binary with runtimeEnv
// added when any of its variables is unset. A user's own setting always
// wins. It returns only when no re-exec was needed or it failed (then the
// run goes on with the defaults).
func reexecWithRuntimeEnv() {
	if os.Getenv(reexecMarker) != "" {
		return
	}
	var add []string
	for _, kv := range runtimeEnv {
		if _, set := os.LookupEnv(kv.key); !set {
			add = append(add, kv.key+"="+kv.value)
		}
	}
	if len(add) == 0 {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	env := append(os.Environ(), add...)
	env = append(env, reexecMarker+"=1")
	_ = syscall.Exec(exe, os.Args, env)
}
