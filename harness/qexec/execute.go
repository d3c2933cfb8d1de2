// Package qexec executes integer-quantized models on real int8 kernels.
//
// A quantized vit.Model is simulated: its weights sit on their integer
// grids in float32 and its activations are fake-quantized in float32.
// Execute turns every linear layer whose weights and input are on 8-bit
// (or narrower) uniform grids into a oneDNN int8 matmul (u8 activations,
// s8 weights, int32 accumulation, scales and bias fused into the one
// primitive), so that the model computes what it would deployed,
// at the speed an int8 kernel gives. Grids below 8 bits run in the int8
// containers: their accuracy is the narrow grid's, their speed the int8
// kernel's. What has no int8 kernel here stays in float32: the patch
// embedding, LayerNorm, softmax and the attention products, factored
// (low-rank) layers, and layers whose input quantizer is not a uniform
// grid (PTQ4ViT's twin-uniform GELU output); quantizers of activations no
// kernel consumes (attention maps) are not computed. Report lists all of
// it, so a stored result says exactly what executed.
//
// oneDNN is the library Debian's libtorch links for its own CPU kernels;
// its int8 matmul beats libtorch 1.13's quantized operators here because
// it quantizes the input once, on the way in, and fuses the rest
// (docs/performance.md has the measurements).
package qexec

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// Int8 is the Config.Executed of a model Execute converted.
const Int8 = "int8"

// Engines Prepare accepts (the suite's int8_engine).
const (
	EngineOneDNN = "onednn" // oneDNN's int8 kernels where the CPU has them
	EngineNone   = "none"   // keep quantized models simulated
)

// EngineName is what a run records as its int8 engine: the kernels
// Prepare would execute quantized models on (OneDNN's version and
// instruction set), or "none" with why.
func EngineName(engine string, cpu bool) string {
	switch {
	case engine == EngineNone:
		return "none (int8_engine = none)"
	case !cpu:
		return "none (no int8 kernel on this device)"
	case FastInt8() == "":
		return "none (" + OneDNN() + ": no vectorised int8 kernel on this CPU)"
	}
	return OneDNN()
}

// Prepare executes a simulated (fake-quantized) model in int8 in place
// when engine and the machine allow, and says what executed how, or why
// m stays simulated ("" when m is not simulated). It fails only when a
// kernel fails to build: a model is never reported as int8 on its float
// graph.
func Prepare(m *vit.Model, engine string) (string, error) {
	if m.Cfg.Executed != vit.ExecutedSimulated {
		return "", nil
	}
	if engine == EngineNone {
		return "simulated: int8 engine none", nil
	}
	if engine != EngineOneDNN {
		return "", fmt.Errorf("int8 engine %q: want %s or %s", engine, EngineOneDNN, EngineNone)
	}
	if err := Executable(m); err != nil {
		return "simulated: " + err.Error(), nil
	}
	rep, err := Execute(m)
	switch {
	case errors.Is(err, ErrNoInt8Layer):
		return "simulated: " + err.Error(), nil
	case err != nil:
		return "", fmt.Errorf("int8 execution: %w", err)
	}
	return rep.Summary(), nil
}

// ErrNoInt8Layer is Execute's error for a model none of whose linear
// layers has int8-executable weights and input.
var ErrNoInt8Layer = errors.New("no linear layer has int8-executable weights and inputs")

// Report says what Execute made of a model.
type Report struct {
	// Engine is the kernel library, its version and instruction set, e.g.
	// "oneDNN 2.6.3 avx2".
	Engine string
	// Static and Dynamic list the layers executed in int8 with calibrated
	// (static) and per-input (dynamic) activation grids.
	Static, Dynamic []string
	// Float lists the quantized layers left in float32, each with why.
	Float []string
	// NotComputed lists the activation quantizers the executed graph
	// does not compute (no kernel consumes them), by site.
	NotComputed []string
	// WeightBits and ActBits are the grid widths of the executed layers'
	// weights and static activations, each width once, ascending; grids
	// below 8 bits run in int8 containers.
	WeightBits, ActBits []int
	// Saturating lists the executed layers whose int8 products can
	// saturate on this CPU (Linear.Saturates): their outputs may differ
	// from the simulated model's.
	Saturating []string
}

// Summary is the report in one line, for the stored row: what executed in
// int8, on what, and what did not.
func (r Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d linear layers int8", r.Engine, len(r.Static)+len(r.Dynamic))
	switch {
	case len(r.Static) > 0 && len(r.Dynamic) > 0:
		fmt.Fprintf(&b, " (%d static, %d dynamic activations)", len(r.Static), len(r.Dynamic))
	case len(r.Dynamic) > 0:
		b.WriteString(" (dynamic activations)")
	default:
		b.WriteString(" (static activations)")
	}
	if narrow := narrowGrids(r.WeightBits, r.ActBits); narrow != "" {
		b.WriteString("; " + narrow + " in int8 containers")
	}
	b.WriteString("; patch embedding, norms, softmax, attention products fp32")
	if n := len(r.Float); n > 0 {
		fmt.Fprintf(&b, "; %d quantized layers fp32 (%s)", n, strings.Join(r.Float, ", "))
	}
	if n := len(r.Saturating); n > 0 {
		fmt.Fprintf(&b, "; %d int8 layers may saturate (no VNNI: u8 x s8 pairs summed in int16; weights beyond 64 steps, see overflow_fix)", n)
	}
	if n := len(r.NotComputed); n > 0 {
		fmt.Fprintf(&b, "; %d activation quantizers not computed (%s)", n, strings.Join(r.NotComputed, ", "))
	}
	return b.String()
}

// narrowGrids describes the grids below 8 bits, e.g. "4-bit weights,
// 4-bit activations"; "" when there are none.
func narrowGrids(wbits, abits []int) string {
	var parts []string
	for _, g := range []struct {
		bits []int
		what string
	}{{wbits, "weights"}, {abits, "activations"}} {
		var ws []string
		for _, b := range g.bits {
			if b < 8 {
				ws = append(ws, fmt.Sprintf("%d", b))
			}
		}
		if len(ws) > 0 {
			parts = append(parts, strings.Join(ws, "/")+"-bit "+g.what)
		}
	}
	return strings.Join(parts, ", ")
}

// Executable says why m cannot execute in int8 here, or nil when Execute
// would convert it.
func Executable(m *vit.Model) error {
	q := m.Cfg.Quant
	switch {
	case q == nil || q.Precision != vit.PrecisionInt:
		return fmt.Errorf("model %q has no integer quantization", m.Cfg.Name)
	case m.Cfg.Executed != vit.ExecutedSimulated:
		return fmt.Errorf("model %q executes as %q already", m.Cfg.Name, m.Cfg.Executed)
	case m.VS.Device() != gotch.CPU:
		return fmt.Errorf("no int8 kernel on %v in this build: oneDNN's are CPU kernels", m.VS.Device())
	case FastInt8() == "":
		return fmt.Errorf("%s has no vectorised int8 kernel on this CPU", OneDNN())
	}
	return nil
}

// Execute converts the simulated model m in place: its int8-executable
// linear layers compute with oneDNN kernels from then on (m.Drop frees
// them) and m.Cfg.Executed becomes Int8. The stored weights are kept,
// so m's counts and size are unchanged. It fails, leaving m as it was,
// when m is not Executable or no layer qualifies.
func Execute(m *vit.Model) (Report, error) {
	rep := Report{Engine: OneDNN()}
	if err := Executable(m); err != nil {
		return rep, err
	}
	q := m.Cfg.Quant
	kernels := map[string]vit.LinearKernel{}
	fail := func(err error) (Report, error) {
		for _, k := range kernels {
			k.Close()
		}
		return rep, err
	}
	consumed := map[string]bool{}
	for _, l := range m.Linears() {
		wkey := l.Name + ".weight"
		if l.Rank > 0 {
			if _, ok := q.Weights[l.Name+".0.weight"]; ok {
				rep.Float = append(rep.Float, l.Name+": factored")
			}
			continue
		}
		wspec, ok := q.Weights[wkey]
		if !ok {
			continue
		}
		akey := inputKey(l)
		aspec := q.Acts[akey]
		act, why := activation(aspec)
		if why == "" {
			why = weightsFit(wspec)
		}
		if why != "" {
			rep.Float = append(rep.Float, l.Name+": "+why)
			continue
		}
		k, err := newKernel(l, wspec, act)
		var wide outsideS8
		switch {
		case errors.As(err, &wide):
			rep.Float = append(rep.Float, l.Name+": "+wide.Error())
			continue
		case err != nil:
			return fail(fmt.Errorf("int8 kernel for %s: %w", l.Name, err))
		}
		kernels[l.Name] = k
		rep.WeightBits = addBits(rep.WeightBits, wspec.Bits)
		if aspec != nil {
			rep.ActBits = addBits(rep.ActBits, aspec.Bits)
		}
		if k.Saturates() {
			rep.Saturating = append(rep.Saturating, l.Name)
		}
		if act.Dynamic {
			rep.Dynamic = append(rep.Dynamic, l.Name)
		} else {
			rep.Static = append(rep.Static, l.Name)
			consumed[akey] = true
		}
	}
	if len(kernels) == 0 {
		return fail(fmt.Errorf("%w: %q (%s)", ErrNoInt8Layer, m.Cfg.Name, strings.Join(rep.Float, "; ")))
	}
	var drop []string
	for key := range q.Acts {
		drop = append(drop, key)
		if !consumed[key] {
			rep.NotComputed = append(rep.NotComputed, key)
		}
	}
	slices.Sort(drop)
	slices.Sort(rep.NotComputed)
	if err := m.SetKernels(kernels, drop, Int8); err != nil {
		return fail(err)
	}
	return rep, nil
}

// addBits adds b to the sorted set bits.
func addBits(bits []int, b int) []int {
	i, found := slices.BinarySearch(bits, b)
	if found {
		return bits
	}
	return slices.Insert(bits, i, b)
}

// inputKey is the activation quantizer key of l's input.
func inputKey(l vit.GroupedLinear) string {
	if l.Block < 0 {
		return l.Name + ".in" // vit.ActHead, vit.ActHeadDist
	}
	site := map[string]vit.Site{"qkv": vit.SiteQKVIn, "proj": vit.SiteProjIn, "fc1": vit.SiteFC1In, "fc2": vit.SiteFC2In}[l.Group]
	return vit.ActKey(l.Block, site)
}

// activation translates an input quantizer into a kernel's grid: none
// means dynamic; it returns why when no int8 kernel computes it.
func activation(s *vit.QuantSpec) (Activation, string) {
	switch {
	case s == nil:
		return Activation{Dynamic: true}, ""
	case s.Kind != vit.QuantUniform:
		return Activation{}, s.Kind + " input quantizer"
	case s.Axis >= 0:
		return Activation{}, "per-channel input quantizer"
	case s.Bits > 8 || s.QMax-s.QMin > 255:
		return Activation{}, fmt.Sprintf("%d-bit input", s.Bits)
	}
	return Activation{Scale: float32(s.Scale[0]), ZeroPoint: int32(s.ZeroPoint[0]), QMin: int32(s.QMin), QMax: int32(s.QMax)}, ""
}

// weightsFit says why weights on spec's grid do not fit the s8 kernel.
func weightsFit(s *vit.QuantSpec) string {
	switch {
	case s.Kind != vit.QuantUniform:
		return s.Kind + " weights"
	case s.Bits > 8:
		return fmt.Sprintf("%d-bit weights", s.Bits)
	}
	return ""
}

// newKernel recovers l's integer weights from their float32 grid values
// and builds its kernel.
func newKernel(l vit.GroupedLinear, spec *vit.QuantSpec, act Activation) (*Linear, error) {
	out, in := l.Out, l.In
	scales := make([]float32, out)
	zps := make([]float32, out)
	for i := range out {
		j := 0
		if spec.Axis >= 0 {
			j = i
		}
		scales[i] = float32(spec.Scale[j])
		zps[i] = float32(spec.ZeroPoint[j])
	}
	var w []float32
	var bias []float32
	torchrt.NoGrad(func() {
		w = floats(l.Weight)
		if l.Bias != nil {
			bias = floats(l.Bias)
		}
	})
	iw := make([]int8, len(w))
	for o := range out {
		inv := 1 / scales[o]
		for i := range in {
			// The stored value is (q - zp) * scale, so this is q - zp.
			v := math.RoundToEven(float64(w[o*in+i] * inv))
			if v < -128 || v > 127 {
				return nil, outsideS8{o, i, v}
			}
			iw[o*in+i] = int8(v)
		}
	}
	// fc1's GELU is left to libtorch: fused into oneDNN 2.6's gemm-based
	// int8 matmul it made the pass slower than unfused (docs/performance.md).
	return NewLinear(iw, out, in, scales, bias, act, false)
}

// outsideS8 is a weight whose grid value less its zero point does not
// fit in s8 (an asymmetric 8-bit grid can span 255 steps each side).
type outsideS8 struct {
	out, in int
	steps   float64
}

func (e outsideS8) Error() string {
	return fmt.Sprintf("weight %d,%d is %g steps from its zero point, outside s8", e.out, e.in, e.steps)
}

// floats copies a float32 CPU tensor's values.
func floats(t *ts.Tensor) []float32 {
	c := t.MustDetach(false).MustContiguous(true)
	defer c.MustDrop()
	out := make([]float32, c.Numel())
	c.MustCopyData(out, uint(len(out)))
	return out
}
