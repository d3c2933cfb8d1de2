package sysinfo

// #cgo CXXFLAGS: -std=c++17 -O2 -D_GLIBCXX_USE_CXX11_ABI=1
// #cgo LDFLAGS: -ldl -lstdc++
// #include <stdlib.h>
// #include "native.h"
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	// libtorch must be loaded for the symbol look-ups of native.cpp to
	// find anything; gotch's C wrappers link it.
	_ "github.com/sugarme/gotch/libtch"
)

// Note: gotch v0.9.1 has no Go wrapper for at_get_num_threads or
// at_set_num_threads (its torch_api.h declares them, but libtch binds
// neither), and including torch_api.h here would tie this package's cgo
// flags to one libtorch layout. native.cpp instead looks libtorch's own
// at::get_num_threads and at::set_num_threads up by their mangled names,
// catching any C++ exception before it can reach Go.

// Threads returns the number of threads libtorch uses for intra-op
// parallelism (at::get_num_threads).
//
// Note: libtorch's default is its count of physical cores, which
// libcpuinfo may put below the logical CPUs (on the project's 2-vCPU
// machines it says 1); OMP_NUM_THREADS overrides it. With OpenMP the
// value is kept per OS thread, see SetThreads.
func Threads() (int, error) {
	var cerr *C.char
	n := int(C.vb_get_num_threads(&cerr))
	if err := takeErr(cerr); err != nil {
		return 0, fmt.Errorf("libtorch threads: %w", err)
	}
	return n, nil
}

// SetThreads sets the number of threads libtorch uses for intra-op
// parallelism (at::set_num_threads); n must be at least 1.
//
// Call it before any tensor work, early in main. libtorch records n
// process-wide and applies it to each OS thread the first time that
// thread runs a parallel op, but with OpenMP (Debian's build) the thread
// count is per-thread state: an OS thread of the Go runtime that already
// ran libtorch ops keeps its old count, and goroutines move between OS
// threads.
func SetThreads(n int) error {
	if n < 1 {
		return fmt.Errorf("set libtorch threads to %d: need at least 1", n)
	}
	var cerr *C.char
	C.vb_set_num_threads(C.int(n), &cerr)
	if err := takeErr(cerr); err != nil {
		return fmt.Errorf("set libtorch threads to %d: %w", n, err)
	}
	return nil
}

// takeErr converts and frees an error string set by native.cpp.
func takeErr(cerr *C.char) error {
	if cerr == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(cerr))
	return errors.New(C.GoString(cerr))
}

// takeString converts and frees a string returned by native.cpp; NULL
// gives "".
func takeString(s *C.char) string {
	if s == nil {
		return ""
	}
	defer C.free(unsafe.Pointer(s))
	return C.GoString(s)
}

// showConfig returns libtorch's build configuration (at::show_config), or
// "" when this libtorch does not export it in a usable form.
func showConfig() (string, error) {
	var cerr *C.char
	s := takeString(C.vb_show_config(&cerr))
	if err := takeErr(cerr); err != nil {
		return "", err
	}
	return s, nil
}

// symbolLibrary returns the path of the loaded object that the dynamic
// linker's global lookup finds symbol in, or "".
func symbolLibrary(symbol string) string {
	cs := C.CString(symbol)
	defer C.free(unsafe.Pointer(cs))
	return takeString(C.vb_symbol_library(cs))
}

// openBLASConfig returns openblas_get_config() and openblas_get_parallel()
// (0 sequential, 1 pthreads, 2 OpenMP); "" and -1 when no OpenBLAS is
// loaded.
func openBLASConfig() (config string, parallel int) {
	return takeString(C.vb_openblas_config()), int(C.vb_openblas_parallel())
}

// mklVersion returns MKL's version string, or "" when no MKL is visible.
func mklVersion() string {
	return takeString(C.vb_mkl_version())
}
