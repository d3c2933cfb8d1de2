package vit

import (
	"math"
	"strings"
	"testing"

	"github.com/sugarme/gotch/ts"
)

// TestLogSqrt2Quantizer checks RepQ-ViT's log-sqrt(2) grid on values
// whose codes are known: x̂ = delta·2^(-q/2) for q = round(-2 log2(x/delta))
// in [0, 2^bits - 1], 0 beyond.
func TestLogSqrt2Quantizer(t *testing.T) {
	const delta = 0.5
	spec := &QuantSpec{Kind: QuantLogSqrt2, Bits: 3, Axis: -1, Scale: []float64{delta}}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		x, want float64
	}{
		{"the step itself (q = 0)", delta, delta},
		{"above the step (clamped to q = 0)", 0.9, delta},
		{"one half step down (q = 1)", delta / math.Sqrt2, delta / math.Sqrt2},
		{"one step down (q = 2)", delta / 2, delta / 2},
		{"between q = 2 and 3, nearer 2", delta * math.Pow(2, -1.2), delta / 2},
		{"last code (q = 7)", delta * math.Pow(2, -3.5), delta * math.Pow(2, -3.5)},
		{"first code past the grid (q = 8)", delta / 16, 0},
		{"zero", 0, 0},
	}
	xs := make([]float32, len(cases))
	for i, c := range cases {
		xs[i] = float32(c.x)
	}
	x := ts.MustOfSlice(xs)
	defer x.MustDrop()
	y := spec.Apply(x)
	defer y.MustDrop()
	got := y.Float64Values()
	for i, c := range cases {
		if math.Abs(got[i]-c.want) > 1e-6 {
			t.Errorf("%s: x = %g gives %g, want %g", c.name, c.x, got[i], c.want)
		}
	}
	if n := spec.paramBytes(); n != 4 {
		t.Errorf("parameters take %d bytes, want 4 (the step)", n)
	}
}

func TestLogSqrt2Validate(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec QuantSpec
		want string
	}{
		{"no step", QuantSpec{Kind: QuantLogSqrt2, Bits: 4, Axis: -1}, "one positive step"},
		{"zero step", QuantSpec{Kind: QuantLogSqrt2, Bits: 4, Axis: -1, Scale: []float64{0}}, "one positive step"},
		{"9 bits", QuantSpec{Kind: QuantLogSqrt2, Bits: 9, Axis: -1, Scale: []float64{1}}, "at most 8"},
	} {
		err := tc.spec.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}
