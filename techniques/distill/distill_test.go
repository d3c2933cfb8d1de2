package distill

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vitbench/vitbench/internal/techtest"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/train"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques"
	"github.com/vitbench/vitbench/techniques/compress"
	"github.com/vitbench/vitbench/techniques/compress/compresstest"
)

// referencePython is Debian's interpreter, which has python3-torch; a
// python3 earlier on PATH (pyenv) may not.
const referencePython = "/usr/bin/python3"

func testConfig(dim int, distilled bool) vit.Config {
	return vit.Config{Name: "kd-test", ImgSize: 16, PatchSize: 4, InChans: 3, NumClasses: 4,
		EmbedDim: dim, Depth: 2, NumHeads: 2, MLPRatio: 2, QKVBias: true, Distilled: distilled}
}

// kdLoss is the loss compress.FineTuner builds from block with teacher
// (which the caller keeps and drops).
func kdLoss(t testing.TB, block techniques.FineTune, teacher *vit.Model) train.Loss {
	t.Helper()
	block.Teacher = "teacher"
	env := &compresstest.Env{Teachers: map[string]func() *vit.Model{"teacher": func() *vit.Model { return teacher }}}
	f, err := compress.NewFineTuner(context.Background(), env, block)
	if err != nil {
		t.Fatal(err)
	}
	return f.Loss() // f is not closed: Close would drop the caller's teacher
}

// kdReference computes the KD loss with PyTorch from the logits.
const kdReference = `
import json, sys
import torch
import torch.nn.functional as F

out = []
for c in json.load(sys.stdin):
    t = torch.tensor(c["t"], dtype=torch.float32)
    s_cls = torch.tensor(c["s_cls"], dtype=torch.float32)
    s = torch.tensor(c["s_dist"], dtype=torch.float32) if c["s_dist"] else s_cls
    y = torch.tensor(c["y"], dtype=torch.int64)
    T, a = c["T"], c["alpha"]
    label = F.cross_entropy(s_cls, y, label_smoothing=c["smoothing"])
    soft = F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t / T, dim=1), reduction="batchmean") * T * T
    hard = F.cross_entropy(s, t.argmax(dim=1))
    kd = hard if c["hard"] else soft
    out.append({"loss": ((1 - a) * label + a * kd).item(), "soft": soft.item()})
json.dump(out, sys.stdout)
`

// TestKDMatchesPyTorch checks the distillation loss of a stage against
// PyTorch's computation on the same logits.
func TestKDMatchesPyTorch(t *testing.T) {
	if _, err := os.Stat(referencePython); err != nil {
		t.Fatalf("reference interpreter %s missing: run make setup (installs python3-torch)", referencePython)
	}
	tests := []struct {
		name      string
		cfg       techniques.FineTune
		distilled bool
	}{
		{"soft T=4 a=0.5", techniques.FineTune{KDKind: techniques.KDSoft, KDTemperature: 4, KDAlpha: 0.5}, false},
		{"soft T=1 a=0.9 smoothing", techniques.FineTune{KDKind: techniques.KDSoft, KDTemperature: 1, KDAlpha: 0.9, LabelSmoothing: 0.1}, false},
		{"soft T=10 a=1", techniques.FineTune{KDKind: techniques.KDSoft, KDTemperature: 10, KDAlpha: 1}, false},
		{"hard a=0.5", techniques.FineTune{KDKind: techniques.KDHard, KDTemperature: 4, KDAlpha: 0.5}, false},
		{"soft dist token", techniques.FineTune{KDKind: techniques.KDSoft, KDTemperature: 3, KDAlpha: 0.5}, true},
		{"hard dist token", techniques.FineTune{KDKind: techniques.KDHard, KDTemperature: 3, KDAlpha: 0.3}, true},
	}
	var cases []map[string]any
	var goLoss, goSoft []float64
	// Freshly initialised heads give logits near 0; scaled up, they spread
	// over a few units, as a trained model's do.
	sharpen := func(m *vit.Model, by float64) *vit.Model {
		torchrt.NoGrad(func() {
			for _, h := range []*vit.Linear{m.Head, m.HeadDist} {
				if h != nil {
					h.Weight.MustMulScalar_(ts.FloatScalar(by))
				}
			}
		})
		return m
	}
	teacher := sharpen(techtest.NewModel(t, testConfig(32, false), 1), 40)
	defer teacher.Drop()
	for i, tt := range tests {
		student := sharpen(techtest.NewModel(t, testConfig(16, tt.distilled), int64(10+i)), 30)
		torchrt.ManualSeed(int64(20 + i))
		x := ts.MustRandn([]int64{6, 3, 16, 16}, gotch.Float, gotch.CPU)
		y := ts.MustRandint(4, []int64{6}, gotch.Int64, gotch.CPU)
		var loss, soft *ts.Tensor
		var tl, cls, dist *ts.Tensor
		torchrt.NoGrad(func() {
			loss = kdLoss(t, tt.cfg, teacher).Loss(student, x, y)
			tl = teacher.Forward(x)
			cls, dist = student.ForwardHeads(x)
			s := cls
			if dist != nil {
				s = dist
			}
			soft = train.SoftKL(s, tl, tt.cfg.KDTemperature)
		})
		rows := func(t *ts.Tensor) [][]float64 {
			if t == nil {
				return nil
			}
			v := t.Float64Values()
			n := int(t.MustSize()[1])
			var out [][]float64
			for i := 0; i < len(v); i += n {
				out = append(out, v[i:i+n])
			}
			return out
		}
		cases = append(cases, map[string]any{"t": rows(tl), "s_cls": rows(cls), "s_dist": rows(dist), "y": y.Int64Values(),
			"T": tt.cfg.KDTemperature, "alpha": tt.cfg.KDAlpha, "smoothing": tt.cfg.LabelSmoothing, "hard": tt.cfg.KDKind == techniques.KDHard})
		goLoss = append(goLoss, loss.Float64Values()[0])
		goSoft = append(goSoft, soft.Float64Values()[0])
		for _, t := range []*ts.Tensor{x, y, loss, soft, tl, cls, dist} {
			if t != nil {
				t.MustDrop()
			}
		}
		student.Drop()
	}
	in, _ := json.Marshal(cases)
	cmd := exec.Command(referencePython, "-c", kdReference)
	cmd.Stdin = strings.NewReader(string(in))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reference: %v\n%s", err, stderr.String())
	}
	var ref []struct{ Loss, Soft float64 }
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		if d := math.Abs(goLoss[i] - ref[i].Loss); d > 1e-5 {
			t.Errorf("%s: loss %.7f, PyTorch %.7f", tt.name, goLoss[i], ref[i].Loss)
		}
		if d := math.Abs(goSoft[i] - ref[i].Soft); d > 1e-5 {
			t.Errorf("%s: soft KL %.7f, PyTorch %.7f", tt.name, goSoft[i], ref[i].Soft)
		}
		t.Logf("%s: loss %.6f (PyTorch %.6f)", tt.name, goLoss[i], ref[i].Loss)
	}
}

// TestAlphaZeroIsCrossEntropy: with alpha 0 the teacher has no say.
func TestAlphaZeroIsCrossEntropy(t *testing.T) {
	teacher := techtest.NewModel(t, testConfig(32, false), 1)
	defer teacher.Drop()
	student := techtest.NewModel(t, testConfig(16, false), 2)
	defer student.Drop()
	torchrt.ManualSeed(3)
	x := ts.MustRandn([]int64{5, 3, 16, 16}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	y := ts.MustRandint(4, []int64{5}, gotch.Int64, gotch.CPU)
	defer y.MustDrop()
	tests := []techniques.FineTune{
		{KDKind: techniques.KDSoft, KDTemperature: 4},
		{KDKind: techniques.KDSoft, KDTemperature: 1, LabelSmoothing: 0.1},
		{KDKind: techniques.KDHard, KDTemperature: 4},
	}
	for _, c := range tests {
		var kd, ce *ts.Tensor
		torchrt.NoGrad(func() {
			kd = kdLoss(t, c, teacher).Loss(student, x, y)
			ce = train.CrossEntropy{Smoothing: c.LabelSmoothing}.Loss(student, x, y)
		})
		if a, b := kd.Float64Values()[0], ce.Float64Values()[0]; a != b {
			t.Errorf("%+v: alpha 0 loss %v, cross-entropy %v", c, a, b)
		}
		kd.MustDrop()
		ce.MustDrop()
	}
}

// TestTeacherGetsNoGradient back-propagates the KD loss and finds
// gradients on every student parameter and none on the teacher's.
func TestTeacherGetsNoGradient(t *testing.T) {
	runtime.LockOSThread() // grad mode is per OS thread
	defer runtime.UnlockOSThread()
	for _, kind := range []string{techniques.KDSoft, techniques.KDHard} {
		teacher := techtest.NewModel(t, testConfig(32, false), 1)
		student := techtest.NewModel(t, testConfig(16, true), 2)
		x := ts.MustRandn([]int64{4, 3, 16, 16}, gotch.Float, gotch.CPU)
		y := ts.MustOfSlice([]int64{0, 1, 2, 3})
		c := techniques.FineTune{KDKind: kind, KDTemperature: 4, KDAlpha: 0.5}
		kd := kdLoss(t, c, teacher)
		prev := ts.MustGradSetEnabled(true)
		loss := kd.Loss(student, x, y)
		loss.MustBackward()
		ts.MustGradSetEnabled(prev)
		grads := func(m *vit.Model) (defined, total int) {
			for _, p := range m.VS.TrainableVariables() {
				g := p.MustGrad(false)
				if g.MustDefined() {
					defined++
				}
				g.MustDrop()
				total++
			}
			return defined, total
		}
		if d, _ := grads(teacher); d != 0 {
			t.Errorf("%s: %d teacher parameters got a gradient", kind, d)
		}
		if d, n := grads(student); d != n {
			t.Errorf("%s: %d of %d student parameters got a gradient", kind, d, n)
		}
		for _, tt := range []*ts.Tensor{x, y, loss} {
			tt.MustDrop()
		}
		teacher.Drop()
		student.Drop()
	}
}

// TestApply runs a distill stage on a student with pruning masks: the
// student learns, keeps its zeros, and the teacher is unchanged.
func TestApply(t *testing.T) {
	cfg := testConfig(16, false)
	student := techtest.NewModel(t, cfg, 5)
	defer student.Drop()
	// Half the fc1 weights of block 0 pruned, with their mask.
	l := student.Blocks[0].FC1
	torchrt.NoGrad(func() {
		mask := ts.MustRandint(2, l.Weight.MustSize(), gotch.Float, gotch.CPU)
		l.Weight.MustMul_(mask)
		l.Mask = mask
	})
	zeros := func() []bool {
		var out []bool
		for _, v := range l.Weight.Float64Values() {
			out = append(out, v == 0)
		}
		return out
	}
	before := zeros()
	studentBefore := student.Blocks[1].FC2.Weight.Float64Values()
	var teacher *vit.Model // the teacher handed out
	var teacherBefore, teacherAfter []float64
	env := &compresstest.Env{Log: t.Logf, Teachers: map[string]func() *vit.Model{"big": func() *vit.Model {
		teacher = techtest.NewModel(t, testConfig(32, false), 6)
		teacherBefore = teacher.Blocks[0].QKV.Weight.Float64Values()
		return teacher
	}}}
	env.OnTrain = func(*vit.Model, compress.Training) {
		teacherAfter = teacher.Blocks[0].QKV.Weight.Float64Values()
	}
	c := techniques.NewDistillConfig()
	c.Teacher, c.Epochs, c.KDAlpha = "big", 0.5, 0.7
	out, err := Apply(context.Background(), c, student, env)
	if err != nil {
		t.Fatal(err)
	}
	if out != student {
		t.Fatal("distill returned a new model")
	}
	if len(env.Trainings) != 1 {
		t.Fatalf("%d fine-tunings", len(env.Trainings))
	}
	ft := env.Trainings[0]
	if kd, ok := ft.Loss.(train.KD); !ok || kd.Alpha != 0.7 || kd.Temperature != 4 || kd.Hard {
		t.Errorf("fine-tuning loss %#v", ft.Loss)
	}
	if ft.Epochs != 0.5 || ft.AfterStep == nil {
		t.Errorf("epochs %g, AfterStep set %t", ft.Epochs, ft.AfterStep != nil)
	}
	if !slices.Equal(before, zeros()) {
		t.Errorf("distillation changed which fc1 weights are zero")
	}
	if slices.Equal(studentBefore, student.Blocks[1].FC2.Weight.Float64Values()) {
		t.Errorf("the student did not change")
	}
	if !slices.Equal(teacherBefore, teacherAfter) {
		t.Errorf("the teacher changed")
	}
}

func TestApplyRejectsMismatchedTeacher(t *testing.T) {
	student := techtest.NewModel(t, testConfig(16, false), 5)
	defer student.Drop()
	env := &compresstest.Env{Log: t.Logf, Teachers: map[string]func() *vit.Model{"big": func() *vit.Model {
		c := testConfig(32, false)
		c.NumClasses = 7
		return techtest.NewModel(t, c, 6)
	}}}
	c := techniques.NewDistillConfig()
	c.Teacher = "big"
	if _, err := Apply(context.Background(), c, student, env); err == nil || !strings.Contains(err.Error(), "classes") {
		t.Errorf("error %v, want one about classes", err)
	}
	if len(env.Trainings) != 0 {
		t.Errorf("fine-tuned with a mismatched teacher")
	}
}
