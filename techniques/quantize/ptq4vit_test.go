package quantize

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/techtest"
	"github.com/vitbench/vitbench/techniques"

	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// searchCase is one linear layer for the PTQ4ViT search tests: inputs x
// [b, n, in], weight [out, in], bias, and an output gradient.
type searchCase struct {
	name             string
	b, n, in, out    int
	wBits, aBits, nV int
	postGELU         bool
	seed             uint64
}

var searchCases = []searchCase{
	{name: "w4a4 per tensor", b: 3, n: 9, in: 24, out: 16, wBits: 4, aBits: 4, nV: 1, seed: 1},
	{name: "w6a8 qkv (3 weight intervals)", b: 2, n: 7, in: 16, out: 48, wBits: 6, aBits: 8, nV: 3, seed: 2},
	{name: "w4a4 post-GELU input", b: 3, n: 9, in: 32, out: 12, wBits: 4, aBits: 4, nV: 1, postGELU: true, seed: 3},
}

// values returns the case's x, w, bias and grad as float32 slices: the
// inputs heavy-tailed (a few large values, as a transformer's), GELU
// applied for a post-GELU case; the gradient varies in size by token and
// feature so that the Hessian weighting matters.
func (c searchCase) values() (x, w, bias, grad []float32) {
	rng := rand.New(rand.NewPCG(c.seed, 11))
	x = make([]float32, c.b*c.n*c.in)
	for i := range x {
		v := rng.NormFloat64()
		if rng.IntN(20) == 0 {
			v *= 6
		}
		if c.postGELU {
			v = 0.5 * v * (1 + math.Erf(v/math.Sqrt2))
		}
		x[i] = float32(v)
	}
	w = make([]float32, c.out*c.in)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * 0.2 * (1 + float64(i/c.in%3)))
	}
	bias = make([]float32, c.out)
	for i := range bias {
		bias[i] = float32(rng.NormFloat64() * 0.1)
	}
	grad = make([]float32, c.b*c.n*c.out)
	for i := range grad {
		grad[i] = float32(rng.NormFloat64() * math.Exp(2*rng.Float64()))
	}
	return x, w, bias, grad
}

func (c searchCase) search(t *testing.T, s HessianSearch) (LinearSearch, func()) {
	t.Helper()
	xv, wv, bv, gv := c.values()
	l := LinearSearch{
		X:          ts.MustOfSlice(xv).MustView([]int64{int64(c.b), int64(c.n), int64(c.in)}, true),
		W:          ts.MustOfSlice(wv).MustView([]int64{int64(c.out), int64(c.in)}, true),
		B:          ts.MustOfSlice(bv),
		Grad:       ts.MustOfSlice(gv).MustView([]int64{int64(c.b), int64(c.n), int64(c.out)}, true),
		WeightBits: c.wBits, WeightGroups: c.nV, ActBits: c.aBits, ActShape: ShapeUniform,
	}
	if c.postGELU {
		l.ActShape = ShapeTwinGELU
	}
	torchrt.NoGrad(func() { l.Raw = ts.MustLinear(l.X, l.W, l.B) })
	return l, func() {
		for _, x := range []*ts.Tensor{l.X, l.W, l.B, l.Grad, l.Raw} {
			x.MustDrop()
		}
	}
}

// TestPTQ4ViTSearchMatchesReference runs the authors' batching search
// (testdata/ptq4vit_reference.py) on the same layer, gradient and
// candidate grid: the chosen weight and input intervals agree.
func TestPTQ4ViTSearchMatchesReference(t *testing.T) {
	if _, err := os.Stat(referencePython); err != nil {
		t.Fatalf("reference interpreter %s missing: run make setup (installs python3-torch)", referencePython)
	}
	s := HessianSearch{Alpha: 0.01, Beta: 1.2, N: 40, Rounds: 3, Chunk: 2}
	for _, c := range searchCases {
		t.Run(c.name, func(t *testing.T) {
			l, done := c.search(t, s)
			defer done()
			wspec, aspec, err := l.Search(s)
			if err != nil {
				t.Fatal(err)
			}
			xv, wv, bv, gv := c.values()
			var ref struct {
				W []float64 `json:"w_interval"`
				A float64   `json:"a_interval"`
			}
			runReference(t, "ptq4vit_reference.py", map[string]any{
				"x": xv, "w": wv, "bias": bv, "grad": gv, "b": c.b, "n": c.n, "in": c.in, "out": c.out,
				"w_bit": c.wBits, "a_bit": c.aBits, "n_V": c.nV, "postgelu": c.postGELU,
				"eq_alpha": s.Alpha, "eq_beta": s.Beta, "eq_n": s.N, "search_round": s.Rounds,
			}, &ref)
			per := c.out / c.nV
			for v, want := range ref.W {
				got := wspec.Scale[0]
				if len(wspec.Scale) > 1 {
					got = wspec.Scale[v*per]
				}
				if math.Abs(got-want) > 1e-6*want {
					t.Errorf("weight interval %d: got %g, reference %g", v, got, want)
				}
			}
			gotA := aspec.Scale[0]
			if c.postGELU {
				gotA = aspec.Scale[1]
			}
			if math.Abs(gotA-ref.A) > 1e-6*ref.A {
				t.Errorf("input interval: got %g, reference %g", gotA, ref.A)
			}
			t.Logf("weight intervals %v, input interval %g (reference %v, %g)", wspec.Scale[:1], gotA, ref.W, ref.A)
		})
	}
}

// TestPTQ4ViTSearchBeatsMinMax: on each layer of searchCases, the
// searched intervals have a higher Hessian-guided similarity (a smaller
// gradient-weighted output error) than the min/max intervals the search
// starts from.
func TestPTQ4ViTSearchBeatsMinMax(t *testing.T) {
	s := HessianSearch{Alpha: 0.01, Beta: 1.2, N: 40, Rounds: 2}
	for _, c := range searchCases {
		t.Run(c.name, func(t *testing.T) {
			l, done := c.search(t, s)
			defer done()
			wspec, aspec, err := l.Search(s)
			if err != nil {
				t.Fatal(err)
			}
			wmm := symSpec(c.wBits, absMaxInterval(l.W, c.wBits, c.nV, false), int64(c.out))
			amm := symSpec(c.aBits, absMaxInterval(l.X, c.aBits, 1, false), 1)
			if c.postGELU {
				amm = geluSpec(c.aBits, absMaxInterval(l.X, c.aBits, 1, true)[0])
			}
			sim := func(w, a *vit.QuantSpec) float64 {
				var v []float64
				torchrt.NoGrad(func() {
					wq, xq := w.Apply(l.W), a.Apply(l.X)
					y := ts.MustLinear(xq, wq, l.B)
					v = Similarity(l.Raw, y, l.Grad, 1)
					for _, x := range []*ts.Tensor{wq, xq, y} {
						x.MustDrop()
					}
				})
				return v[0]
			}
			got, mm := sim(wspec, aspec), sim(wmm, amm)
			t.Logf("hessian-weighted error: searched %.4g, minmax %.4g", -got, -mm)
			if !(got > mm) {
				t.Errorf("searched similarity %g not above minmax's %g", got, mm)
			}
		})
	}
}

// klFromFloat is the mean KL divergence of m's predictions on xs from
// the float predictions ref (softmax probabilities, per image).
func klFromFloat(t *testing.T, m *vit.Model, xs []*ts.Tensor, ref []float64) float64 {
	t.Helper()
	got := logits(t, m, xs)
	k := m.Cfg.NumClasses
	var kl float64
	for i := 0; i < len(got); i += k {
		p, q := softmax(ref[i:i+k]), softmax(got[i:i+k])
		for j := range p {
			if p[j] > 0 {
				kl += p[j] * math.Log(p[j]/q[j])
			}
		}
	}
	return kl / float64(len(got)/k)
}

func softmax(z []float64) []float64 {
	mx := z[0]
	for _, v := range z {
		mx = math.Max(mx, v)
	}
	out := make([]float64, len(z))
	var s float64
	for i, v := range z {
		out[i] = math.Exp(v - mx)
		s += out[i]
	}
	for i := range out {
		out[i] /= s
	}
	return out
}

// TestPTQ4ViTModel quantizes the tiny trained model W4A4 by
// QuantizePTQ4ViT (a small candidate grid) and by min/max PTQ: every
// linear layer and attention map gets the searched quantizer kinds, the
// weights are on their grids, and the prediction is closer to the float
// model's (KL divergence, the loss the search weighs by) than min/max's.
func TestPTQ4ViTModel(t *testing.T) {
	calib := techtest.Quadrants{N: 64, Batch: 32, Seed: 4}.Images(0)
	defer dropAllSlice(calib)
	test := techtest.Quadrants{N: 128, Batch: 64, Seed: 6}.Images(0)
	defer dropAllSlice(test)
	float := trainedModel(t)
	ref := logits(t, float, test)
	float.Drop()
	bits := func(c *techniques.QuantizeConfig) {
		c.WeightBits, c.ActBits = 4, 4
		c.Layers = []string{techniques.GroupQKV, techniques.GroupProj, techniques.GroupFC1, techniques.GroupFC2, techniques.GroupAttnMap}
	}
	mm := trainedModel(t)
	defer mm.Drop()
	quantizeWith(t, mm, cfgWith(func(c *techniques.QuantizeConfig) { bits(c); c.Calibrator = techniques.CalibMinMax }), calib)
	m := trainedModel(t)
	defer m.Drop()
	c := cfgWith(func(c *techniques.QuantizeConfig) { bits(c); c.Method = techniques.MethodPTQ4ViT })
	p, err := NewPlan(m, options(c))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	st, err := QuantizePTQ4ViT(context.Background(), m, calib, p, HessianSearch{Alpha: 0.01, Beta: 1.2, N: 20, Rounds: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ptq4vit calibration %v", time.Since(start))
	for _, b := range m.Blocks {
		if s := st.Weights[b.QKV.Name+".weight"]; s == nil || len(s.Scale) != b.QKV.Out || s.Scale[0] == s.Scale[b.QKV.Out-1] && s.Scale[0] == s.Scale[b.QKV.Out/2] {
			t.Errorf("block %d qkv weight: want three searched intervals, got %+v", b.Index, s)
		}
		if s := st.Acts[vit.ActKey(b.Index, vit.SiteFC2In)]; s == nil || s.Kind != vit.QuantTwin || s.Split != 0 {
			t.Errorf("block %d fc2 input: want the post-GELU twin grid, got %+v", b.Index, s)
		}
		if s := st.Acts[vit.ActKey(b.Index, vit.SiteAttnMap)]; s == nil || s.Kind != vit.QuantTwin || s.Split <= 0 {
			t.Errorf("block %d attention map: want the softmax twin grid, got %+v", b.Index, s)
		}
	}
	for name, spec := range st.Weights {
		w, _ := m.VS.Root().Get(name)
		onGrid(t, name, w, spec)
	}
	klP, klM := klFromFloat(t, m, test, ref), klFromFloat(t, mm, test, ref)
	t.Logf("W4A4 KL from float: ptq4vit %.4f, minmax ptq %.4f", klP, klM)
	if !(klP < klM) {
		t.Errorf("ptq4vit KL %.4f not below minmax's %.4f", klP, klM)
	}
}

// TestStagePTQ4ViT runs method ptq4vit through the technique's entry
// point with the authors' search (the default): the stage records twin
// grids and searched intervals, and the model stays close to float.
func TestStagePTQ4ViT(t *testing.T) {
	test := techtest.Quadrants{N: 128, Batch: 64, Seed: 6}.Images(0)
	defer dropAllSlice(test)
	float := trainedModel(t)
	ref := logits(t, float, test)
	float.Drop()
	m := trainedModel(t)
	defer m.Drop()
	start := time.Now()
	if _, err := applyStage(t, m, newEnv(nil), func(c *techniques.QuantizeConfig) {
		c.Method, c.WeightBits, c.ActBits, c.CalibImages = techniques.MethodPTQ4ViT, 8, 8, 32
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("stage %v", time.Since(start))
	st := m.Cfg.Quant
	if st == nil || m.Cfg.Executed != vit.ExecutedSimulated {
		t.Fatalf("stage left quant %v, executed %q", st, m.Cfg.Executed)
	}
	for _, b := range m.Blocks {
		if s := st.Acts[vit.ActKey(b.Index, vit.SiteFC2In)]; s == nil || s.Kind != vit.QuantTwin {
			t.Errorf("block %d fc2 input: %+v", b.Index, s)
		}
		if s := st.Weights[b.QKV.Name+".weight"]; s == nil || s.Axis != 0 {
			t.Errorf("block %d qkv weight: want q, k, v intervals per row, got %+v", b.Index, s)
		}
	}
	if e := relErr(logits(t, m, test), ref); e > 0.1 {
		t.Errorf("W8A8 ptq4vit logits error %.4f", e)
	}
	c := cfgWith(func(c *techniques.QuantizeConfig) {
		c.Method, c.Rounding = techniques.MethodPTQ4ViT, techniques.RoundGPTQ
	})
	if err := c.Validate(); err == nil {
		t.Error("ptq4vit with gptq rounding validated")
	}
}
