package sysinfo

// #cgo CXXFLAGS: -std=c++17 -O2 -D_GLIBCXX_USE_CXX11_ABI=1
// #cgo LDFLAGS: -ldl -lstdc++
// #include <stdlib.h>
// #include "native.h"
import "C"

import (
	"errors"
	"unsafe"

	// libtorch must be loaded for the symbol look-ups of native.cpp to
	// find anything; gotch's C wrappers link it.
	_ "github.com/sugarme/gotch/libtch"
)

// native.cpp asks the dynamic linker and libtorch's own functions what
// was loaded (which library holds a symbol, libtorch's build config),
// catching any C++ exception before it can reach Go. Thread controls live
// in internal/torchrt.

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
