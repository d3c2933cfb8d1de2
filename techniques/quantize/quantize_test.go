package quantize

import (
	"context"
	"fmt"
	"iter"
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
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques"
)

// quadrants is a 4-class problem: the class says which quadrant of a 16x16
// image is bright, under noise.
type quadrants struct {
	n, batch int
	seed     int64
}

func (q quadrants) NumBatches() int { return q.n / q.batch }

func (q quadrants) Batches(epoch int) iter.Seq2[*ts.Tensor, *ts.Tensor] {
	return func(yield func(*ts.Tensor, *ts.Tensor) bool) {
		torchrt.ManualSeed(q.seed + int64(epoch))
		for i := 0; i < q.NumBatches(); i++ {
			labels := make([]int64, q.batch)
			pix := make([]float32, q.batch*3*16*16)
			for b := range labels {
				c := (i*q.batch + b + epoch) % 4
				labels[b] = int64(c)
				oy, ox := 8*(c/2), 8*(c%2)
				for ch := 0; ch < 3; ch++ {
					for y := 0; y < 8; y++ {
						for x := 0; x < 8; x++ {
							pix[((b*3+ch)*16+oy+y)*16+ox+x] = 1
						}
					}
				}
			}
			x := ts.MustOfSlice(pix).MustReshape([]int64{int64(q.batch), 3, 16, 16}, true)
			noise := ts.MustRandn([]int64{int64(q.batch), 3, 16, 16}, gotch.Float, gotch.CPU).MustMulScalar(ts.FloatScalar(0.5), true)
			x = x.MustAdd(noise, true)
			noise.MustDrop()
			y := ts.MustOfSlice(labels)
			if !yield(x, y) {
				return
			}
		}
	}
}

// images returns the first batches of a source, labels dropped.
func images(src quadrants) []*ts.Tensor {
	var out []*ts.Tensor
	for x, y := range src.Batches(0) {
		y.MustDrop()
		out = append(out, x)
	}
	return out
}

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
		if _, err := train.Fit(context.Background(), m, quadrants{n: 512, batch: 32, seed: 1}, r, train.Options{}); err != nil {
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
	acc, err := train.Evaluate(context.Background(), m, quadrants{n: 256, batch: 64, seed: 99})
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
func quantizeWith(t *testing.T, m *vit.Model, c *Config, calib []*ts.Tensor) *vit.QuantState {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(m, c.Options())
	if err != nil {
		t.Fatal(err)
	}
	s, err := Quantize(context.Background(), m, calib, p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func cfgWith(mutate func(*Config)) *Config {
	c := NewConfig()
	if mutate != nil {
		mutate(c)
	}
	return c
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // "" for valid
	}{
		{"defaults", nil, ""},
		{"w4a4 mse", func(c *Config) { c.WeightBits, c.ActBits, c.Calibrator = 4, 4, "mse" }, ""},
		{"weight only", func(c *Config) { c.ActBits = 0 }, ""},
		{"float weights, 8-bit activations", func(c *Config) { c.WeightBits = 32 }, ""},
		{"bf16", func(c *Config) { c.Precision = "bf16" }, ""},
		{"fq-vit", func(c *Config) { c.Method = "fq-vit"; c.AttnBits = 4 }, ""},
		{"weight bits 1", func(c *Config) { c.WeightBits = 1 }, "weight_bits 1"},
		{"weight bits 12", func(c *Config) { c.WeightBits = 12 }, "weight_bits 12"},
		{"act bits 16", func(c *Config) { c.ActBits = 16 }, "act_bits 16"},
		{"nothing", func(c *Config) { c.WeightBits, c.ActBits = 16, 0 }, "quantize nothing"},
		{"calibrator", func(c *Config) { c.Calibrator = "kl" }, "calibrator"},
		{"granularity", func(c *Config) { c.Granularity = "per-group" }, "granularity"},
		{"percentile", func(c *Config) { c.Percentile = 40 }, "percentile 40"},
		{"calib images", func(c *Config) { c.CalibImages = 8 }, "calib_images 8"},
		{"unknown layer", func(c *Config) { c.Layers = []string{"qkv", "mlp"} }, "unknown group"},
		{"duplicate layer", func(c *Config) { c.Layers = []string{"qkv", "qkv"} }, "twice"},
		{"norm", func(c *Config) { c.Layers = []string{"norm"} }, "LayerNorm input"},
		{"fq-vit without attention", func(c *Config) { c.Method = "fq-vit"; c.Layers = []string{"qkv"} }, "fq-vit"},
		{"repq weight-only", func(c *Config) { c.Method = "repq-vit"; c.ActBits = 0 }, "repq-vit"},
		{"method", func(c *Config) { c.Method = "gptq" }, "method"},
		{"bf16 with bits", func(c *Config) { c.Precision = "bf16"; c.WeightBits = 4 }, "casts the whole model"},
		{"fp8", func(c *Config) { c.Precision = "fp8" }, "precision"},
		{"teacher without qat", func(c *Config) { c.Teacher = "big" }, "qat_epochs"},
		{"kd alpha", func(c *Config) { c.QATEpochs = 1; c.KDAlpha = 2 }, "kd_alpha"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := cfgWith(tt.mutate).Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestPlanGroups(t *testing.T) {
	m := trainedModel(t)
	defer m.Drop()
	tests := []struct {
		name          string
		mutate        func(*Config)
		weights, acts int
		checks        map[string]int // weight or activation key → bits
	}{
		// 2 blocks x 4 linears + patch embedding + head at 8 bits; acts:
		// 2 x (4 inputs + attention map) + image + head input
		{"defaults", nil, 10, 12, map[string]int{"head.weight": 8, "patch_embed.proj.weight": 8, vit.ActKey(1, vit.SiteAttnMap): 8}},
		{"w4a4: edges stay 8", func(c *Config) { c.WeightBits, c.ActBits = 4, 4 }, 10, 12,
			map[string]int{"head.weight": 8, "blocks.0.mlp.fc1.weight": 4, vit.ActInput: 8, vit.ActKey(0, vit.SiteFC2In): 4}},
		{"head listed", func(c *Config) { c.WeightBits = 4; c.Layers = []string{"head", "fc2"} }, 4, 4,
			map[string]int{"head.weight": 4, "blocks.1.mlp.fc2.weight": 4}},
		{"weight-only", func(c *Config) { c.ActBits = 0 }, 10, 0, nil},
		{"activations only", func(c *Config) { c.WeightBits = 32; c.AttnBits = 6 }, 0, 12, map[string]int{vit.ActKey(0, vit.SiteAttnMap): 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan(m, cfgWith(tt.mutate).Options())
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
	calib := images(quadrants{n: 128, batch: 64, seed: 5})
	defer dropAllSlice(calib)
	test := images(quadrants{n: 128, batch: 64, seed: 6})
	defer dropAllSlice(test)
	ref := logits(t, m, test)
	refAcc := accuracy(t, m)
	quantizeWith(t, m, NewConfig(), calib)
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
	calib := images(quadrants{n: 128, batch: 64, seed: 5})
	defer dropAllSlice(calib)
	test := images(quadrants{n: 128, batch: 64, seed: 6})
	defer dropAllSlice(test)
	errOf := func(mutate func(*Config)) (float64, float64) {
		m := trainedModel(t)
		defer m.Drop()
		withOutlierChannels(m, 8, 5)
		ref := logits(t, m, test)
		quantizeWith(t, m, cfgWith(func(c *Config) {
			c.WeightBits, c.ActBits = 4, 4
			mutate(c)
		}), calib)
		return relErr(logits(t, m, test), ref), accuracy(t, m)
	}
	mm, mmAcc := errOf(func(c *Config) {})
	t.Logf("W4A4 minmax: logits error %.3f, top-1 %.1f%%", mm, mmAcc)
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
	}{
		{"percentile", func(c *Config) { c.Calibrator = "percentile"; c.Percentile = 99.9 }},
		{"mse", func(c *Config) { c.Calibrator = "mse" }},
		{"repq-vit", func(c *Config) { c.Method = "repq-vit" }},
		{"repq-vit mse", func(c *Config) { c.Method = "repq-vit"; c.Calibrator = "mse" }},
		{"ptq4vit mse", func(c *Config) { c.Method = "ptq4vit"; c.Calibrator = "mse" }},
		{"fq-vit mse", func(c *Config) { c.Method = "fq-vit"; c.Calibrator = "mse" }},
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
	calib := images(quadrants{n: 64, batch: 64, seed: 5})
	defer dropAllSlice(calib)
	ref := logits(t, m, calib)
	p, err := NewPlan(m, cfgWith(func(c *Config) { c.Method = "repq-vit"; c.ActBits = 4 }).Options())
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
	calib := images(quadrants{n: 64, batch: 32, seed: 5})
	defer dropAllSlice(calib)
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
	}{
		{"ptq w8a8", nil},
		{"ptq w4a6 percentile per-tensor", func(c *Config) {
			c.WeightBits, c.ActBits, c.Calibrator, c.Granularity, c.Symmetric = 4, 6, "percentile", "per-tensor", false
		}},
		{"fq-vit", func(c *Config) { c.Method, c.AttnBits = "fq-vit", 4 }},
		{"ptq4vit", func(c *Config) { c.Method, c.ActBits = "ptq4vit", 6 }},
		{"repq-vit ema", func(c *Config) { c.Method, c.ActBits, c.Calibrator = "repq-vit", 4, "ema" }},
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
	calib := images(quadrants{n: 32, batch: 32, seed: 5})
	defer dropAllSlice(calib)
	before := m.SizeBytes()
	var linear, channels int64
	for _, l := range m.Linears() {
		linear += int64(l.In * l.Out)
		channels += int64(l.Out)
	}
	s := quantizeWith(t, m, cfgWith(func(c *Config) { c.ActBits = 0 }), calib)
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

// fakeEnv serves calibration images and fine-tuning on quadrants.
type fakeEnv struct {
	steps    int
	teachers map[string]func() *vit.Model
	logs     []string
}

func (e *fakeEnv) Device() gotch.Device { return gotch.CPU }
func (e *fakeEnv) Seed() int64          { return 0 }
func (e *fakeEnv) Calibration(_ context.Context, n int) ([]*ts.Tensor, error) {
	return images(quadrants{n: n, batch: min(n, 64), seed: 5}), nil
}
func (e *fakeEnv) FineTune(ctx context.Context, m *vit.Model, ft techniques.FineTune) error {
	o := train.Options{AfterStep: ft.AfterStep}
	if ft.Loss != nil {
		o.Loss = ft.Loss
	}
	r := train.Recipe{Epochs: ft.Epochs, LR: ft.LR, Optimizer: "adamw", Schedule: "constant"}
	res, err := train.Fit(ctx, m, quadrants{n: 256, batch: 32, seed: 3}, r, o)
	if res != nil {
		e.steps += res.Steps
	}
	return err
}
func (e *fakeEnv) Model(_ context.Context, name string) (*vit.Model, error) {
	if m, ok := e.teachers[name]; ok {
		return m(), nil // the caller drops it
	}
	return nil, fmt.Errorf("no model %q", name)
}
func (e *fakeEnv) Logf(format string, args ...any) {
	e.logs = append(e.logs, fmt.Sprintf(format, args...))
}

func applyStage(t *testing.T, m *vit.Model, env techniques.Env, mutate func(*Config)) (*vit.Model, error) {
	t.Helper()
	tech, err := techniques.Lookup(Name)
	if err != nil {
		t.Fatal(err)
	}
	c := tech.NewConfig().(*Config)
	if mutate != nil {
		mutate(c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return tech.Apply(context.Background(), c, m, env)
}

func TestApplyMarksSimulated(t *testing.T) {
	m := trainedModel(t)
	defer m.Drop()
	out, err := applyStage(t, m, &fakeEnv{}, func(c *Config) { c.CalibImages = 64 })
	if err != nil {
		t.Fatal(err)
	}
	if out != m || m.Cfg.Executed != "simulated" || m.Cfg.Quant == nil {
		t.Errorf("executed %q, quant %v: want the model simulated and quantized", m.Cfg.Executed, m.Cfg.Quant != nil)
	}
	if _, err := applyStage(t, m, &fakeEnv{}, nil); err == nil || !strings.Contains(err.Error(), "already quantized") {
		t.Errorf("quantizing twice: %v", err)
	}
}

// TestCastPrecision: bf16 executes for real on this CPU; fp16 has no CPU
// kernels in libtorch 1.13 and fails with an error saying so.
func TestCastPrecision(t *testing.T) {
	m := trainedModel(t)
	defer m.Drop()
	refAcc := accuracy(t, m)
	if _, err := applyStage(t, m, &fakeEnv{}, func(c *Config) { c.Precision = "bf16" }); err != nil {
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
	_, err := applyStage(t, h, &fakeEnv{}, func(c *Config) { c.Precision = "fp16" })
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
	mutate := func(c *Config) { c.WeightBits, c.ActBits, c.CalibImages = 4, 4, 64 }
	if _, err := applyStage(t, ptq, &fakeEnv{}, mutate); err != nil {
		t.Fatal(err)
	}
	ptqAcc := accuracy(t, ptq)
	env := &fakeEnv{teachers: map[string]func() *vit.Model{"teacher": func() *vit.Model { return trainedModel(t) }}}
	if _, err := applyStage(t, m, env, func(c *Config) {
		mutate(c)
		c.QATEpochs, c.LR, c.Teacher = 2, 5e-4, "teacher"
	}); err != nil {
		t.Fatal(err)
	}
	if env.steps == 0 {
		t.Fatal("QAT took no steps")
	}
	qatAcc := accuracy(t, m)
	t.Logf("W4A4 top-1: PTQ %.1f%%, after QAT %.1f%% (%d steps)", ptqAcc, qatAcc, env.steps)
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
