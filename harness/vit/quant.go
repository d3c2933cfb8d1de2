package vit

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// Quantizer kinds a QuantSpec can describe.
const (
	// QuantUniform is the affine integer grid of PyTorch's
	// fake_quantize_per_tensor_affine and fake_quantize_per_channel_affine:
	// x̂ = (clamp(round(x/scale) + zp, qmin, qmax) - zp) * scale.
	QuantUniform = "uniform"
	// QuantLog2 is FQ-ViT's log2 quantizer for attention probabilities
	// (Lin et al., IJCAI 2022): q = clamp(round(-log2 x), 0, 2^bits - 1),
	// x̂ = 2^-q, and values whose q reaches 2^bits (zeros included) become 0.
	QuantLog2 = "log2"
	// QuantTwin is PTQ4ViT's twin uniform quantizer (Yuan et al., ECCV
	// 2022): two uniform grids of 2^(bits-1) codes each, one bit choosing
	// the grid. Values below Split use Scale[0] and the integer range
	// [QMin, QMax]; the others use Scale[1] and [0, 2^(bits-1) - 1]. For
	// softmax output Split > 0 and QMin = 0 (a fine grid for the many small
	// probabilities, a coarse one up to 1); for GELU output Split = 0 and
	// QMin = -2^(bits-1), QMax = 0 (negative values on their own grid).
	QuantTwin = "twin-uniform"
	// QuantLogSqrt2 is RepQ-ViT's log-sqrt(2) quantizer for attention
	// probabilities (Li et al., ICCV 2023), with Scale[0] its calibrated
	// step delta: q = clamp(round(-2 log2(x/delta)), 0, 2^bits - 1),
	// x̂ = delta·2^-ceil(q/2)·(√2 if q is odd), so x̂ = delta·2^(-q/2); values
	// whose code reaches 2^bits (zeros included) become 0.
	QuantLogSqrt2 = "log-sqrt2"
)

// Precisions a QuantState can record.
const (
	PrecisionInt  = "int"  // integer grids, simulated in float32 (fake quantization)
	PrecisionFP16 = "fp16" // every tensor cast to float16
	PrecisionBF16 = "bf16" // every tensor cast to bfloat16
)

// Activation quantizer keys outside the blocks; inside a block the key is
// ActKey(block, site).
const (
	ActInput    = "patch_embed.in" // the normalised image, input of the patch embedding
	ActNorm     = "norm.in"        // the residual stream after the last block, input of the final norm
	ActHead     = "head.in"        // the class token after the final norm
	ActHeadDist = "head_dist.in"   // the distillation token after the final norm
)

// ActKey names the activation quantizer at a block site, e.g.
// "blocks.3.fc2_in".
func ActKey(block int, s Site) string {
	return "blocks." + strconv.Itoa(block) + "." + s.String()
}

// QuantSpec is one quantizer as data: what the model needs to execute it,
// and all that is saved with the model so that a reloaded model computes
// exactly what the quantized one did. Scales and zero points follow
// PyTorch's conventions (see torch.ao.quantization observers).
type QuantSpec struct {
	Kind      string `json:"kind"`
	Bits      int    `json:"bits"`
	Symmetric bool   `json:"symmetric,omitempty"` // zero points are all 0 (not stored when packing)
	// Axis is the channel axis of per-channel scales (0 for a weight's
	// output channels); -1 means one scale for the whole tensor.
	Axis      int       `json:"axis"`
	Scale     []float64 `json:"scale,omitempty"`
	ZeroPoint []int64   `json:"zero_point,omitempty"`
	QMin      int64     `json:"qmin"`
	QMax      int64     `json:"qmax"`
	Split     float64   `json:"split,omitempty"` // QuantTwin only
}

// Validate checks that the spec is executable.
func (q *QuantSpec) Validate() error {
	if q.Bits < 1 || q.Bits > 16 {
		return fmt.Errorf("bits %d outside [1, 16]", q.Bits)
	}
	switch q.Kind {
	case QuantUniform:
		if q.QMin >= q.QMax {
			return fmt.Errorf("empty integer range [%d, %d]", q.QMin, q.QMax)
		}
		if q.QMax-q.QMin+1 > 1<<q.Bits {
			return fmt.Errorf("integer range [%d, %d] needs more than %d bits", q.QMin, q.QMax, q.Bits)
		}
		if q.Axis < -1 {
			return fmt.Errorf("axis %d", q.Axis)
		}
		if q.Axis == -1 && len(q.Scale) != 1 {
			return fmt.Errorf("per-tensor quantizer with %d scales", len(q.Scale))
		}
		if len(q.Scale) == 0 || len(q.ZeroPoint) != len(q.Scale) {
			return fmt.Errorf("%d scales and %d zero points", len(q.Scale), len(q.ZeroPoint))
		}
		for i, s := range q.Scale {
			if !(s > 0) || math.IsInf(s, 0) {
				return fmt.Errorf("scale %d is %g", i, s)
			}
			if z := q.ZeroPoint[i]; z < q.QMin || z > q.QMax {
				return fmt.Errorf("zero point %d is %d, outside [%d, %d]", i, z, q.QMin, q.QMax)
			}
		}
	case QuantLog2:
		if q.Bits > 8 {
			return fmt.Errorf("log2 quantizer with %d bits (at most 8)", q.Bits)
		}
	case QuantLogSqrt2:
		if q.Bits > 8 {
			return fmt.Errorf("log-sqrt2 quantizer with %d bits (at most 8)", q.Bits)
		}
		if len(q.Scale) != 1 || !(q.Scale[0] > 0) || math.IsInf(q.Scale[0], 0) {
			return fmt.Errorf("log-sqrt2 quantizer needs one positive step, got %v", q.Scale)
		}
	case QuantTwin:
		if len(q.Scale) != 2 || !(q.Scale[0] > 0) || !(q.Scale[1] > 0) {
			return fmt.Errorf("twin-uniform quantizer needs two positive scales, got %v", q.Scale)
		}
		if q.Bits < 2 {
			return errors.New("twin-uniform quantizer needs at least 2 bits")
		}
		half := int64(1) << (q.Bits - 1)
		if q.QMin < -half || q.QMax > half-1 || q.QMin >= q.QMax {
			return fmt.Errorf("twin-uniform first range [%d, %d] does not fit %d-1 bits", q.QMin, q.QMax, q.Bits)
		}
	case QuantLogIntSoftmax:
		if q.Bits > 8 {
			return fmt.Errorf("log-int-softmax with %d bits (at most 8)", q.Bits)
		}
		if len(q.Scale) != 1 || !(q.Scale[0] > 0) || math.IsInf(q.Scale[0], 0) {
			return fmt.Errorf("log-int-softmax needs the logits' one positive scale, got %v", q.Scale)
		}
	default:
		return fmt.Errorf("unknown quantizer kind %q (%s, %s, %s, %s, %s)", q.Kind, QuantUniform, QuantLog2, QuantLogSqrt2, QuantTwin, QuantLogIntSoftmax)
	}
	return nil
}

// Tap fake-quantizes x (it implements Tap). See Apply.
func (q *QuantSpec) Tap(x *ts.Tensor) *ts.Tensor { return q.Apply(x) }

// Apply returns x fake-quantized: rounded to the spec's grid and mapped
// back to floating point, in x's dtype. x is not freed. Gradients pass
// straight through (the uniform grid masks them outside its clipping
// range, as PyTorch's fake_quantize ops do), so Apply serves
// quantization-aware training as well as inference.
func (q *QuantSpec) Apply(x *ts.Tensor) *ts.Tensor {
	switch q.Kind {
	case QuantUniform:
		if q.Axis < 0 {
			return x.MustFakeQuantizePerTensorAffine(q.Scale[0], q.ZeroPoint[0], q.QMin, q.QMax, false)
		}
		dev := x.MustDevice()
		scales := make([]float32, len(q.Scale))
		for i, s := range q.Scale {
			scales[i] = float32(s)
		}
		zps := make([]int32, len(q.ZeroPoint))
		for i, z := range q.ZeroPoint {
			zps[i] = int32(z)
		}
		s := ts.MustOfSlice(scales).MustTo(dev, true)
		z := ts.MustOfSlice(zps).MustTo(dev, true)
		y := x.MustFakeQuantizePerChannelAffine(s, z, int64(q.Axis), q.QMin, q.QMax, false)
		s.MustDrop()
		z.MustDrop()
		return y
	case QuantLog2:
		return straightThrough(x, q.log2(x))
	case QuantLogSqrt2:
		return straightThrough(x, q.logSqrt2(x))
	case QuantTwin:
		return straightThrough(x, q.twin(x))
	case QuantLogIntSoftmax:
		// x are logits: the gradient is softmax's.
		lis := q.logIntSoftmax(x)
		if !x.MustRequiresGrad() {
			return lis
		}
		sm := x.MustSoftmax(-1, gotch.Float, false)
		y := straightThrough(sm, lis)
		sm.MustDrop()
		return y
	}
	panic(fmt.Sprintf("vit: quantizer kind %q", q.Kind))
}

// log2 computes FQ-ViT's log2 quantization of x (no gradient).
func (q *QuantSpec) log2(x *ts.Tensor) *ts.Tensor {
	var out *ts.Tensor
	ts.NoGrad(func() {
		levels := float64(int64(1) << q.Bits) // 2^bits
		// -log2(x); zeros and negatives give +inf / NaN: both end up 0.
		e := x.MustClampMin(ts.FloatScalar(0), false).MustLog2(true).MustNeg(true).MustRound(true)
		keep := e.MustLt(ts.FloatScalar(levels), false) // false for +inf and NaN
		e = e.MustClamp(ts.FloatScalar(0), ts.FloatScalar(levels-1), true)
		v := e.MustNeg(true).MustExp2(true) // 2^-q
		out = v.MustMul(keep, true)
		keep.MustDrop()
	})
	return out
}

// logSqrt2 computes RepQ-ViT's log-sqrt(2) quantization of x (no
// gradient), in the order of operations of LogSqrt2Quantizer.quantize so
// that float32 results agree with it bit for bit.
func (q *QuantSpec) logSqrt2(x *ts.Tensor) *ts.Tensor {
	var out *ts.Tensor
	ts.NoGrad(func() {
		levels := float64(int64(1) << q.Bits)
		// round(-2 log2(x/delta)); zeros give +inf and negatives NaN
		// (clamped to 0 first): both end up 0.
		e := x.MustClampMin(ts.FloatScalar(0), false).MustDivScalar(ts.FloatScalar(q.Scale[0]), true).
			MustLog2(true).MustMulScalar(ts.FloatScalar(-2), true).MustRound(true)
		keep := e.MustLt(ts.FloatScalar(levels), false) // false for +inf and NaN
		e = e.MustClamp(ts.FloatScalar(0), ts.FloatScalar(levels-1), true)
		odd := e.MustRemainder(ts.FloatScalar(2), false).MustMulScalar(ts.FloatScalar(math.Sqrt2-1), true).
			MustAddScalar(ts.FloatScalar(1), true)
		v := e.MustDivScalar(ts.FloatScalar(2), true).MustCeil(true).MustNeg(true).MustExp2(true) // 2^-ceil(q/2)
		v = v.MustMul(odd, true).MustMulScalar(ts.FloatScalar(q.Scale[0]), true)
		odd.MustDrop()
		out = v.MustMul(keep, true)
		keep.MustDrop()
	})
	return out
}

// twin computes PTQ4ViT's twin uniform quantization of x (no gradient).
func (q *QuantSpec) twin(x *ts.Tensor) *ts.Tensor {
	var out *ts.Tensor
	ts.NoGrad(func() {
		hi := float64(int64(1)<<(q.Bits-1)) - 1
		grid := func(s float64, lo, hi float64) *ts.Tensor {
			return x.MustDivScalar(ts.FloatScalar(s), false).MustRound(true).
				MustClamp(ts.FloatScalar(lo), ts.FloatScalar(hi), true).MustMulScalar(ts.FloatScalar(s), true)
		}
		first := grid(q.Scale[0], float64(q.QMin), float64(q.QMax))
		second := grid(q.Scale[1], 0, hi)
		below := x.MustLt(ts.FloatScalar(q.Split), false)
		out = first.MustWhereSelf(below, second, true) // where(below, first, second)
		second.MustDrop()
		below.MustDrop()
	})
	return out
}

// straightThrough returns q (computed from x without gradient) with x's
// gradient passed straight through: x + (q - x).detach().
func straightThrough(x, q *ts.Tensor) *ts.Tensor {
	if !x.MustRequiresGrad() {
		return q
	}
	d := q.MustSub(x, true).MustDetach(true)
	y := x.MustAdd(d, false)
	d.MustDrop()
	return y
}

// QuantState is a model's quantization, persisted in its Config.
type QuantState struct {
	// Precision is PrecisionInt for integer grids (simulated: weights are
	// stored fake-quantized in float32 and activations fake-quantized at
	// their taps), or PrecisionFP16/PrecisionBF16 for a real cast of every
	// tensor.
	Precision string `json:"precision"`
	// Weights holds the quantizer of each quantized parameter, by its
	// name in the VarStore ("blocks.0.attn.qkv.weight"; a factored layer
	// has "….qkv.0.weight" and "….qkv.1.weight"). The stored values are
	// already on the grid; the spec gives their packed size.
	Weights map[string]*QuantSpec `json:"weights,omitempty"`
	// Acts holds the activation quantizers by ActKey, ActInput, ActHead
	// or ActHeadDist.
	Acts map[string]*QuantSpec `json:"acts,omitempty"`
	// Mixed records the mixed-precision search that chose the weights'
	// widths, when one did.
	Mixed *MixedPrecision `json:"mixed,omitempty"`
}

// DType is the dtype the model's tensors have under this state.
func (s *QuantState) DType() gotch.DType {
	switch {
	case s == nil:
		return gotch.Float
	case s.Precision == PrecisionFP16:
		return gotch.Half
	case s.Precision == PrecisionBF16:
		return gotch.BFloat16
	}
	return gotch.Float
}

// validate checks the state against the model's parameters and sites.
func (s *QuantState) validate(m *Model) error {
	var errs []string
	switch s.Precision {
	case PrecisionInt:
	case PrecisionFP16, PrecisionBF16:
		if len(s.Weights)+len(s.Acts) > 0 {
			errs = append(errs, fmt.Sprintf("precision %s takes no integer quantizers", s.Precision))
		}
	default:
		errs = append(errs, fmt.Sprintf("unknown precision %q (%s, %s, %s)", s.Precision, PrecisionInt, PrecisionFP16, PrecisionBF16))
	}
	vars := m.VS.Variables()
	for _, name := range slices.Sorted(maps.Keys(s.Weights)) {
		spec := s.Weights[name]
		v, ok := vars[name]
		if !ok {
			errs = append(errs, fmt.Sprintf("weight quantizer for %s, which the model does not have", name))
			continue
		}
		if err := spec.Validate(); err != nil {
			errs = append(errs, fmt.Sprintf("weight %s: %v", name, err))
			continue
		}
		if spec.Kind == QuantUniform && spec.Axis >= 0 {
			size := v.MustSize()
			if spec.Axis >= len(size) || int64(len(spec.Scale)) != size[spec.Axis] {
				errs = append(errs, fmt.Sprintf("weight %s %v: %d scales on axis %d", name, size, len(spec.Scale), spec.Axis))
			}
		}
	}
	sites := m.TapPoints()
	for _, key := range slices.Sorted(maps.Keys(s.Acts)) {
		spec := s.Acts[key]
		if _, ok := sites[key]; !ok {
			errs = append(errs, fmt.Sprintf("activation quantizer at %s, which the model does not have", key))
			continue
		}
		if err := spec.Validate(); err != nil {
			errs = append(errs, fmt.Sprintf("activation %s: %v", key, err))
			continue
		}
		switch {
		case spec.Kind == QuantLogIntSoftmax && !isAttnMapKey(key):
			errs = append(errs, fmt.Sprintf("activation %s: log-int-softmax replaces softmax: attention maps only", key))
		case spec.Kind == QuantUniform && spec.Axis >= 0 && isNormKey(key):
			// FQ-ViT's Power-of-Two Factor: a scale per channel of [B,N,D].
			if spec.Axis != 2 || len(spec.Scale) != m.Cfg.EmbedDim {
				errs = append(errs, fmt.Sprintf("activation %s: %d scales on axis %d, want %d on axis 2", key, len(spec.Scale), spec.Axis, m.Cfg.EmbedDim))
			}
		case spec.Kind == QuantUniform && spec.Axis >= 0:
			errs = append(errs, fmt.Sprintf("activation %s: per-channel activation quantizers are not executed (LayerNorm inputs only)", key))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("quantization of %q: %s", m.Cfg.Name, strings.Join(errs, "; "))
	}
	return nil
}

// TapPoints returns the model's activation tap fields by key (ActInput,
// ActHead, ActHeadDist and ActKey of every block site), so that a caller
// can observe an activation and restore the tap afterwards.
func (m *Model) TapPoints() map[string]*Tap {
	pts := map[string]*Tap{
		ActInput: &m.InputTap,
		ActNorm:  &m.NormTap,
		ActHead:  &m.Head.Tap,
	}
	if m.HeadDist != nil {
		pts[ActHeadDist] = &m.HeadDist.Tap
	}
	for _, b := range m.Blocks {
		for _, s := range sites() {
			pts[ActKey(b.Index, s)] = &b.Taps[s]
		}
	}
	return pts
}

// quantPoint is where the quantizer spec at key runs: its tap point, or
// for Log-Int-Softmax the block's Softmax, which it replaces.
func (m *Model) quantPoint(key string, spec *QuantSpec) *Tap {
	if spec.Kind == QuantLogIntSoftmax {
		for _, b := range m.Blocks {
			if key == ActKey(b.Index, SiteAttnMap) {
				return &b.Softmax
			}
		}
	}
	return m.TapPoints()[key]
}

// isNormKey reports whether key names a LayerNorm input.
func isNormKey(key string) bool {
	return key == ActNorm || strings.HasPrefix(key, "blocks.") &&
		(strings.HasSuffix(key, "."+SiteNorm1In.String()) || strings.HasSuffix(key, "."+SiteNorm2In.String()))
}

// ChainTap returns a tap that runs first, then then, freeing the
// intermediate tensor; either may be nil.
func ChainTap(first, then Tap) Tap {
	switch {
	case first == nil:
		return then
	case then == nil:
		return first
	}
	return chainTap{first, then}
}

type chainTap struct{ first, then Tap }

func (c chainTap) Tap(x *ts.Tensor) *ts.Tensor {
	y := c.first.Tap(x)
	z := c.then.Tap(y)
	if y != x && z != y {
		y.MustDrop()
	}
	return z
}

// SetQuant quantizes the model as s describes and records s in its
// configuration: integer weights are rounded to their grids in place and
// activation quantizers attached at their sites; a float16 or bfloat16
// precision casts every tensor. A nil s is a no-op on a float32 model.
// The model must not be quantized already.
func (m *Model) SetQuant(s *QuantState) error {
	if m.Cfg.Quant != nil {
		return fmt.Errorf("model %q is already quantized (%s)", m.Cfg.Name, m.Cfg.Quant.Precision)
	}
	if s == nil {
		return nil
	}
	if err := s.validate(m); err != nil {
		return err
	}
	torchrt.NoGrad(func() {
		for name, spec := range s.Weights {
			w, _ := m.VS.Root().Get(name)
			q := spec.Apply(w)
			w.Copy_(q)
			q.MustDrop()
		}
	})
	m.Cfg.Quant = s
	_, err := m.attachQuant()
	return err
}

// attachQuant re-creates what Cfg.Quant asks of a freshly built model:
// the float16/bfloat16 cast of its tensors, or its activation quantizers.
// Weights are not touched: a loaded model's are already on their grids.
// On error the model is dropped.
func (m *Model) attachQuant() (*Model, error) {
	s := m.Cfg.Quant
	if s == nil {
		return m, nil
	}
	if err := s.validate(m); err != nil {
		m.Drop()
		return nil, err
	}
	switch s.Precision {
	case PrecisionFP16, PrecisionBF16:
		dt := s.DType()
		if m.PatchW.DType() != dt {
			torchrt.NoGrad(func() { m.VS.ToDType(dt) })
			m.rebind()
		}
		// The image arrives in float32; softmax is computed in float32
		// (Block.Forward asks for it) and cast back for the product
		// with the values.
		c := castTap{dt}
		m.InputTap = ChainTap(m.InputTap, c)
		for _, b := range m.Blocks {
			b.Taps[SiteAttnMap] = ChainTap(b.Taps[SiteAttnMap], c)
		}
	case PrecisionInt:
		// Taps already there (token reduction's proportional attention)
		// run first; the quantizer sees their output.
		for key, spec := range s.Acts {
			p := m.quantPoint(key, spec)
			*p = ChainTap(*p, spec)
		}
	}
	return m, nil
}

// castTap casts an activation to a dtype.
type castTap struct{ dtype gotch.DType }

func (c castTap) Tap(x *ts.Tensor) *ts.Tensor { return x.MustTotype(c.dtype, false) }

// rebind points the model's tensor fields at the VarStore's tensors after
// the VarStore replaced them (a dtype cast creates new tensors).
func (m *Model) rebind() {
	get := func(name string) *ts.Tensor {
		t, err := m.VS.Root().Get(name)
		if err != nil {
			panic(fmt.Sprintf("vit: rebind: %v", err))
		}
		return t
	}
	opt := func(name string) *ts.Tensor {
		t, err := m.VS.Root().Get(name)
		if err != nil {
			return nil
		}
		return t
	}
	linear := func(l *Linear) {
		if l.Rank > 0 {
			l.Down = get(l.Name + ".0.weight")
			l.Up = get(l.Name + ".1.weight")
			l.Bias = opt(l.Name + ".1.bias")
		} else {
			l.Weight = get(l.Name + ".weight")
			l.Bias = opt(l.Name + ".bias")
		}
	}
	m.PatchW = get("patch_embed.proj.weight")
	m.PatchB = get("patch_embed.proj.bias")
	m.ClsToken = get("cls_token")
	if m.DistToken != nil {
		m.DistToken = get("dist_token")
	}
	m.PosEmbed = get("pos_embed")
	for _, b := range m.Blocks {
		p := "blocks." + strconv.Itoa(b.Index) + "."
		b.Norm1W, b.Norm1B = get(p+"norm1.weight"), get(p+"norm1.bias")
		b.Norm2W, b.Norm2B = get(p+"norm2.weight"), get(p+"norm2.bias")
		for _, l := range []*Linear{b.QKV, b.Proj, b.FC1, b.FC2} {
			linear(l)
		}
	}
	m.NormW, m.NormB = get("norm.weight"), get("norm.bias")
	linear(m.Head)
	if m.HeadDist != nil {
		linear(m.HeadDist)
	}
}

// bitsOf is the storage width of an element of dtype dt.
func bitsOf(dt gotch.DType) int { return 8 * int(dt.Size()) }

// paramBytes is the size of a quantizer's parameters as stored: scales
// (a log-sqrt2 quantizer's step among them) as float32, zero points as int32 (none when symmetric), split points as
// float32.
func (q *QuantSpec) paramBytes() int64 {
	n := int64(4 * len(q.Scale))
	if !q.Symmetric {
		n += int64(4 * len(q.ZeroPoint))
	}
	if q.Kind == QuantTwin {
		n += 4
	}
	return n
}

// SizeBytes is the model's size as stored at its bit widths: every
// tensor at its dtype's width (4 bytes for float32, 2 for float16 and
// bfloat16), except quantized weights, which count their bits packed
// (ceil(elements x bits / 8) bytes) plus their scales and zero points;
// activation quantizers add their scales and zero points.
func (m *Model) SizeBytes() int64 {
	s := m.Cfg.Quant
	var n int64
	for name, t := range m.VS.Variables() {
		numel := int64(t.Numel())
		if s != nil {
			if spec, ok := s.Weights[name]; ok {
				n += (numel*int64(spec.Bits)+7)/8 + spec.paramBytes()
				continue
			}
		}
		n += numel * int64(t.DType().Size())
	}
	if s != nil {
		for _, spec := range s.Acts {
			n += spec.paramBytes()
		}
	}
	return n
}

// BitOps is the model's bit operations for one image: each layer's
// multiply-accumulates times the bit widths of its two operands (weights
// and input activation; 32 for float32, 16 for a float16/bfloat16 cast).
// The attention products count half their MACs as q·kᵀ (the q and k
// bits) and half as attention·v (the attention map's and v's bits).
// Dense MACs are used: pruned zeros are not skipped.
func (m *Model) BitOps() int64 {
	s := m.Cfg.Quant
	float := bitsOf(s.DType())
	wbits := func(name string) int64 {
		if b, ok := s.weightBits(name); ok {
			return int64(b)
		}
		return int64(float)
	}
	abits := func(key string) int64 {
		if s != nil {
			if spec, ok := s.Acts[key]; ok {
				return int64(spec.Bits)
			}
		}
		return int64(float)
	}
	var total int64
	for _, l := range m.Cfg.Count().Layers {
		if l.MACs == 0 {
			continue
		}
		name := l.Name
		switch {
		case name == "patch_embed.proj":
			total += l.MACs * wbits(name) * abits(ActInput)
		case name == "head" || name == "head_dist":
			total += l.MACs * wbits(name) * abits(name+".in")
		case strings.HasPrefix(name, "blocks."):
			rest := strings.TrimPrefix(name, "blocks.")
			idx, layer, _ := strings.Cut(rest, ".")
			i, _ := strconv.Atoi(idx)
			switch layer {
			case "attn.matmul":
				qk := l.MACs / 2
				total += qk*abits(ActKey(i, SiteQ))*abits(ActKey(i, SiteK)) +
					(l.MACs-qk)*abits(ActKey(i, SiteAttnMap))*abits(ActKey(i, SiteV))
			case "attn.qkv":
				total += l.MACs * wbits(name) * abits(ActKey(i, SiteQKVIn))
			case "attn.proj":
				total += l.MACs * wbits(name) * abits(ActKey(i, SiteProjIn))
			case "mlp.fc1":
				total += l.MACs * wbits(name) * abits(ActKey(i, SiteFC1In))
			case "mlp.fc2":
				total += l.MACs * wbits(name) * abits(ActKey(i, SiteFC2In))
			default:
				total += l.MACs * int64(float) * int64(float)
			}
		default:
			total += l.MACs * int64(float) * int64(float)
		}
	}
	return total
}

// weightBits is the width of layer's quantized weights (of the first
// factor of a factored layer), and whether they are quantized.
func (s *QuantState) weightBits(layer string) (int, bool) {
	if s == nil {
		return 0, false
	}
	for _, k := range []string{layer + ".weight", layer + ".0.weight"} {
		if spec, ok := s.Weights[k]; ok {
			return spec.Bits, true
		}
	}
	return 0, false
}

// TimedGraph returns the model whose forward pass m's latency is measured
// on: m itself, or for a simulated (fake-quantized) model its
// Float32Graph, a copy (copied) that the caller drops.
func (m *Model) TimedGraph() (g *Model, copied bool, err error) {
	if m.Cfg.Executed != ExecutedSimulated {
		return m, false, nil
	}
	g, err = m.Float32Graph()
	return g, err == nil, err
}

// ExecutedSimulated is Config.Executed of a fake-quantized model.
const ExecutedSimulated = "simulated"

// Float32Graph returns a float32 model with m's structure (heads, widths,
// ranks, token reduction) and weights but none of its quantizers: the
// graph whose latency a simulated (fake-quantized) model reports, since
// fake quantization adds float operations no real low-precision kernel
// would run. The caller drops the copy.
func (m *Model) Float32Graph() (*Model, error) {
	cfg := m.Cfg
	cfg.Quant, cfg.Executed = nil, ""
	f, err := New(cfg, m.VS.Device())
	if err != nil {
		return nil, err
	}
	src := m.VS.Variables()
	sd := make(map[string]*ts.Tensor, len(src))
	for name := range f.VS.Variables() {
		if t, ok := src[name]; ok {
			sd[name] = &t
		}
	}
	if err := f.LoadStateDict(sd); err != nil {
		f.Drop()
		return nil, fmt.Errorf("float32 graph: %w", err)
	}
	f.RecoverMasks()
	return f, nil
}

// Cast converts the model to float16 or bfloat16 for real (Cfg.Quant
// records it) and checks, with one forward pass of a random image, that
// this libtorch can run it on the model's device; otherwise it returns an
// error naming the precision, the device and libtorch's complaint (a
// missing kernel, say). On success Cfg.Executed is the precision.
func (m *Model) Cast(precision string) (err error) {
	if precision != PrecisionFP16 && precision != PrecisionBF16 {
		return fmt.Errorf("cast to %q: want %s or %s", precision, PrecisionFP16, PrecisionBF16)
	}
	if err := m.SetQuant(&QuantState{Precision: precision}); err != nil {
		return err
	}
	where := "the CPU"
	if m.VS.Device().IsCuda() {
		where = "CUDA"
	}
	defer func() {
		if p := recover(); p != nil {
			msg, _, _ := strings.Cut(fmt.Sprint(p), "\n")
			err = fmt.Errorf("precision %s does not execute on %s with this libtorch: %s", precision, where, msg)
		}
	}()
	c := m.Cfg
	x := ts.MustRandn([]int64{1, int64(c.InChans), int64(c.ImgSize), int64(c.ImgSize)}, gotch.Float, m.VS.Device())
	defer x.MustDrop()
	torchrt.NoGrad(func() { m.Forward(x).MustDrop() })
	m.Cfg.Executed = precision
	return nil
}
