package compress_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/train"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/techtest"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques"
	"github.com/vitbench/vitbench/techniques/compress"
	"github.com/vitbench/vitbench/techniques/compress/compresstest"
)

// teachers serves "big", a tiny model of the given config, and records
// every one it hands out.
func teachers(t testing.TB, cfg vit.Config, made *[]*vit.Model) map[string]func() *vit.Model {
	return map[string]func() *vit.Model{"big": func() *vit.Model {
		m := techtest.NewModel(t, cfg, 2)
		*made = append(*made, m)
		return m
	}}
}

// withMask prunes every other weight of block 0's fc1 and records the
// mask, as unstructured pruning does.
func withMask(m *vit.Model) *vit.Linear {
	l := m.Blocks[0].FC1
	torchrt.NoGrad(func() {
		n := l.Weight.Numel()
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(i % 2)
		}
		mask := ts.MustOfSlice(v).MustReshape(l.Weight.MustSize(), true)
		l.Weight.MustMul_(mask)
		l.Mask = mask
	})
	return l
}

// TestFineTunerLoadsTeacherOnce: an iterative schedule runs the block
// several times with one teacher, which Close drops.
func TestFineTunerLoadsTeacherOnce(t *testing.T) {
	ctx := context.Background()
	m := techtest.NewModel(t, techtest.TinyConfig(), 1)
	defer m.Drop()
	var made []*vit.Model
	env := &compresstest.Env{NoTrain: true, Teachers: teachers(t, techtest.TinyConfig(), &made)}
	block := techniques.NewFineTune()
	block.Teacher, block.Epochs = "big", 1
	f, err := compress.NewFineTuner(ctx, env, block)
	if err != nil {
		t.Fatal(err)
	}
	for _, epochs := range []float64{0.25, 0, 0.25, 0.5} {
		if err := f.Run(ctx, m, epochs); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(env.Fetched, []string{"big"}) || len(made) != 1 {
		t.Fatalf("teachers fetched %v (%d made), want big once", env.Fetched, len(made))
	}
	var epochs []float64
	for _, tr := range env.Trainings {
		epochs = append(epochs, tr.Epochs)
		if kd, ok := tr.Loss.(train.KD); !ok || kd.Teacher != made[0] {
			t.Errorf("training loss %#v, want KD from the teacher handed out", tr.Loss)
		}
	}
	if !slices.Equal(epochs, []float64{0.25, 0.25, 0.5}) {
		t.Errorf("trainings of %v epochs, want [0.25 0.25 0.5] (none for 0)", epochs)
	}
	if made[0].VS.IsEmpty() {
		t.Fatal("the teacher was dropped before Close")
	}
	f.Close()
	if !made[0].VS.IsEmpty() {
		t.Error("Close left the teacher's tensors")
	}
	f.Close() // a second Close is harmless
}

// TestFineTuneTeacherMismatch: a teacher that cannot teach the student
// fails the fine-tune with an error naming it and why, before training.
func TestFineTuneTeacherMismatch(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(c *vit.Config)
		served bool   // the env has a teacher "big"
		want   string // substring of the error
	}{
		{"classes", func(c *vit.Config) { c.NumClasses = 7 }, true, "teacher big: it has 7 classes, the student 4"},
		{"image size", func(c *vit.Config) { c.ImgSize = 32 }, true, "teacher big: it takes 3x32x32 images, the student 3x16x16"},
		{"channels", func(c *vit.Config) { c.InChans = 1 }, true, "teacher big: it takes 1x16x16 images, the student 3x16x16"},
		{"unknown", nil, false, `teacher big: no model "big"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			student := techtest.NewModel(t, techtest.TinyConfig(), 1)
			defer student.Drop()
			cfg := techtest.TinyConfig()
			if tt.edit != nil {
				tt.edit(&cfg)
			}
			var made []*vit.Model
			env := &compresstest.Env{NoTrain: true}
			if tt.served {
				env.Teachers = teachers(t, cfg, &made)
			}
			block := techniques.NewFineTune()
			block.Teacher, block.Epochs = "big", 1
			err := compress.FineTune(context.Background(), env, block, student)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
			if len(env.Trainings) != 0 {
				t.Errorf("%d trainings with a teacher that does not fit", len(env.Trainings))
			}
			for _, m := range made {
				if !m.VS.IsEmpty() {
					t.Error("the rejected teacher was not dropped")
				}
			}
		})
	}
}

// TestTraining: the request carries the block's epochs and rate, a KD
// loss built from the block only when there is a teacher, and an
// AfterStep only when the model has pruning masks.
func TestTraining(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(b *techniques.FineTune)
		masked bool
		want   train.Loss // Teacher is filled in with the one served
	}{
		{"plain", nil, false, nil},
		{"masked", nil, true, nil},
		{"soft", func(b *techniques.FineTune) { b.Teacher = "big" }, false,
			train.KD{Temperature: techniques.DefaultKDTemperature, Alpha: techniques.DefaultKDAlpha}},
		{"hard smoothed", func(b *techniques.FineTune) {
			b.Teacher, b.KDKind, b.KDTemperature, b.KDAlpha, b.LabelSmoothing = "big", techniques.KDHard, 2, 0.3, 0.1
		}, true, train.KD{Temperature: 2, Alpha: 0.3, Hard: true, Smoothing: 0.1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := techtest.NewModel(t, techtest.TinyConfig(), 1)
			defer m.Drop()
			if tt.masked {
				withMask(m)
			}
			var made []*vit.Model
			env := &compresstest.Env{NoTrain: true, Teachers: teachers(t, techtest.TinyConfig(), &made)}
			block := techniques.NewFineTune()
			block.Epochs, block.LR = 2, 3e-4
			if tt.edit != nil {
				tt.edit(&block)
			}
			if err := block.Validate(); err != nil {
				t.Fatal(err)
			}
			if err := compress.FineTune(context.Background(), env, block, m); err != nil {
				t.Fatal(err)
			}
			if len(env.Trainings) != 1 {
				t.Fatalf("%d trainings, want 1", len(env.Trainings))
			}
			tr := env.Trainings[0]
			if tr.Epochs != 2 || tr.LR != 3e-4 {
				t.Errorf("epochs %g, lr %g; want 2 and 3e-4", tr.Epochs, tr.LR)
			}
			if (tr.AfterStep != nil) != tt.masked {
				t.Errorf("AfterStep set %t, want %t", tr.AfterStep != nil, tt.masked)
			}
			want := tt.want
			if kd, ok := want.(train.KD); ok {
				if len(made) != 1 {
					t.Fatalf("%d teachers made, want 1", len(made))
				}
				kd.Teacher = made[0]
				want = kd
				if !made[0].VS.IsEmpty() {
					t.Error("FineTune left the teacher's tensors")
				}
			} else if len(env.Fetched) != 0 {
				t.Errorf("teachers fetched without one named: %v", env.Fetched)
			}
			if tr.Loss != want {
				t.Errorf("loss %#v, want %#v", tr.Loss, want)
			}
		})
	}
}

// TestFineTuneNoEpochs: a block without epochs neither trains nor
// fetches its teacher.
func TestFineTuneNoEpochs(t *testing.T) {
	m := techtest.NewModel(t, techtest.TinyConfig(), 1)
	defer m.Drop()
	env := &compresstest.Env{NoTrain: true}
	block := techniques.NewFineTune()
	block.Teacher = "big" // Validate rejects it; FineTune does nothing either way
	if err := compress.FineTune(context.Background(), env, block, m); err != nil {
		t.Fatal(err)
	}
	if len(env.Trainings) != 0 || len(env.Fetched) != 0 {
		t.Errorf("%d trainings, teachers %v; want none", len(env.Trainings), env.Fetched)
	}
}

func zeros(w *ts.Tensor) []bool {
	var out []bool
	for _, v := range w.Float64Values() {
		out = append(out, v == 0)
	}
	return out
}

// TestKeepMasks: nil without masks; with them, the pruned weights are
// zeroed again after a step and stay zero through a real fine-tune, while
// the others train.
func TestKeepMasks(t *testing.T) {
	m := techtest.NewModel(t, techtest.TinyConfig(), 1)
	defer m.Drop()
	if keep := compress.KeepMasks(m); keep != nil {
		t.Fatal("KeepMasks of a model without masks is not nil")
	}
	l := withMask(m)
	pruned := zeros(l.Mask)
	keep := compress.KeepMasks(m)
	if keep == nil {
		t.Fatal("KeepMasks of a masked model is nil")
	}
	torchrt.NoGrad(func() {
		l.Weight.MustFill_(ts.FloatScalar(1))
		keep()
	})
	for i, v := range l.Weight.Float64Values() {
		if want := map[bool]float64{true: 0, false: 1}[pruned[i]]; v != want {
			t.Fatalf("weight %d is %g after KeepMasks, want %g", i, v, want)
		}
	}
	// A fine-tune through the env (one optimizer step) keeps the zeros.
	before := m.Blocks[1].FC2.Weight.Float64Values()
	env := &compresstest.Env{Log: t.Logf}
	block := techniques.NewFineTune()
	block.Epochs = 0.25
	if err := compress.FineTune(context.Background(), env, block, m); err != nil {
		t.Fatal(err)
	}
	if env.Steps == 0 {
		t.Fatal("the fine-tune took no step")
	}
	if !slices.Equal(zeros(l.Weight), pruned) {
		t.Error("fine-tuning changed which fc1 weights are zero")
	}
	if slices.Equal(before, m.Blocks[1].FC2.Weight.Float64Values()) {
		t.Error("fine-tuning changed nothing")
	}
}

// fakeTechnique is a schema registered by this test only.
const fakeTechnique = "compress-test-fake"

type fakeConfig struct {
	Scale float64 `toml:"scale"`
}

func (c *fakeConfig) Validate() error {
	if c.Scale < 0 {
		return fmt.Errorf("scale %g: want >= 0", c.Scale)
	}
	return nil
}

func init() {
	techniques.Register(techniques.Technique{Name: fakeTechnique, Family: "test",
		NewConfig: func() techniques.Config { return &fakeConfig{} }})
}

func TestRegister(t *testing.T) {
	entry := func(_ context.Context, c *fakeConfig, m *vit.Model, env compress.Env) (*vit.Model, error) {
		env.Logf("scale %g", c.Scale)
		return m, nil
	}
	panics := func(name string, e func(context.Context, *fakeConfig, *vit.Model, compress.Env) (*vit.Model, error)) (msg string) {
		defer func() { msg = fmt.Sprint(recover()) }()
		compress.Register(name, e)
		return "<no panic>"
	}
	tests := []struct {
		name      string
		technique string
		entry     func(context.Context, *fakeConfig, *vit.Model, compress.Env) (*vit.Model, error)
		want      string // substring of the panic
	}{
		{"no schema", "no-such-technique", entry, `cannot register "no-such-technique": it has no schema: unknown technique "no-such-technique"`},
		{"nil entry", fakeTechnique, nil, `cannot register "compress-test-fake": nil entry`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if msg := panics(tt.technique, tt.entry); !strings.Contains(msg, tt.want) {
				t.Errorf("panic %q, want one containing %q", msg, tt.want)
			}
		})
	}
	compress.Register(fakeTechnique, entry)
	if msg := panics(fakeTechnique, entry); !strings.Contains(msg, "Register called twice for "+fakeTechnique) {
		t.Errorf("registering twice: panic %q", msg)
	}
	// Apply runs the entry; a technique with a schema but no entry
	// linked in is an error.
	env := &compresstest.Env{}
	if _, err := compress.Apply(context.Background(), fakeTechnique, &fakeConfig{Scale: 2}, nil, env); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(env.Logs, []string{"scale 2"}) {
		t.Errorf("logs %q, want the entry's", env.Logs)
	}
	// The entry sees only its own, valid Config.
	for _, tt := range []struct {
		cfg  techniques.Config
		want string
	}{
		{techniques.NewPruneConfig(), "compress-test-fake: config is *techniques.PruneConfig, not *compress_test.fakeConfig"},
		{&fakeConfig{Scale: -1}, "scale -1"},
	} {
		if _, err := compress.Apply(context.Background(), fakeTechnique, tt.cfg, nil, env); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Apply(%T): %v, want an error containing %q", tt.cfg, err, tt.want)
		}
	}
	if len(env.Logs) != 1 {
		t.Errorf("the entry ran on a config it must not see: logs %q", env.Logs)
	}
	if _, err := compress.Apply(context.Background(), techniques.Prune, techniques.NewPruneConfig(), nil, env); err == nil ||
		!strings.Contains(err.Error(), `technique "prune" has no apply entry linked into this program`) {
		t.Errorf("applying an unlinked technique: %v", err)
	}
}
