package quantize

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/train"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/techtest"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques"
	"github.com/vitbench/vitbench/techniques/compress"
	"github.com/vitbench/vitbench/techniques/compress/compresstest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if trained.path != "" {
		os.RemoveAll(filepath.Dir(trained.path))
	}
	os.Exit(code)
}

func tempDir() (string, error) { return os.MkdirTemp("", "quantize-test") }

var trained struct {
	once sync.Once
	path string
	err  error
}

// trainedModel returns a fresh copy of a tiny ViT trained on quadrants
// (trained once per test binary).
func trainedModel(t *testing.T) *vit.Model {
	t.Helper()
	trained.once.Do(func() {
		torchrt.ManualSeed(0)
		cfg := vit.Config{Name: "tiny", ImgSize: 16, PatchSize: 4, InChans: 3, NumClasses: 4,
			EmbedDim: 48, Depth: 2, NumHeads: 2, MLPRatio: 2, QKVBias: true}
		m, err := vit.New(cfg, gotch.CPU)
		if err != nil {
			trained.err = err
			return
		}
		defer m.Drop()
		r := train.Recipe{Epochs: 15, LR: 2e-3, WeightDecay: 0.01, Optimizer: "adamw", Schedule: "cosine", WarmupEpochs: 0.5, GradClip: 1}
		if _, err := train.Fit(context.Background(), m, techtest.Quadrants{N: 512, Batch: 32, Seed: 1}, r, train.Options{}); err != nil {
			trained.err = err
			return
		}
		dir, err := tempDir()
		if err != nil {
			trained.err = err
			return
		}
		trained.path = filepath.Join(dir, "tiny.pt")
		trained.err = m.Save(trained.path)
	})
	if trained.err != nil {
		t.Fatal(trained.err)
	}
	m, err := vit.Load(trained.path, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func logits(t *testing.T, m *vit.Model, xs []*ts.Tensor) []float64 {
	t.Helper()
	var out []float64
	torchrt.NoGrad(func() {
		for _, x := range xs {
			y := m.Forward(x)
			out = append(out, y.Float64Values()...)
			y.MustDrop()
		}
	})
	return out
}

// relErr is ||a - b|| / ||b||.
func relErr(a, b []float64) float64 {
	var num, den float64
	for i := range a {
		num += (a[i] - b[i]) * (a[i] - b[i])
		den += b[i] * b[i]
	}
	return math.Sqrt(num / den)
}

func accuracy(t *testing.T, m *vit.Model) float64 {
	t.Helper()
	acc, err := train.Evaluate(context.Background(), m, techtest.Quadrants{N: 256, Batch: 64, Seed: 99})
	if err != nil {
		t.Fatal(err)
	}
	return acc.Top1
}

func dropAllSlice(xs []*ts.Tensor) {
	for _, x := range xs {
		x.MustDrop()
	}
}

// quantized returns the trained model quantized with c's options on
// calibration images, and the float model's logits on test images.
func quantizeWith(t *testing.T, m *vit.Model, c *techniques.QuantizeConfig, calib []*ts.Tensor) *vit.QuantState {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(m, options(c))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Quantize(context.Background(), m, calib, p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func cfgWith(mutate func(*techniques.QuantizeConfig)) *techniques.QuantizeConfig {
	c := techniques.NewQuantizeConfig()
	if mutate != nil {
		mutate(c)
	}
	return c
}

func TestPlanGroups(t *testing.T) {
	m := trainedModel(t)
	defer m.Drop()
	tests := []struct {
		name          string
		mutate        func(*techniques.QuantizeConfig)
		weights, acts int
		checks        map[string]int // weight or activation key → bits
	}{
		// 2 blocks x 4 linears + patch embedding + head at 8 bits; acts:
		// 2 x (4 inputs + attention map) + image + head input
		{"defaults", nil, 10, 12, map[string]int{"head.weight": 8, "patch_embed.proj.weight": 8, vit.ActKey(1, vit.SiteAttnMap): 8}},
		{"w4a4: edges stay 8", func(c *techniques.QuantizeConfig) { c.WeightBits, c.ActBits = 4, 4 }, 10, 12,
			map[string]int{"head.weight": 8, "blocks.0.mlp.fc1.weight": 4, vit.ActInput: 8, vit.ActKey(0, vit.SiteFC2In): 4}},
		{"head listed", func(c *techniques.QuantizeConfig) { c.WeightBits = 4; c.Layers = []string{"head", "fc2"} }, 4, 4,
			map[string]int{"head.weight": 4, "blocks.1.mlp.fc2.weight": 4}},
		{"weight-only", func(c *techniques.QuantizeConfig) { c.ActBits = 0 }, 10, 0, nil},
		{"activations only", func(c *techniques.QuantizeConfig) { c.WeightBits = 32; c.AttnBits = 6 }, 0, 12, map[string]int{vit.ActKey(0, vit.SiteAttnMap): 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan(m, options(cfgWith(tt.mutate)))
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Weights) != tt.weights || len(p.Acts) != tt.acts {
				t.Errorf("%d weights and %d activations, want %d and %d", len(p.Weights), len(p.Acts), tt.weights, tt.acts)
			}
			for k, bits := range tt.checks {
				r, ok := p.Weights[k]
				if !ok {
					r, ok = p.Acts[k]
				}
				if !ok || r.Bits != bits {
					t.Errorf("%s: %+v (present %v), want %d bits", k, r, ok, bits)
				}
			}
		})
	}
}

func TestW8A8CloseToFloat(t *testing.T) {
	m := trainedModel(t)
	defer m.Drop()
	calib := techtest.Quadrants{N: 128, Batch: 64, Seed: 5}.Images(0)
	defer dropAllSlice(calib)
	test := techtest.Quadrants{N: 128, Batch: 64, Seed: 6}.Images(0)
	defer dropAllSlice(test)
	ref := logits(t, m, test)
	refAcc := accuracy(t, m)
	quantizeWith(t, m, techniques.NewQuantizeConfig(), calib)
	if e := relErr(logits(t, m, test), ref); e > 0.05 {
		t.Errorf("W8A8 logits relative error %.4f, want <= 0.05", e)
	}
	if acc := accuracy(t, m); math.Abs(acc-refAcc) > 2 {
		t.Errorf("W8A8 top-1 %.1f%%, float %.1f%%", acc, refAcc)
	}
	t.Logf("float top-1 %.1f%%", refAcc)
}

// withOutlierChannels scales two channels of every LayerNorm's output
// (and scales the next layer's inputs back), so that the float model is
// unchanged in function but its post-LayerNorm activations carry
// outliers, as real ViTs' do.
func withOutlierChannels(m *vit.Model, big, small float32) {
	torchrt.NoGrad(func() {
		for _, b := range m.Blocks {
			for _, pair := range []struct {
				w, bb *ts.Tensor
				l     *vit.Linear
			}{{b.Norm1W, b.Norm1B, b.QKV}, {b.Norm2W, b.Norm2B, b.FC1}} {
				f := make([]float32, pair.w.MustSize()[0])
				for i := range f {
					f[i] = 1
				}
				f[3], f[11] = big, small
				s := ts.MustOfSlice(f)
				for _, t := range []*ts.Tensor{pair.w, pair.bb} {
					x := t.MustMul(s, false)
					t.Copy_(x)
					x.MustDrop()
				}
				x := pair.l.Weight.MustDiv(s, false)
				pair.l.Weight.Copy_(x)
				x.MustDrop()
				s.MustDrop()
			}
		}
	})
}

// TestW4A4Calibrators: with outlier channels, W4A4 with min/max ranges is
// clearly worse than with percentile or mse ranges, or with RepQ-ViT.
func TestW4A4Calibrators(t *testing.T) {
	calib := techtest.Quadrants{N: 128, Batch: 64, Seed: 5}.Images(0)
	defer dropAllSlice(calib)
	test := techtest.Quadrants{N: 128, Batch: 64, Seed: 6}.Images(0)
	defer dropAllSlice(test)
	errOf := func(mutate func(*techniques.QuantizeConfig)) (float64, float64) {
		m := trainedModel(t)
		defer m.Drop()
		withOutlierChannels(m, 8, 5)
		ref := logits(t, m, test)
		quantizeWith(t, m, cfgWith(func(c *techniques.QuantizeConfig) {
			c.WeightBits, c.ActBits = 4, 4
			mutate(c)
		}), calib)
		return relErr(logits(t, m, test), ref), accuracy(t, m)
	}
	mm, mmAcc := errOf(func(c *techniques.QuantizeConfig) {})
	t.Logf("W4A4 minmax: logits error %.3f, top-1 %.1f%%", mm, mmAcc)
	for _, tc := range []struct {
		name   string
		mutate func(*techniques.QuantizeConfig)
	}{
		{"percentile", func(c *techniques.QuantizeConfig) { c.Calibrator = "percentile"; c.Percentile = 99.9 }},
		{"mse", func(c *techniques.QuantizeConfig) { c.Calibrator = "mse" }},
		{"repq-vit", func(c *techniques.QuantizeConfig) { c.Method = "repq-vit" }},
		{"repq-vit mse", func(c *techniques.QuantizeConfig) { c.Method = "repq-vit"; c.Calibrator = "mse" }},
		{"ptq4vit mse", func(c *techniques.QuantizeConfig) { c.Method = "ptq4vit"; c.Calibrator = "mse" }},
		{"fq-vit mse", func(c *techniques.QuantizeConfig) { c.Method = "fq-vit"; c.Calibrator = "mse" }},
	} {
		e, acc := errOf(tc.mutate)
		t.Logf("W4A4 %s: logits error %.3f, top-1 %.1f%%", tc.name, e, acc)
		if !(e < mm) {
			t.Errorf("W4A4 %s logits error %.3f, not below minmax's %.3f", tc.name, e, mm)
		}
	}
}

// TestRepQIsExactInFloat: the reparameterization alone leaves the float
// model's function unchanged.
func TestRepQIsExactInFloat(t *testing.T) {
	m := trainedModel(t)
	defer m.Drop()
	withOutlierChannels(m, 40, 25)
	calib := techtest.Quadrants{N: 64, Batch: 64, Seed: 5}.Images(0)
	defer dropAllSlice(calib)
	ref := logits(t, m, calib)
	p, err := NewPlan(m, options(cfgWith(func(c *techniques.QuantizeConfig) { c.Method = "repq-vit"; c.ActBits = 4 })))
	if err != nil {
		t.Fatal(err)
	}
	specs, err := Reparameterize(context.Background(), m, calib, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 4 {
		t.Errorf("%d reparameterized sites, want 4", len(specs))
	}
	got := logits(t, m, calib)
	d := 0.0
	for i := range got {
		d = math.Max(d, math.Abs(got[i]-ref[i]))
	}
	if d > 1e-3 {
		t.Errorf("reparameterized float logits differ by %g", d)
	}
}

func TestSaveLoadReproducesLogits(t *testing.T) {
	calib := techtest.Quadrants{N: 64, Batch: 32, Seed: 5}.Images(0)
	defer dropAllSlice(calib)
	for _, tc := range []struct {
		name   string
		mutate func(*techniques.QuantizeConfig)
	}{
		{"ptq w8a8", nil},
		{"ptq w4a6 percentile per-tensor", func(c *techniques.QuantizeConfig) {
			c.WeightBits, c.ActBits, c.Calibrator, c.Granularity, c.Symmetric = 4, 6, "percentile", "per-tensor", false
		}},
		{"fq-vit", func(c *techniques.QuantizeConfig) { c.Method, c.AttnBits = "fq-vit", 4 }},
		{"ptq4vit", func(c *techniques.QuantizeConfig) { c.Method, c.ActBits = "ptq4vit", 6 }},
		{"repq-vit ema", func(c *techniques.QuantizeConfig) { c.Method, c.ActBits, c.Calibrator = "repq-vit", 4, "ema" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := trainedModel(t)
			defer m.Drop()
			quantizeWith(t, m, cfgWith(tc.mutate), calib)
			want := logits(t, m, calib)
			path := filepath.Join(t.TempDir(), "q.pt")
			if err := m.Save(path); err != nil {
				t.Fatal(err)
			}
			l, err := vit.Load(path, gotch.CPU)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Drop()
			got := logits(t, l, calib)
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("reloaded logit %d: %g, want %g", i, got[i], want[i])
				}
			}
		})
	}
}

// TestSizeW8: weight-only W8 stores each linear weight at a quarter of
// its float32 bytes plus one float32 scale per output channel.
func TestSizeW8(t *testing.T) {
	m := trainedModel(t)
	defer m.Drop()
	calib := techtest.Quadrants{N: 32, Batch: 32, Seed: 5}.Images(0)
	defer dropAllSlice(calib)
	before := m.SizeBytes()
	var linear, channels int64
	for _, l := range m.Linears() {
		linear += int64(l.In * l.Out)
		channels += int64(l.Out)
	}
	s := quantizeWith(t, m, cfgWith(func(c *techniques.QuantizeConfig) { c.ActBits = 0 }), calib)
	if len(s.Acts) != 0 {
		t.Errorf("weight-only quantization has %d activation quantizers", len(s.Acts))
	}
	patch := int64(m.PatchW.Numel())
	patchOut := m.PatchW.MustSize()[0]
	want := before - 4*(linear+patch) + (linear + patch) + 4*(channels+patchOut)
	if got := m.SizeBytes(); got != want {
		t.Errorf("W8 size %d, want %d", got, want)
	}
	ratio := float64(linear+4*channels) / float64(4*linear)
	if ratio < 0.25 || ratio > 0.30 {
		t.Errorf("linear weights at W8 are %.3f of float32, want about 1/4", ratio)
	}
}

// newEnv serves calibration images (quadrants of seed 5, in batches of
// up to 64) and trains on 256 quadrant images of seed 3 with AdamW at a
// constant rate (the training's), without weight decay.
func newEnv(teachers map[string]func() *vit.Model) *compresstest.Env {
	return &compresstest.Env{
		Data:   techtest.Quadrants{N: 256, Batch: 32, Seed: 3},
		Recipe: &train.Recipe{LR: techniques.DefaultQATLR, Optimizer: "adamw", Schedule: "constant"},
		Calib: func(n int) []*ts.Tensor {
			return techtest.Quadrants{N: n, Batch: min(n, 64), Seed: 5}.Images(0)
		},
		Teachers: teachers,
	}
}

func applyStage(t *testing.T, m *vit.Model, env compress.Env, mutate func(*techniques.QuantizeConfig)) (*vit.Model, error) {
	t.Helper()
	tech, err := techniques.Lookup(techniques.Quantize)
	if err != nil {
		t.Fatal(err)
	}
	c := tech.NewConfig().(*techniques.QuantizeConfig)
	if mutate != nil {
		mutate(c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return compress.Apply(context.Background(), techniques.Quantize, c, m, env)
}

func TestApplyMarksSimulated(t *testing.T) {
	m := trainedModel(t)
	defer m.Drop()
	out, err := applyStage(t, m, newEnv(nil), func(c *techniques.QuantizeConfig) { c.CalibImages = 64 })
	if err != nil {
		t.Fatal(err)
	}
	if out != m || m.Cfg.Executed != "simulated" || m.Cfg.Quant == nil {
		t.Errorf("executed %q, quant %v: want the model simulated and quantized", m.Cfg.Executed, m.Cfg.Quant != nil)
	}
	if _, err := applyStage(t, m, newEnv(nil), nil); err == nil || !strings.Contains(err.Error(), "already quantized") {
		t.Errorf("quantizing twice: %v", err)
	}
}

// TestOverflowFix: weights of every quantized layer, the head included,
// land on a 7-bit grid, so that int8 kernels without VNNI cannot saturate.
func TestOverflowFix(t *testing.T) {
	m := trainedModel(t)
	defer m.Drop()
	if _, err := applyStage(t, m, newEnv(nil), func(c *techniques.QuantizeConfig) { c.CalibImages, c.OverflowFix = 64, true }); err != nil {
		t.Fatal(err)
	}
	if len(m.Cfg.Quant.Weights) == 0 {
		t.Fatal("no weights quantized")
	}
	for name, spec := range m.Cfg.Quant.Weights {
		if spec.Bits != 7 || spec.QMin < -64 || spec.QMax > 64 {
			t.Errorf("%s: %d-bit grid [%d, %d], want 7 bits within [-64, 64]", name, spec.Bits, spec.QMin, spec.QMax)
		}
	}
}

// TestCastPrecision: bf16 executes for real on this CPU; fp16 has no CPU
// kernels in libtorch 1.13 and fails with an error saying so.
func TestCastPrecision(t *testing.T) {
	m := trainedModel(t)
	defer m.Drop()
	refAcc := accuracy(t, m)
	if _, err := applyStage(t, m, newEnv(nil), func(c *techniques.QuantizeConfig) { c.Precision = "bf16" }); err != nil {
		t.Fatal(err)
	}
	if m.Cfg.Executed != "bf16" {
		t.Errorf("executed %q, want bf16", m.Cfg.Executed)
	}
	if acc := accuracy(t, m); math.Abs(acc-refAcc) > 2 {
		t.Errorf("bf16 top-1 %.1f%%, float %.1f%%", acc, refAcc)
	}
	h := trainedModel(t)
	defer h.Drop()
	_, err := applyStage(t, h, newEnv(nil), func(c *techniques.QuantizeConfig) { c.Precision = "fp16" })
	if err == nil {
		t.Skip("fp16 executes here: this libtorch has CPU half kernels")
	}
	if !strings.Contains(err.Error(), "fp16 does not execute on the CPU") || !strings.Contains(err.Error(), "Half") {
		t.Errorf("fp16 error %q: want it to name the precision, the device and the missing Half kernel", err)
	}
}

// TestQAT fine-tunes a W4A4 model with the straight-through estimator:
// training runs, the weights move and stay on their grids, and accuracy
// recovers at least to the post-training level.
func TestQAT(t *testing.T) {
	m := trainedModel(t)
	defer m.Drop()
	ptq := trainedModel(t)
	defer ptq.Drop()
	mutate := func(c *techniques.QuantizeConfig) { c.WeightBits, c.ActBits, c.CalibImages = 4, 4, 64 }
	if _, err := applyStage(t, ptq, newEnv(nil), mutate); err != nil {
		t.Fatal(err)
	}
	ptqAcc := accuracy(t, ptq)
	env := newEnv(map[string]func() *vit.Model{"teacher": func() *vit.Model { return trainedModel(t) }})
	if _, err := applyStage(t, m, env, func(c *techniques.QuantizeConfig) {
		mutate(c)
		c.Epochs, c.LR, c.Teacher = 2, 5e-4, "teacher"
	}); err != nil {
		t.Fatal(err)
	}
	if env.Steps == 0 {
		t.Fatal("QAT took no steps")
	}
	qatAcc := accuracy(t, m)
	t.Logf("W4A4 top-1: PTQ %.1f%%, after QAT %.1f%% (%d steps)", ptqAcc, qatAcc, env.Steps)
	moved := false
	for name, spec := range m.Cfg.Quant.Weights {
		w, _ := m.VS.Root().Get(name)
		pw, _ := ptq.VS.Root().Get(name)
		var onGrid bool
		torchrt.NoGrad(func() {
			q := spec.Apply(w)
			d := q.MustSub(w, true).MustAbs(true).MustMax(true)
			onGrid = d.Float64Values()[0] == 0
			d.MustDrop()
			e := w.MustSub(pw, false).MustAbs(true).MustMax(true)
			moved = moved || e.Float64Values()[0] > 0
			e.MustDrop()
		})
		if !onGrid {
			t.Errorf("%s is off its grid after QAT", name)
		}
	}
	if !moved {
		t.Error("QAT did not change any weight")
	}
	if qatAcc+1 < ptqAcc {
		t.Errorf("QAT top-1 %.1f%% below PTQ's %.1f%%", qatAcc, ptqAcc)
	}
}
