package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/cpu"
)

// runtimeEnv is what bench sets for libgomp and glibc's malloc when the
// user has not. Both read their settings once, when the process starts,
// so bench re-executes itself with them (reexecWithRuntimeEnv). What each
// setting gained is in docs/performance.md ("Threads and memory").
//
// OMP_WAIT_POLICY: libtorch's intra-op pool (OpenMP) and OpenBLAS's own
// pthread pool share the cores, and with libgomp's default "active"
// waiting idle OpenMP workers spin between parallel regions on the cores
// OpenBLAS's threads and the data loader need (harness/train
// BenchmarkTrainStep shows the difference).
//
// MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_: by default glibc
// serves every activation buffer over its (adaptive) mmap threshold with a
// fresh mapping and trims freed heap back to the system, so each forward
// pass page-faults and zeroes its activations again; keeping blocks up to
// 32 MiB on the heap and never trimming reuses them (harness/vit
// BenchmarkForward at batch 64; it takes both settings). The same advice
// as jemalloc or tcmalloc for PyTorch on CPU, without another library;
// the cost is that the resident set stays at its peak.
//
// MALLOC_ARENA_MAX and MALLOC_MMAP_MAX_ close the two ways around those
// settings: Go runs cgo calls on whichever OS thread is free, glibc gives
// each new thread its own arena, and a secondary arena's heap is unmapped
// as soon as it empties, whatever the trim threshold; and 32 MiB, the
// highest mmap threshold glibc accepts, is less than deit_tiny's MLP
// activations at batch 64 (BenchmarkForward again; `make bench` exports
// the same settings to PyTorch's side so that both are compared alike).
//
// OPENBLAS_THREAD_TIMEOUT: after each GEMM, OpenBLAS's worker threads
// keep polling for the next one (with sched_yield) for 2^28 cycles before
// they sleep, while libtorch's next op, an elementwise one on its OpenMP
// workers, wants the same cores; 4 (2^4 cycles, the smallest) lets them
// sleep at once (harness/train BenchmarkTrainStep).
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

// blasCoreChoice names the variable that decides blasCoreOverride: unset
// for the automatic choice, "keep" to run with OPENBLAS_CORETYPE as it
// is, any other value to run with that OpenBLAS core type.
const blasCoreChoice = "VITBENCH_OPENBLAS_CORETYPE"

// x86Features are the CPU features OpenBLAS's AVX-512 kernels need, as
// golang.org/x/sys/cpu reports them (the CPU has them and the OS saves
// the registers).
type x86Features struct {
	AVX512F, AVX512CD, AVX512BW, AVX512DQ, AVX512VL bool
}

func (f x86Features) avx512() bool {
	return f.AVX512F && f.AVX512CD && f.AVX512BW && f.AVX512DQ && f.AVX512VL
}

func thisCPU() x86Features {
	return x86Features{
		AVX512F: cpu.X86.HasAVX512F, AVX512CD: cpu.X86.HasAVX512CD, AVX512BW: cpu.X86.HasAVX512BW,
		AVX512DQ: cpu.X86.HasAVX512DQ, AVX512VL: cpu.X86.HasAVX512VL,
	}
}

// avx512Cores are the x86-64 OpenBLAS core types whose float32 kernels use
// AVX-512 (OpenBLAS 0.3.21; names are case-insensitive).
var avx512Cores = []string{"skylakex", "cooperlake", "sapphirerapids"}

// blasCoreOverride returns the OPENBLAS_CORETYPE bench runs with in place
// of the environment's (current, set or not), or "" to leave the
// environment as it is. OpenBLAS reads the variable once, when it loads.
//
// Unset, a DYNAMIC_ARCH OpenBLAS picks its kernels from the CPU, and
// bench leaves it to that. Set to a core type without AVX-512 on a CPU that
// has it, the variable is taken as a pool-wide default rather than a
// choice made for this machine, and bench asks for SkylakeX instead, whose
// AVX-512 kernels make both training and plain matrix products faster on
// such a CPU (harness/train BenchmarkTrainStep/workers=2 and bench env's
// sgemm show it; docs/performance.md, "OpenBLAS's kernels", has the
// numbers). Every run records the core type OpenBLAS reports (the
// machine's BLAS detail), so runs made with different kernels are never
// taken for the same machine.
func blasCoreOverride(current string, set bool, choice string, f x86Features) string {
	switch {
	case choice == "keep":
		return ""
	case choice != "":
		if set && strings.EqualFold(current, choice) {
			return ""
		}
		return choice
	case set && f.avx512() && !slices.Contains(avx512Cores, strings.ToLower(current)):
		return "SkylakeX"
	}
	return ""
}

// reexecWithRuntimeEnv re-executes the running binary with runtimeEnv
// added when any of its variables is unset, and with OPENBLAS_CORETYPE
// replaced when blasCoreOverride says so (saying so on stderr). Otherwise
// a user's own setting always wins. It returns only when no re-exec was
// needed or it failed (then the run goes on with the defaults).
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
	env := os.Environ()
	current, set := os.LookupEnv("OPENBLAS_CORETYPE")
	if core := blasCoreOverride(current, set, os.Getenv(blasCoreChoice), thisCPU()); core != "" {
		if set && os.Getenv(blasCoreChoice) == "" && computes(os.Args[1:]) {
			fmt.Fprintf(os.Stderr, "bench: OPENBLAS_CORETYPE=%s asks for kernels without AVX-512 on a CPU with it; running with %s (%s=keep keeps yours)\n", current, core, blasCoreChoice)
		}
		env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "OPENBLAS_CORETYPE=") })
		add = append(add, "OPENBLAS_CORETYPE="+core)
	}
	if len(add) == 0 {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	env = append(env, add...)
	env = append(env, reexecMarker+"=1")
	_ = syscall.Exec(exe, os.Args, env)
}

// computes reports whether a command line runs libtorch's kernels (a
// suite, latency, forward, env), the only ones for which the OpenBLAS
// notice is worth saying; help and dry runs do not.
func computes(args []string) bool {
	if len(args) == 0 || wantsHelp(args) || slices.Contains(args, "--dry-run") || slices.Contains(args, "-dry-run") {
		return false
	}
	switch name := args[0]; {
	case strings.HasSuffix(name, ".toml"):
		return true
	default:
		return slices.Contains([]string{"run", "latency", "forward", "env"}, name)
	}
}
