package quantize

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques"
)

// repqCase is one tensor for the RepQ-ViT reference comparison.
type repqCase struct {
	name  string
	kind  string // "log-sqrt2", "uniform" (per tensor), "uniform-channel"
	bits  int
	shape []int64
	seed  uint64
}

var repqCases = []repqCase{
	{name: "attention map 3 bits", kind: "log-sqrt2", bits: 3, shape: []int64{2, 3, 12, 12}, seed: 1},
	{name: "attention map 4 bits", kind: "log-sqrt2", bits: 4, shape: []int64{2, 4, 24, 24}, seed: 2},
	{name: "attention map 6 bits", kind: "log-sqrt2", bits: 6, shape: []int64{2, 2, 17, 17}, seed: 3},
	{name: "heavy-tailed activation 4 bits", kind: "uniform", bits: 4, shape: []int64{4, 50, 24}, seed: 4},
	{name: "GELU output 8 bits", kind: "uniform", bits: 8, shape: []int64{2, 40, 32}, seed: 5},
	{name: "weight per channel 4 bits", kind: "uniform-channel", bits: 4, shape: []int64{16, 96}, seed: 6},
	{name: "post-LayerNorm per channel 4 bits", kind: "uniform-channel", bits: 4, shape: []int64{4, 20, 12}, seed: 7},
}

// data returns the case's tensor values: softmax of scaled Gaussian
// logits for the attention map; Gaussians with rare large outliers
// (per tensor), GELU of that, weights with a few wide rows, or
// post-LayerNorm-like channels with their own offsets and spreads (one
// channel entirely positive, so its zero point falls outside the grid).
func (c repqCase) data() []float32 {
	rng := rand.New(rand.NewPCG(c.seed, 91))
	n := int64(1)
	for _, s := range c.shape {
		n *= s
	}
	v := make([]float32, n)
	switch {
	case c.kind == "log-sqrt2":
		for i := range v {
			v[i] = float32(3 * rng.NormFloat64())
		}
		x := ts.MustOfSlice(v).MustView(c.shape, true)
		p := x.MustSoftmax(-1, gotch.Float, true)
		v = float32s(p)
		p.MustDrop()
	case c.kind == "uniform":
		for i := range v {
			x := rng.NormFloat64()
			if rng.IntN(300) == 0 {
				x *= 20
			}
			v[i] = float32(x)
		}
		if c.bits == 8 {
			for i, x := range v {
				v[i] = float32(0.5 * float64(x) * (1 + math.Erf(float64(x)/math.Sqrt2)))
			}
		}
	case len(c.shape) == 2:
		cols := int(c.shape[1])
		for i := range v {
			w := 0.05
			if (i/cols)%5 == 0 {
				w = 0.4
			}
			v[i] = float32(w * rng.NormFloat64())
		}
	default:
		ch := int(c.shape[2])
		off, spread := make([]float64, ch), make([]float64, ch)
		for j := range off {
			off[j], spread[j] = 0.5*rng.NormFloat64(), 0.2+2*rng.Float64()
		}
		off[3], spread[3] = 6, 0.5 // never crosses 0
		for i := range v {
			j := i % ch
			v[i] = float32(off[j] + spread[j]*rng.NormFloat64())
		}
	}
	return v
}

type repqRef struct {
	Delta     []float64 `json:"delta"`
	ZeroPoint []float64 `json:"zero_point"`
	Out       []float64 `json:"out"`
}

// runRepQReference runs testdata/repq_reference.py on the cases' data.
func runRepQReference(t *testing.T, cases []repqCase, data [][]float32) []repqRef {
	t.Helper()
	if _, err := os.Stat(referencePython); err != nil {
		t.Fatalf("reference interpreter %s missing: run make setup (installs python3-torch)", referencePython)
	}
	var in []map[string]any
	for i, c := range cases {
		in = append(in, map[string]any{"kind": c.kind, "bits": c.bits, "shape": c.shape, "x": data[i]})
	}
	var ref struct {
		Cases []repqRef `json:"cases"`
	}
	runReference(t, "repq_reference.py", map[string]any{"cases": in}, &ref)
	if len(ref.Cases) != len(cases) {
		t.Fatalf("reference answered %d cases, want %d", len(ref.Cases), len(cases))
	}
	return ref.Cases
}

// repqRule is the Rule the case's quantizer is calibrated with here.
func (c repqCase) rule() Rule {
	switch {
	case c.kind == "log-sqrt2":
		return Rule{Shape: ShapeLogSqrt2, Bits: c.bits}
	case c.kind == "uniform":
		return Rule{Shape: ShapeUniform, Bits: c.bits, Calibrator: techniques.CalibRepQ, Axis: -1}
	case len(c.shape) == 2:
		return Rule{Shape: ShapeUniform, Bits: c.bits, Calibrator: techniques.CalibRepQ, Axis: 0}
	}
	return Rule{Shape: ShapeUniform, Bits: c.bits, Calibrator: techniques.CalibRepQ, PerChannelLast: true}
}

// quantized returns x on spec's grid: spec.Apply, or for the
// post-LayerNorm case (per channel of the last axis, zero points that may
// lie off the grid) RepQ-ViT's formula in float32.
func (c repqCase) quantized(x *ts.Tensor, v []float32, spec *vit.QuantSpec) []float32 {
	if !c.rule().PerChannelLast {
		var q *ts.Tensor
		torchrt.NoGrad(func() { q = spec.Apply(x) })
		defer q.MustDrop()
		return float32s(q)
	}
	ch := int(c.shape[len(c.shape)-1])
	out := make([]float32, len(v))
	for i, x := range v {
		d, z := float32(spec.Scale[i%ch]), float64(spec.ZeroPoint[i%ch])
		q := min(max(math.RoundToEven(float64(x/d))+z, float64(spec.QMin)), float64(spec.QMax))
		out[i] = float32(q-z) * d
	}
	return out
}

// TestRepQMatchesReference calibrates RepQ-ViT's two quantizers on fixed
// tensors as the authors' code does (testdata/repq_reference.py) and
// compares: the chosen steps and zero points agree to float32 rounding of
// the quantiles, and the quantized tensors elementwise (a uniform value
// may land one step apart where x/delta falls on a rounding tie, since
// PyTorch's fake_quantize multiplies by 1/delta).
func TestRepQMatchesReference(t *testing.T) {
	data := make([][]float32, len(repqCases))
	for i, c := range repqCases {
		data[i] = c.data()
	}
	refs := runRepQReference(t, repqCases, data)
	for i, c := range repqCases {
		t.Run(c.name, func(t *testing.T) {
			ref := refs[i]
			x := ts.MustOfSlice(data[i]).MustView(c.shape, true)
			defer x.MustDrop()
			var spec *vit.QuantSpec
			var err error
			torchrt.NoGrad(func() { spec, err = CalibrateTensor(x, c.rule()) })
			if err != nil {
				t.Fatal(err)
			}
			if len(spec.Scale) != len(ref.Delta) {
				t.Fatalf("%d steps, reference %d", len(spec.Scale), len(ref.Delta))
			}
			for j, d := range ref.Delta {
				if math.Abs(spec.Scale[j]-d) > 1e-6*math.Abs(d) {
					t.Errorf("step %d: %.9g, reference %.9g", j, spec.Scale[j], d)
				}
			}
			for j, z := range ref.ZeroPoint {
				if float64(spec.ZeroPoint[j]) != z {
					t.Errorf("zero point %d: %d, reference %g", j, spec.ZeroPoint[j], z)
				}
			}
			got := c.quantized(x, data[i], spec)
			if len(got) != len(ref.Out) {
				t.Fatalf("%d values, reference %d", len(got), len(ref.Out))
			}
			differ := 0
			for j, r := range ref.Out {
				if float64(got[j]) == r || math.Abs(float64(got[j])-r) <= 1e-6*math.Abs(r) {
					continue
				}
				differ++
				step := spec.Scale[0]
				if len(spec.Scale) > 1 {
					step = spec.Scale[j/int(c.shape[1])]
				}
				if c.kind == "log-sqrt2" || math.Abs(math.Abs(float64(got[j])-r)-step) > 1e-5*step {
					t.Errorf("value %d (x = %g): %g, reference %g", j, data[i][j], got[j], r)
				}
			}
			t.Logf("steps %v…; %d of %d values differ from the reference (by one step)", spec.Scale[:min(3, len(spec.Scale))], differ, len(got))
			if frac := float64(differ) / float64(len(got)); frac > 0.002 {
				t.Errorf("%d of %d values differ from the reference", differ, len(got))
			}
		})
	}
}

// TestRepQSearchChoosesPerRow: the per-channel search keeps each row's
// own best candidate; a row whose range does not contain 0 keeps its raw
// zero point when the rule is a post-LayerNorm one (reparameterized
// later) and gets an executable grid otherwise.
func TestRepQSearchChoosesPerRow(t *testing.T) {
	v := make([]float32, 2*1000)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 1000 {
		v[i] = float32(rng.NormFloat64())
		v[1000+i] = float32(5 + 0.1*rng.NormFloat64())
	}
	x := ts.MustOfSlice(v).MustView([]int64{2, 1000}, true)
	defer x.MustDrop()
	for _, tc := range []struct {
		name string
		rule Rule
		raw  bool
	}{
		{"weight rows", Rule{Shape: ShapeUniform, Bits: 4, Calibrator: techniques.CalibRepQ, Axis: 0}, false},
		{"post-LayerNorm channels", Rule{Shape: ShapeUniform, Bits: 4, Calibrator: techniques.CalibRepQ, PerChannelLast: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := x
			if tc.raw {
				in = x.MustT(false) // channels last
				defer in.MustDrop()
			}
			spec, err := CalibrateTensor(in, tc.rule)
			if err != nil {
				t.Fatal(err)
			}
			if len(spec.Scale) != 2 {
				t.Fatalf("%d scales, want 2", len(spec.Scale))
			}
			// Raw, the narrow row gets its own fine grid; made
			// executable, its range is widened to reach 0.
			if tc.raw && spec.Scale[1] > spec.Scale[0]/3 {
				t.Errorf("narrow row's step %g, wide row's %g: the rows were not searched apart", spec.Scale[1], spec.Scale[0])
			}
			if z := spec.ZeroPoint[1]; tc.raw != (z < 0) {
				t.Errorf("positive row's zero point %d (raw %v)", z, tc.raw)
			}
			if !tc.raw {
				if err := spec.Validate(); err != nil {
					t.Errorf("executable spec: %v", err)
				}
			}
		})
	}
}

// TestStageRepQViT quantizes the tiny model through the stage with method
// repq-vit and the calibrator unset: the attention maps get log-sqrt(2)
// quantizers with a searched step (below 1: the largest probabilities
// are rare), the calibrator resolves to repq (affine grids from 0, weights
// per output channel), qkv and fc1 inputs are reparameterized to one
// scale, and a calibrator named by the stage is kept for the uniform
// grids while the attention map stays log-sqrt(2).
func TestStageRepQViT(t *testing.T) {
	for _, tc := range []struct {
		calibrator, want string
	}{{"", techniques.CalibRepQ}, {techniques.CalibMinMax, techniques.CalibMinMax}} {
		t.Run("calibrator "+tc.want, func(t *testing.T) {
			m := trainedModel(t)
			defer m.Drop()
			var cfg *techniques.QuantizeConfig
			if _, err := applyStage(t, m, newEnv(nil), func(c *techniques.QuantizeConfig) {
				c.Method, c.WeightBits, c.ActBits, c.AttnBits, c.CalibImages = techniques.MethodRepQViT, 4, 4, 4, 64
				c.Calibrator = tc.calibrator
				cfg = c
			}); err != nil {
				t.Fatal(err)
			}
			if cfg.Calibrator != tc.want {
				t.Errorf("calibrator resolved to %q, want %q", cfg.Calibrator, tc.want)
			}
			q := m.Cfg.Quant
			for _, b := range m.Blocks {
				key := vit.ActKey(b.Index, vit.SiteAttnMap)
				s := q.Acts[key]
				if s == nil || s.Kind != vit.QuantLogSqrt2 || s.Bits != 4 || len(s.Scale) != 1 {
					t.Fatalf("%s: %+v, want a 4-bit log-sqrt2 quantizer", key, s)
				}
				if d := s.Scale[0]; !(d > 0.01 && d < 1) {
					t.Errorf("%s: step %g, want a searched one in (0.01, 1)", key, d)
				}
				t.Logf("%s: step %.4g", key, s.Scale[0])
				for _, site := range []vit.Site{vit.SiteQKVIn, vit.SiteFC1In} {
					s := q.Acts[vit.ActKey(b.Index, site)]
					if s == nil || s.Kind != vit.QuantUniform || s.Axis != -1 {
						t.Errorf("%s: %+v, want one uniform grid", vit.ActKey(b.Index, site), s)
					}
				}
			}
			w := q.Weights["blocks.0.attn.qkv.weight"]
			if w == nil || w.Axis != 0 {
				t.Fatalf("qkv weight quantizer %+v, want per output channel", w)
			}
			if affine := w.QMin == 0 && !w.Symmetric; affine != (tc.want == techniques.CalibRepQ) {
				t.Errorf("qkv weight grid [%d, %d] symmetric %v with calibrator %s", w.QMin, w.QMax, w.Symmetric, tc.want)
			}
		})
	}
}
