package quantize

import (
	"math"
	"os"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// TestFQViTMatchesReference compares the Power-of-Two Factor (scales,
// zero point, quantized LayerNorm input) and Log-Int-Softmax with FQ-ViT's
// code run in python3-torch (testdata/fqvit_reference.py) on the same
// fixed tensors, element by element.
func TestFQViTMatchesReference(t *testing.T) {
	if _, err := os.Stat(referencePython); err != nil {
		t.Fatalf("reference interpreter %s missing: run make setup (installs python3-torch)", referencePython)
	}
	// PTF: three batches [2,5,8] whose channels span ranges a factor 2^c%4 apart.
	torchrt.ManualSeed(3)
	shape := []int64{2, 5, 8}
	w := make([]float32, 8)
	for c := range w {
		w[c] = float32(int(1) << (c % 4))
	}
	wt := ts.MustOfSlice(w)
	defer wt.MustDrop()
	var batches []*ts.Tensor
	var batchVals [][]float32
	obs := NewObserver(Rule{Shape: ShapePTF, Bits: 8, PerChannelLast: true})
	for range 3 {
		b := ts.MustRandn(shape, gotch.Float, gotch.CPU).MustMul(wt, true).MustAddScalar(ts.FloatScalar(0.3), true)
		defer b.MustDrop()
		batches = append(batches, b)
		batchVals = append(batchVals, float32sOf(b))
		obs.Observe(b)
	}
	obs.Next()
	spec, err := obs.Spec()
	if err != nil {
		t.Fatal(err)
	}
	ptfOut := batches[2].MustShallowClone()
	defer ptfOut.MustDrop()
	got := spec.Apply(ptfOut)
	defer got.MustDrop()

	// LIS: logits on an 8-bit affine grid, two scales.
	type lisCase struct {
		Shape []int64   `json:"shape"`
		X     []float32 `json:"x"`
		Scale float64   `json:"scale"`
		Bits  int       `json:"bits"`
	}
	var cases []lisCase
	var lisGot [][]float64
	for i, sc := range []float64{0.05, 0.013} {
		torchrt.ManualSeed(int64(10 + i))
		ls := []int64{2, 2, 6, 6}
		x := ts.MustRandn(ls, gotch.Float, gotch.CPU).MustMulScalar(ts.FloatScalar(2), true)
		xq := x.MustFakeQuantizePerTensorAffine(float64(float32(sc)), 128, 0, 255, true)
		s := &vit.QuantSpec{Kind: vit.QuantLogIntSoftmax, Bits: 4 + i, Axis: -1, Scale: []float64{float64(float32(sc))}}
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		y := s.Apply(xq)
		lisGot = append(lisGot, y.Float64Values())
		cases = append(cases, lisCase{ls, float32sOf(xq), float64(float32(sc)), s.Bits})
		y.MustDrop()
		xq.MustDrop()
	}

	var ref struct {
		Scale     []float64   `json:"scale"`
		ZeroPoint float64     `json:"zero_point"`
		PTFOut    []float64   `json:"ptf_out"`
		LIS       [][]float64 `json:"lis"`
	}
	runReference(t, "fqvit_reference.py", map[string]any{"ptf_shape": shape, "ptf_batches": batchVals, "qmin": 0, "qmax": 255, "lis": cases}, &ref)
	alphas := map[float64]bool{}
	for c := range ref.Scale {
		if spec.Scale[c] != ref.Scale[c] || float64(spec.ZeroPoint[c]) != ref.ZeroPoint {
			t.Errorf("ptf channel %d: scale %g zero point %d, reference %g %g", c, spec.Scale[c], spec.ZeroPoint[c], ref.Scale[c], ref.ZeroPoint)
		}
		alphas[spec.Scale[c]/spec.Scale[0]] = true
	}
	if len(alphas) < 2 {
		t.Errorf("ptf chose one factor for every channel (%v): the search is not exercised", spec.Scale)
	}
	if d := maxDiff(got.Float64Values(), ref.PTFOut); d > 1e-6 {
		t.Errorf("ptf quantized input differs from the reference by %g", d)
	}
	for i := range cases {
		levels := map[float64]bool{}
		for _, v := range lisGot[i] {
			levels[v] = true
		}
		if len(levels) < 3 {
			t.Errorf("log-int-softmax %d: only %d distinct outputs", i, len(levels))
		}
		if d := maxDiff(lisGot[i], ref.LIS[i]); d != 0 {
			t.Errorf("log-int-softmax (scale %g, %d bits) differs from the reference by %g", cases[i].Scale, cases[i].Bits, d)
		}
	}
	t.Logf("ptf scales %v zero point %d; lis %d+%d values", spec.Scale, spec.ZeroPoint[0], len(lisGot[0]), len(lisGot[1]))
}

func float32sOf(x *ts.Tensor) []float32 {
	c := x.MustContiguous(false)
	defer c.MustDrop()
	out := make([]float32, c.Numel())
	c.MustCopyData(out, uint(len(out)))
	return out
}

func maxDiff(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(a[i]-b[i]))
	}
	return d
}
