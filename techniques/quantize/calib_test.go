package quantize

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques"
)

// referencePython is Debian's interpreter with python3-torch; a python3
// earlier on PATH (pyenv) may lack torch.
const referencePython = "/usr/bin/python3"

type fakeQuantCase struct {
	Name      string    `json:"name"`
	Axis      int       `json:"axis"`
	Bits      int       `json:"bits"`
	Symmetric bool      `json:"symmetric"`
	Shape     []int64   `json:"shape"`
	X         []float32 `json:"x"`
	Scale     []float64 `json:"scale"`
	ZeroPoint []int64   `json:"zero_point"`
	Y         []float32 `json:"y"`
}

type emaCase struct {
	Name       string      `json:"name"`
	Constant   float64     `json:"constant"`
	PerChannel bool        `json:"per_channel"`
	Shape      []int64     `json:"shape"`
	Batches    [][]float32 `json:"batches"`
	Min, Max   []float64
	Scale      []float64 `json:"scale"`
	ZeroPoint  []int64   `json:"zero_point"`
}

func pytorchCases(t *testing.T) (fq []fakeQuantCase, ema []emaCase) {
	t.Helper()
	if _, err := os.Stat(referencePython); err != nil {
		t.Fatalf("reference interpreter %s missing: run make setup (installs python3-torch)", referencePython)
	}
	dir := t.TempDir()
	out, err := exec.Command(referencePython, "testdata/reference.py", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("reference.py: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var all struct {
		FakeQuant []fakeQuantCase `json:"fake_quant"`
		EMA       []emaCase       `json:"ema"`
	}
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	if len(all.FakeQuant) < 8 || len(all.EMA) != 2 {
		t.Fatalf("reference.py wrote %d fake-quant and %d ema cases", len(all.FakeQuant), len(all.EMA))
	}
	return all.FakeQuant, all.EMA
}

func tensorOf(t *testing.T, v []float32, shape []int64) *ts.Tensor {
	t.Helper()
	return ts.MustOfSlice(v).MustReshape(shape, true)
}

func float32s(x *ts.Tensor) []float32 {
	c := x.MustContiguous(false)
	defer c.MustDrop()
	out := make([]float32, c.Numel())
	c.MustCopyData(out, uint(len(out)))
	return out
}

// TestFakeQuantMatchesPyTorch checks min/max calibration, the qparams and
// the fake-quantized values, per tensor and per channel, symmetric and
// affine, at 2 to 8 bits, against PyTorch's observers and
// fake_quantize_per_{tensor,channel}_affine: they must agree exactly.
func TestFakeQuantMatchesPyTorch(t *testing.T) {
	cases, _ := pytorchCases(t)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			x := tensorOf(t, c.X, c.Shape)
			defer x.MustDrop()
			spec, err := CalibrateTensor(x, Rule{Shape: ShapeUniform, Bits: c.Bits, Symmetric: c.Symmetric, Calibrator: techniques.CalibMinMax, Axis: c.Axis})
			if err != nil {
				t.Fatal(err)
			}
			if c.Axis >= 0 {
				spec.Axis = c.Axis
			}
			if len(spec.Scale) != len(c.Scale) {
				t.Fatalf("%d scales, PyTorch %d", len(spec.Scale), len(c.Scale))
			}
			for i := range c.Scale {
				if spec.Scale[i] != c.Scale[i] || spec.ZeroPoint[i] != c.ZeroPoint[i] {
					t.Errorf("channel %d: scale %.9g zp %d, PyTorch %.9g %d", i, spec.Scale[i], spec.ZeroPoint[i], c.Scale[i], c.ZeroPoint[i])
				}
			}
			if err := spec.Validate(); err != nil {
				t.Fatal(err)
			}
			y := spec.Apply(x)
			defer y.MustDrop()
			got := float32s(y)
			diff := 0
			for i := range got {
				if got[i] != c.Y[i] {
					if diff < 3 {
						t.Errorf("element %d: %g, PyTorch %g", i, got[i], c.Y[i])
					}
					diff++
				}
			}
			if diff > 0 {
				t.Errorf("%d of %d elements differ", diff, len(got))
			}
		})
	}
}

// TestEMAMatchesPyTorch checks the moving-average calibrator against
// MovingAverage(PerChannel)MinMaxObserver over three batches.
func TestEMAMatchesPyTorch(t *testing.T) {
	_, cases := pytorchCases(t)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			axis := -1
			if c.PerChannel {
				axis = 0
			}
			o := NewObserver(Rule{Shape: ShapeUniform, Bits: 8, Calibrator: techniques.CalibEMA, EMA: c.Constant, Axis: axis})
			for _, b := range c.Batches {
				x := tensorOf(t, b, c.Shape)
				o.Observe(x)
				x.MustDrop()
			}
			o.Next()
			for i := range c.Min {
				if f32(o.ema.Lo[i]) != c.Min[i] || f32(o.ema.Hi[i]) != c.Max[i] {
					t.Errorf("row %d: range [%.9g, %.9g], PyTorch [%.9g, %.9g]", i, o.ema.Lo[i], o.ema.Hi[i], c.Min[i], c.Max[i])
				}
			}
			spec, err := o.Spec()
			if err != nil {
				t.Fatal(err)
			}
			for i := range c.Scale {
				if math.Abs(spec.Scale[i]-c.Scale[i]) > 1e-6*c.Scale[i] || spec.ZeroPoint[i] != c.ZeroPoint[i] {
					t.Errorf("row %d: scale %.9g zp %d, PyTorch %.9g %d", i, spec.Scale[i], spec.ZeroPoint[i], c.Scale[i], c.ZeroPoint[i])
				}
			}
		})
	}
}

func rowTensor(rows ...[]float32) *ts.Tensor {
	var flat []float32
	for _, r := range rows {
		flat = append(flat, r...)
	}
	return ts.MustOfSlice(flat).MustReshape([]int64{int64(len(rows)), int64(len(rows[0]))}, true)
}

func seq(from, to float32) []float32 {
	var out []float32
	for v := from; v <= to; v++ {
		out = append(out, v)
	}
	return out
}

func TestCalibratorsHandComputed(t *testing.T) {
	x := rowTensor(seq(1, 100), seq(-100, -1))
	defer x.MustDrop()
	tests := []struct {
		name string
		got  func() []float64
		want []float64
	}{
		// rank position p/100*(n-1): 0.9*99 = 89.1 → v[89] + 0.1 (v[90]-v[89])
		{"percentile 90", func() []float64 { return Percentile(x, 90, false) }, []float64{90.1, -10.9}},
		{"percentile 100", func() []float64 { return Percentile(x, 100, false) }, []float64{100, -1}},
		{"percentile 0", func() []float64 { return Percentile(x, 0, false) }, []float64{1, -100}},
		{"percentile 50 of |x|", func() []float64 { return Percentile(x, 50, true) }, []float64{50.5, 50.5}},
		{"min", func() []float64 { lo, _ := MinMax(x); return lo }, []float64{1, -100}},
		{"max", func() []float64 { _, hi := MinMax(x); return hi }, []float64{100, -1}},
		{"symmetric percentile range", func() []float64 { _, hi := PercentileRange(x, 99, true); return hi }, []float64{99.01, 99.01}},
		{"affine percentile low", func() []float64 { lo, _ := PercentileRange(x, 99, false); return lo }, []float64{1.99, -99.01}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.got()
			for i := range tt.want {
				if math.Abs(got[i]-tt.want[i]) > 1e-9 {
					t.Errorf("row %d: %g, want %g", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestEMAHandComputed(t *testing.T) {
	e := EMA{C: 0.5}
	e.Update([]float64{-1}, []float64{1})
	e.Update([]float64{-3}, []float64{5})
	e.Update([]float64{0}, []float64{1})
	// lo: -1 → -2 → -1; hi: 1 → 3 → 2
	if e.Lo[0] != -1 || e.Hi[0] != 2 {
		t.Errorf("ema range [%g, %g], want [-1, 2]", e.Lo[0], e.Hi[0])
	}
}

func TestQParamsHandComputed(t *testing.T) {
	tests := []struct {
		name      string
		lo, hi    float64
		bits      int
		symmetric bool
		scale     float64
		zp        int64
	}{
		{"sym 8 bits", -2, 1, 8, true, f32(2 / 127.5), 0},
		{"sym 4 bits", -1, 3, 4, true, f32(3 / 7.5), 0},
		{"affine 8 bits", -1, 3, 8, false, f32(4.0 / 255), 64},    // 0 - round(-1/(4/255)) = round(63.75)
		{"affine widened to 0", 2, 6, 4, false, f32(6.0 / 15), 0}, // lo 2 → 0
		{"affine all negative", -6, -2, 4, false, f32(6.0 / 15), 15},
		{"all zero", 0, 0, 8, false, eps32, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := QParams([]float64{tt.lo}, []float64{tt.hi}, tt.bits, tt.symmetric, -1)
			if s.Scale[0] != tt.scale || s.ZeroPoint[0] != tt.zp {
				t.Errorf("scale %.9g zp %d, want %.9g %d", s.Scale[0], s.ZeroPoint[0], tt.scale, tt.zp)
			}
			if err := s.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

// outlierRow is n-1 evenly spread values in [-1, 1] and one outlier at 10.
func outlierRow(n int) []float32 {
	v := make([]float32, n)
	for i := range n - 1 {
		v[i] = float32(-1 + 2*float64(i)/float64(n-2))
	}
	v[n-1] = 10
	return v
}

// bruteError is the squared error of a symmetric uniform quantizer of
// bits clipping at c, computed in float64 by hand.
func bruteError(v []float32, c float64, bits int) float64 {
	half := math.Ldexp(1, bits-1)
	scale := f32(c / ((2*half - 1) / 2))
	var e float64
	for _, x := range v {
		q := math.Min(math.Max(math.RoundToEven(float64(x)/scale), -half), half-1)
		d := q*scale - float64(x)
		e += d * d
	}
	return e
}

func TestMSESearchPicksLeastError(t *testing.T) {
	v := outlierRow(1000)
	x := rowTensor(v)
	defer x.MustDrop()
	const bits = 4
	alphas := Alphas(100)
	lo, hi := MSERange(x, alphas, bits, true)
	chosen := math.Max(-lo[0], hi[0])
	best, bestErr := 0.0, math.Inf(1)
	for _, a := range alphas {
		if e := bruteError(v, a*10, bits); e < bestErr {
			best, bestErr = a*10, e
		}
	}
	if got := bruteError(v, chosen, bits); got > bestErr*(1+1e-6) {
		t.Errorf("mse clip %g has error %g; the best clip %g has %g", chosen, got, best, bestErr)
	}
	if minmax := bruteError(v, 10, bits); !(bruteError(v, chosen, bits) < minmax/2) {
		t.Errorf("mse clip %g error not well below min/max's %g", chosen, minmax)
	}
	if chosen > 5 {
		t.Errorf("mse clip %g: want the outlier clipped (clip well below 10)", chosen)
	}
}

// TestW4OutliersCalibrators: at 4 bits on a large tensor with an outlier,
// the min/max range is worse than percentile and mse ranges. (On a small
// one the outlier's own error can outweigh the rest: see
// TestMSESearchPicksLeastError.)
func TestW4OutliersCalibrators(t *testing.T) {
	x := rowTensor(outlierRow(20000))
	defer x.MustDrop()
	errOf := func(cal string) float64 {
		s, err := CalibrateTensor(x, Rule{Shape: ShapeUniform, Bits: 4, Symmetric: false, Calibrator: cal, Percentile: 99, Axis: -1})
		if err != nil {
			t.Fatal(err)
		}
		return SquaredError(x, s)[0]
	}
	mm := errOf(techniques.CalibMinMax)
	for _, cal := range []string{techniques.CalibPercentile, techniques.CalibMSE, techniques.CalibOMSE} {
		if e := errOf(cal); !(e < mm) {
			t.Errorf("%s error %g, not below minmax %g", cal, e, mm)
		}
	}
}

func TestSpecialQuantizersHandComputed(t *testing.T) {
	in := []float32{1, 0.5, 0.3, 0.01, 0, 1e-9, 0.6, 0.25, 0.1}
	gin := []float32{-0.1, -0.5, 0, 1, 5, 0.2}
	tests := []struct {
		name string
		spec *vit.QuantSpec
		in   []float32
		want []float64
	}{
		// -log2: 0, 1, 1.74→2, 6.64→7, inf, 29.9→30 (≥ 8: 0), 0.74→1, 2, 3.32→3
		{"log2 3 bits", Log2Spec(3), in, []float64{1, 0.5, 0.25, 1.0 / 128, 0, 0, 0.5, 0.25, 0.125}},
		// split 0.25: below it steps of 0.25/7, above steps of 1/7 (in
		// float32, 0.5/f32(1/7) = 3.4999999 rounds to 3)
		{"twin softmax 4 bits", TwinSoftmaxSpec(4, 0.25), in, []float64{1, 3.0 / 7, 2.0 / 7, 0, 0, 0, 4.0 / 7, 2.0 / 7, 3 * f32(0.25/7)}},
		// negative steps 0.16997/8, positive steps 3/7
		{"twin gelu 4 bits", TwinGELUSpec(4, 3), gin, []float64{-5 * f32(geluMin/8), -8 * f32(geluMin/8), 0, 2 * f32(3.0/7), 7 * f32(3.0/7), 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.spec.Validate(); err != nil {
				t.Fatal(err)
			}
			x := ts.MustOfSlice(tt.in)
			defer x.MustDrop()
			y := tt.spec.Apply(x)
			defer y.MustDrop()
			got := float32s(y)
			for i := range tt.want {
				if math.Abs(float64(got[i])-tt.want[i]) > 1e-6 {
					t.Errorf("%g → %g, want %g", tt.in[i], got[i], tt.want[i])
				}
			}
		})
	}
}

// TestStraightThrough checks the gradients: the identity through log2 and
// twin quantizers, and the identity masked outside the clipping range
// through the uniform one.
func TestStraightThrough(t *testing.T) {
	vals := []float32{-3, -0.5, 0.2, 0.7, 3}
	tests := []struct {
		name string
		spec *vit.QuantSpec
		want []float64
	}{
		{"uniform clips", QParams([]float64{-1}, []float64{1}, 8, true, -1), []float64{0, 1, 1, 1, 0}},
		{"log2", Log2Spec(4), []float64{1, 1, 1, 1, 1}},
		{"twin", TwinGELUSpec(4, 1), []float64{1, 1, 1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := ts.MustOfSlice(vals).MustSetRequiresGrad(true, true)
			defer x.MustDrop()
			y := tt.spec.Apply(x)
			l := y.MustSum(gotch.Float, true)
			l.MustBackward()
			l.MustDrop()
			g := x.MustGrad(false)
			defer g.MustDrop()
			got := torchrt.Float64s(g)
			for i := range tt.want {
				if got[i] != tt.want[i] {
					t.Errorf("grad at %g: %g, want %g", vals[i], got[i], tt.want[i])
				}
			}
		})
	}
}

func TestRows(t *testing.T) {
	x := ts.MustArange(ts.IntScalar(24), gotch.Float, gotch.CPU).MustReshape([]int64{2, 3, 4}, true)
	defer x.MustDrop()
	r := Rows(x, 1)
	defer r.MustDrop()
	if s := r.MustSize(); s[0] != 3 || s[1] != 8 {
		t.Fatalf("rows of axis 1: %v, want [3 8]", s)
	}
	// row 1 holds x[:, 1, :] = 4..7 and 16..19
	lo, hi := MinMax(r)
	if lo[1] != 4 || hi[1] != 19 {
		t.Errorf("row 1 range [%g, %g], want [4, 19]", lo[1], hi[1])
	}
}
