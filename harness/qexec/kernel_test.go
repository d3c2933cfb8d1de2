package qexec

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// reference computes what the int8 kernel must: x rounded to its grid
// as PyTorch's fake quantization does, times the weights' grid values,
// in float64.
func reference(x []float32, rows, in int, w []int8, out int, wscale, bias []float32, act Activation, gelu bool) []float64 {
	xq := make([]float64, len(x))
	for r := range rows {
		a := act
		if act.Dynamic { // per row, symmetric
			m := float32(0)
			for _, v := range x[r*in : (r+1)*in] {
				m = max(m, float32(math.Abs(float64(v))))
			}
			a = Activation{Scale: m / 127, QMin: -127, QMax: 127}
		}
		inv := 1 / a.Scale
		for i := r * in; i < (r+1)*in; i++ {
			q := math.RoundToEven(float64(x[i]*inv)) + float64(a.ZeroPoint)
			q = min(max(q, float64(a.QMin)), float64(a.QMax))
			xq[i] = (q - float64(a.ZeroPoint)) * float64(a.Scale)
		}
	}
	y := make([]float64, rows*out)
	for r := range rows {
		for o := range out {
			s := 0.0
			for i := range in {
				s += xq[r*in+i] * float64(w[o*in+i]) * float64(wscale[o])
			}
			if bias != nil {
				s += float64(bias[o])
			}
			if gelu && !act.Dynamic {
				s = 0.5 * s * (1 + math.Erf(s/math.Sqrt2))
			}
			y[r*out+o] = s
		}
	}
	return y
}

func TestLinearMatchesReference(t *testing.T) {
	cases := []struct {
		name    string
		act     Activation
		bias    bool
		gelu    bool
		strided bool
		wide    bool // weights span all of s8, not [-64, 64]
	}{
		{"wide weights", Activation{Scale: 0.02, ZeroPoint: 131, QMin: 0, QMax: 255}, true, false, false, true},
		{"static affine u8", Activation{Scale: 0.02, ZeroPoint: 131, QMin: 0, QMax: 255}, true, false, false, false},
		{"static symmetric s8", Activation{Scale: 0.021, ZeroPoint: 0, QMin: -128, QMax: 127}, true, false, false, false},
		{"static 4-bit grid", Activation{Scale: 0.3, ZeroPoint: 8, QMin: 0, QMax: 15}, true, false, false, false},
		{"static signed 4-bit grid", Activation{Scale: 0.3, ZeroPoint: -1, QMin: -8, QMax: 7}, false, false, false, false},
		{"dynamic", Activation{Dynamic: true}, true, false, false, false},
		{"dynamic, gelu left to the caller", Activation{Dynamic: true}, true, true, false, false},
		{"gelu fused", Activation{Scale: 0.02, ZeroPoint: 128, QMin: 0, QMax: 255}, true, true, false, false},
		{"strided input", Activation{Scale: 0.02, ZeroPoint: 128, QMin: 0, QMax: 255}, true, false, true, false},
	}
	const rows, in, out = 37, 48, 24
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := make([]int8, out*in)
			for i := range w {
				if c.wide {
					w[i] = int8(rng.IntN(255) - 127)
				} else {
					w[i] = int8(rng.IntN(129) - 64)
				}
			}
			wscale := make([]float32, out)
			var bias []float32
			if c.bias {
				bias = make([]float32, out)
			}
			for o := range out {
				wscale[o] = 0.001 + 0.01*rng.Float32()
				if bias != nil {
					bias[o] = rng.Float32() - 0.5
				}
			}
			k, err := NewLinear(w, out, in, wscale, bias, c.act, c.gelu)
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			x := make([]float32, rows*in)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			xt := ts.MustOfSlice(x).MustView([]int64{rows, in}, true)
			defer xt.MustDrop()
			input := xt
			if c.strided {
				// The same values through a transposed copy, read as a
				// non-contiguous view.
				tt := xt.MustT(false).MustContiguous(true)
				defer tt.MustDrop()
				input = tt.MustT(false)
				defer input.MustDrop()
				if input.MustIsContiguous() {
					t.Fatal("the strided case's input is contiguous")
				}
			}
			y := k.Forward(input)
			defer y.MustDrop()
			if got := y.MustSize(); got[0] != rows || got[1] != out {
				t.Fatalf("output %v, want [%d %d]", got, rows, out)
			}
			got := make([]float32, rows*out)
			y.MustCopyData(got, uint(len(got)))
			want := reference(x, rows, in, w, out, wscale, bias, c.act, c.gelu)
			worst := 0.0
			for i := range got {
				worst = max(worst, math.Abs(float64(got[i])-want[i])/(1+math.Abs(want[i])))
			}
			// Without VNNI, wide weights saturate (Saturates says so and
			// the difference shows it); otherwise the sums are exact.
			if wantSat := c.wide && FastInt8() != "vnni"; k.Saturates() != wantSat {
				t.Errorf("Saturates() = %v on a CPU with %q int8 kernels, want %v", k.Saturates(), FastInt8(), wantSat)
			}
			switch {
			case k.Saturates() && worst <= 1e-4:
				t.Errorf("a saturating kernel matched the exact reference (%.3g): the test's wide weights no longer test saturation", worst)
			case !k.Saturates() && worst > 1e-4:
				t.Errorf("largest relative difference from the reference %.3g (want <= 1e-4)", worst)
			}
			if k.Impl() == "" {
				t.Error("no oneDNN implementation recorded after a pass")
			}
		})
	}
}

func TestNewLinearRejects(t *testing.T) {
	w := make([]int8, 6)
	s := []float32{1, 1}
	cases := []struct {
		name string
		act  Activation
		w    []int8
	}{
		{"grid wider than 8 bits", Activation{Scale: 1, QMin: -200, QMax: 200}, w},
		{"zero scale", Activation{Scale: 0, QMin: 0, QMax: 255}, w},
		{"zero point off the grid", Activation{Scale: 1, ZeroPoint: 300, QMin: 0, QMax: 255}, w},
		{"weights of the wrong size", Activation{Dynamic: true}, w[:5]},
	}
	for _, c := range cases {
		if k, err := NewLinear(c.w, 2, 3, s, nil, c.act, false); err == nil {
			k.Close()
			t.Errorf("%s: accepted", c.name)
		}
	}
}

func TestForwardRejectsOtherDTypes(t *testing.T) {
	k, err := NewLinear(make([]int8, 6), 2, 3, []float32{1, 1}, nil, Activation{Dynamic: true}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	x := ts.MustOnes([]int64{4, 3}, gotch.Double, gotch.CPU)
	defer x.MustDrop()
	defer func() {
		if recover() == nil {
			t.Error("a float64 input did not panic")
		}
	}()
	k.Forward(x).MustDrop()
}
