package qexec

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/sugarme/gotch/ts"
)

// referencePython is Debian's interpreter with python3-torch (make setup
// installs it); a python3 earlier on PATH (pyenv) may not have torch.
const referencePython = "/usr/bin/python3"

// TestMatchesPyTorchQuantizedLinear checks an int8 layer against
// PyTorch's own quantized::linear (onednn engine, the same oneDNN) on the
// same integer weights and activation grid: PyTorch requantizes its
// output to a uint8 grid, so the two agree within one step of that grid.
// Weights stay within [-64, 64] so that neither side saturates on a CPU
// without VNNI.
func TestMatchesPyTorchQuantizedLinear(t *testing.T) {
	const rows, in, out = 50, 64, 40
	rng := rand.New(rand.NewPCG(5, 6))
	x := make([]float32, rows*in)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	w := make([]int8, out*in)
	wf := make([]float64, out*in)
	for i := range w {
		w[i] = int8(rng.IntN(129) - 64)
		wf[i] = float64(w[i])
	}
	wscale := make([]float32, out)
	ws := make([]float64, out)
	bias := make([]float32, out)
	for o := range out {
		wscale[o] = 0.0005 + 0.002*rng.Float32()
		ws[o] = float64(wscale[o])
		bias[o] = rng.Float32() - 0.5
	}
	act := Activation{Scale: 0.025, ZeroPoint: 127, QMin: 0, QMax: 255}
	k, err := NewLinear(w, out, in, wscale, bias, act, false)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	xt := ts.MustOfSlice(x).MustView([]int64{rows, in}, true)
	defer xt.MustDrop()
	y := k.Forward(xt)
	defer y.MustDrop()
	got := make([]float32, rows*out)
	y.MustCopyData(got, uint(len(got)))
	lo, hi := 0.0, 0.0
	for _, v := range got {
		lo, hi = min(lo, float64(v)), max(hi, float64(v))
	}
	outScale := (hi - lo) / 255
	outZP := int(math.Round(-lo / outScale))

	dir := t.TempDir()
	in1, out1 := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json")
	b, err := json.Marshal(map[string]any{
		"x": x, "rows": rows, "in": in, "out": out, "w": wf, "wscale": ws, "bias": bias,
		"scale": act.Scale, "zero_point": act.ZeroPoint, "out_scale": outScale, "out_zp": outZP,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in1, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(referencePython, filepath.Join("testdata", "quantized_linear.py"), in1, out1)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s (make setup installs python3-torch): %v\n%s", referencePython, err, msg)
	}
	var ref struct {
		Y      []float64 `json:"y"`
		Engine string    `json:"engine"`
	}
	b, err = os.ReadFile(out1)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Y) != len(got) {
		t.Fatalf("PyTorch gave %d outputs, want %d", len(ref.Y), len(got))
	}
	worst := 0.0
	for i := range got {
		worst = max(worst, math.Abs(float64(got[i])-ref.Y[i]))
	}
	// Half a step is PyTorch's rounding; a full step allows its float
	// rounding before it.
	if worst > outScale*1.0001 {
		t.Errorf("largest difference from PyTorch's quantized::linear (%s): %.4g, more than one output step %.4g", ref.Engine, worst, outScale)
	}
	t.Logf("largest difference from PyTorch's quantized::linear (%s): %.3g (output step %.3g)", ref.Engine, worst, outScale)
}
