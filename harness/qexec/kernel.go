package qexec

// #cgo CXXFLAGS: -std=c++17 -O3 -D_GLIBCXX_USE_CXX11_ABI=1
// #cgo LDFLAGS: -ldnnl -lstdc++
// #include <stdlib.h>
// #include "kernels.h"
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func takeErr(cerr *C.char) error {
	if cerr == nil {
		return errors.New("unknown oneDNN error")
	}
	defer C.free(unsafe.Pointer(cerr))
	return errors.New(C.GoString(cerr))
}

func takeString(s *C.char) string {
	if s == nil {
		return ""
	}
	defer C.free(unsafe.Pointer(s))
	return C.GoString(s)
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// Activation says how a kernel quantizes its input: on a fixed grid
// (static, calibrated), or each row (token) on a symmetric 8-bit grid of
// its own range (dynamic), so that a token's result does not depend on
// the others in its batch or shard.
type Activation struct {
	Dynamic    bool
	Scale      float32
	ZeroPoint  int32
	QMin, QMax int32
}

// Linear is an int8 linear layer executed by oneDNN: it implements
// vit.LinearKernel.
type Linear struct {
	mu       sync.Mutex
	p        *C.vb_qlinear
	in, out  int64
	act      Activation
	gelu     bool
	saturate bool
}

// NewLinear prepares y = act(x) Wᵀ + b: w [out, in] holds integer weights
// (grid values less their zero point, in [-128, 127]), wscale their scale
// per output channel, bias is nil or [out], and gelu fuses GELU (erf form)
// into the output of a static layer (GELU reports whether it did).
func NewLinear(w []int8, out, in int, wscale, bias []float32, act Activation, gelu bool) (*Linear, error) {
	if len(w) != out*in || len(wscale) != out || (bias != nil && len(bias) != out) {
		return nil, fmt.Errorf("qexec: linear %dx%d with %d weights, %d scales, %d biases", out, in, len(w), len(wscale), len(bias))
	}
	if !act.Dynamic {
		if !(act.Scale > 0) || act.QMin >= act.QMax || act.QMax-act.QMin > 255 || act.ZeroPoint < act.QMin || act.ZeroPoint > act.QMax {
			return nil, fmt.Errorf("qexec: activation grid scale %g, zero point %d, [%d, %d] is not an 8-bit grid", act.Scale, act.ZeroPoint, act.QMin, act.QMax)
		}
	}
	var cerr *C.char
	var b *C.float
	if bias != nil {
		b = (*C.float)(unsafe.Pointer(&bias[0]))
	}
	if act.Dynamic {
		gelu = false // left to libtorch: the row scales apply after the product
	}
	p := C.vb_qlinear_new((*C.int8_t)(unsafe.Pointer(&w[0])), C.int64_t(out), C.int64_t(in),
		(*C.float)(unsafe.Pointer(&wscale[0])), b, cbool(gelu), cbool(act.Dynamic), &cerr)
	if p == nil {
		return nil, fmt.Errorf("qexec: %w", takeErr(cerr))
	}
	return &Linear{p: p, in: int64(in), out: int64(out), act: act, gelu: gelu, saturate: FastInt8() != "vnni" && !fitsSevenBits(w)}, nil
}

// fitsSevenBits reports whether every weight is in [-64, 64], where
// products of u8 activations summed in pairs fit int16 (2 x 255 x 64 <
// 32768).
func fitsSevenBits(w []int8) bool {
	for _, v := range w {
		if v < -64 || v > 64 {
			return false
		}
	}
	return true
}

// Saturates reports whether the layer's products can saturate: without
// VNNI, x86 int8 kernels multiply u8 by s8 and sum pairs of products in
// int16 (vpmaddubsw), which clips when both products are large, so
// weights beyond [-64, 64] can give wrong sums. NNCF's overflow fix
// (quantize's overflow_fix) keeps weights within that range; VNNI sums
// in int32 and never saturates.
func (l *Linear) Saturates() bool { return l.saturate }

// Forward returns the layer's output for x [..., in], float32 on the CPU;
// x is not freed. It panics on a oneDNN error, as gotch's Must functions
// do, for the runner to record.
func (l *Linear) Forward(x *ts.Tensor) *ts.Tensor {
	if l.p == nil {
		panic("qexec: linear used after Close")
	}
	if x.DType() != gotch.Float {
		panic(fmt.Sprintf("qexec: int8 linear input is %v, want float32", x.DType()))
	}
	size := x.MustSize()
	if len(size) == 0 || size[len(size)-1] != l.in {
		panic(fmt.Sprintf("qexec: int8 linear of %d inputs given %v", l.in, size))
	}
	src := x
	if !x.MustIsContiguous() {
		src = x.MustContiguous(false)
		defer src.MustDrop()
	}
	rows := int64(1)
	for _, d := range size[:len(size)-1] {
		rows *= d
	}
	outSize := append(size[:len(size)-1:len(size)-1], l.out)
	y := ts.MustEmpty(outSize, gotch.Float, gotch.CPU)
	scale := C.float(l.act.Scale)
	if l.act.Dynamic {
		scale = 0
	}
	var cerr *C.char
	rc := C.vb_qlinear_forward(l.p, (*C.float)(src.MustDataPtr()), C.int64_t(rows), scale,
		C.int32_t(l.act.ZeroPoint), C.int32_t(l.act.QMin), C.int32_t(l.act.QMax),
		(*C.float)(y.MustDataPtr()), &cerr)
	runtime.KeepAlive(src)
	if rc != 0 {
		y.MustDrop()
		panic(fmt.Sprintf("qexec: %v", takeErr(cerr)))
	}
	return y
}

// GELU reports whether the output has GELU applied.
func (l *Linear) GELU() bool { return l.gelu }

// Impl is the oneDNN implementation that ran last (e.g. "gemm:jit"), ""
// before the first pass.
func (l *Linear) Impl() string { return takeString(C.vb_qlinear_impl(l.p)) }

// Close frees the layer; later calls do nothing.
func (l *Linear) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.p != nil {
		C.vb_qlinear_free(l.p)
		l.p = nil
	}
}

// OneDNN is the version of oneDNN and the instruction set its kernels
// use on this CPU, e.g. "oneDNN 2.6.3 avx2".
func OneDNN() string { return "oneDNN " + takeString(C.vb_onednn_version()) }

// FastInt8 reports how fast this CPU's int8 products are: "vnni" (VNNI
// or AMX instructions), "avx2" (8-bit multiplies accumulated through
// 16 bits, without VNNI) or "" (no vectorised int8 kernel).
func FastInt8() string {
	switch C.vb_onednn_int8_fast() {
	case 2:
		return "vnni"
	case 1:
		return "avx2"
	}
	return ""
}
