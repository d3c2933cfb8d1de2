package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// referencePython is Debian's interpreter, which has python3-torch; a
// python3 earlier on PATH (pyenv) may not.
const referencePython = "/usr/bin/python3"

// forwardRefScript writes, for each case, a checkpoint of the timm-named
// module of harness/vit/testdata/reference.py (random weights, LayerNorm
// and biases included), an input batch and PyTorch's eval-mode logits.
const forwardRefScript = `
import importlib.util, json, sys
import numpy as np, torch
spec = importlib.util.spec_from_file_location("reference", sys.argv[1])
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)
out, cases = sys.argv[2], json.loads(sys.argv[3])
torch.manual_seed(0)
for c in cases:
    m = ref.TimmViT(c["img"], c["patch"], 3, c["classes"], c["dim"], c["depth"], c["heads"], 4.0, c["distilled"])
    ref.randomize(m)
    m.eval()
    x = torch.randn(3, 3, c["img"], c["img"], dtype=torch.float64)  # float64 on purpose: bench forward casts
    with torch.no_grad():
        y = m(x.float())
    torch.save(m.state_dict(), f"{out}/{c['name']}.pth")
    np.save(f"{out}/{c['name']}-x.npy", x.numpy())
    np.save(f"{out}/{c['name']}-want.npy", y.numpy())
`

// TestForwardMatchesPyTorch runs ` + "`bench forward`" + ` on checkpoints and inputs
// written by PyTorch and compares the logits it writes with PyTorch's,
// reading them back both with gotch and with numpy.
func TestForwardMatchesPyTorch(t *testing.T) {
	if _, err := os.Stat(referencePython); err != nil {
		t.Fatalf("reference interpreter %s missing: run make setup (installs python3-torch)", referencePython)
	}
	type refCase struct {
		Name      string `json:"name"`
		Arch      string `json:"-"`
		Img       int    `json:"img"`
		Patch     int    `json:"patch"`
		Classes   int    `json:"classes"`
		Dim       int    `json:"dim"`
		Depth     int    `json:"depth"`
		Heads     int    `json:"heads"`
		Distilled bool   `json:"distilled"`
	}
	// Registered architectures at a small input size and class count, so
	// the checkpoints stay a few MB.
	cases := []refCase{
		{Name: "deit_tiny", Arch: "deit_tiny_patch16_224", Img: 32, Patch: 16, Classes: 10, Dim: 192, Depth: 12, Heads: 3},
		{Name: "deit_tiny_distilled", Arch: "deit_tiny_distilled_patch16_224", Img: 48, Patch: 16, Classes: 7, Dim: 192, Depth: 12, Heads: 3, Distilled: true},
	}
	dir := t.TempDir()
	spec, _ := json.Marshal(cases)
	refPy, err := filepath.Abs("../../harness/vit/testdata/reference.py")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(referencePython, "-c", forwardRefScript, refPy, dir, string(spec)).CombinedOutput(); err != nil {
		t.Fatalf("PyTorch reference: %v\n%s", err, out)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			base := filepath.Join(dir, c.Name)
			got := base + "-got.npy"
			var stdout, stderr bytes.Buffer
			args := []string{"forward", "--arch", c.Arch, "--weights", base + ".pth",
				"--num-classes", strconv.Itoa(c.Classes), "--img-size", strconv.Itoa(c.Img),
				"--input", base + "-x.npy", "--output", got, "--threads", "1"}
			if err := Main(context.Background(), args, &stdout, &stderr); err != nil {
				t.Fatalf("bench %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
			}
			y, err := ts.ReadNpy(got)
			if err != nil {
				t.Fatal(err)
			}
			defer y.MustDrop()
			want, err := ts.ReadNpy(base + "-want.npy")
			if err != nil {
				t.Fatal(err)
			}
			defer want.MustDrop()
			if g, w := y.MustSize(), want.MustSize(); len(g) != 2 || g[0] != w[0] || g[1] != w[1] {
				t.Fatalf("logits shape %v, PyTorch's %v", g, w)
			}
			d := y.MustSub(want, false).MustAbs(true).MustMax(true)
			defer d.MustDrop()
			if v := d.Float64Values()[0]; v > 1e-4 {
				t.Errorf("max |logits - PyTorch| = %g, want <= 1e-4", v)
			} else {
				t.Logf("max |logits - PyTorch| = %.2g", v)
			}
			// numpy reads what we wrote, with the same values.
			check := `import numpy as np, sys
y, w = np.load(sys.argv[1]), np.load(sys.argv[2])
assert y.dtype == np.float32 and y.shape == w.shape, (y.dtype, y.shape, w.shape)
print(float(abs(y - w).max()))`
			out, err := exec.Command(referencePython, "-c", check, got, base+"-want.npy").CombinedOutput()
			if err != nil {
				t.Fatalf("numpy cannot read %s: %v\n%s", got, err, out)
			}
			if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err != nil || v > 1e-4 {
				t.Errorf("numpy: max |logits - PyTorch| = %q, want <= 1e-4", out)
			}
		})
	}
	t.Run("wrong number of classes", func(t *testing.T) {
		base := filepath.Join(dir, cases[0].Name)
		var stdout, stderr bytes.Buffer
		args := []string{"forward", "--arch", cases[0].Arch, "--weights", base + ".pth", "--img-size", "32",
			"--input", base + "-x.npy", "--output", base + "-bad.npy"}
		err := Main(context.Background(), args, &stdout, &stderr)
		var ue usageError
		for _, want := range []string{"head.weight: checkpoint [10 192] vs model [1000 192]", "needs --num-classes"} {
			if err == nil || !strings.Contains(err.Error(), want) || !errors.As(err, &ue) {
				t.Errorf("err = %v, want a usage error containing %q", err, want)
			}
		}
		if _, err := os.Stat(base + "-bad.npy"); err == nil {
			t.Errorf("output written despite the error")
		}
	})
}

func TestForwardErrors(t *testing.T) {
	dir := t.TempDir()
	x := filepath.Join(dir, "x.npy")
	// A 1x3x8x8 float32 batch, written by our own writer.
	img := ts.MustOnes([]int64{1, 3, 8, 8}, gotch.Float, gotch.CPU)
	if err := writeNpy(x, img); err != nil {
		t.Fatal(err)
	}
	img.MustDrop()
	// A vitbench artifact of a tiny model, for the shape check.
	art := saveTinyArtifact(t, dir, false)
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no weights", []string{"--arch", "deit_tiny_patch16_224", "--input", x, "--output", "y.npy"}, "--weights is required"},
		{"no input", []string{"--arch", "deit_tiny_patch16_224", "--weights", art, "--output", "y.npy"}, "--input and --output are required"},
		{"missing input", []string{"--weights", art, "--input", filepath.Join(dir, "nope.npy"), "--output", "y.npy"}, "no such file"},
		{"missing weights", []string{"--arch", "deit_tiny_patch16_224", "--weights", filepath.Join(dir, "nope.pth"), "--input", x, "--output", "y.npy"}, "no such file"},
		{"unknown arch", []string{"--arch", "vit_nano", "--weights", x, "--input", x, "--output", "y.npy"}, `unknown ViT architecture "vit_nano"`},
		{"wrong input shape", []string{"--weights", art, "--input", x, "--output", filepath.Join(dir, "y.npy")}, "the model takes [B 3 16 16]"},
		{"artifact with overrides", []string{"--weights", art, "--num-classes", "3", "--input", x, "--output", "y.npy"}, "drop --num-classes"},
		{"bad flag", []string{"--bogus"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := Main(context.Background(), append([]string{"forward"}, tt.args...), &stdout, &stderr)
			var ue usageError
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &ue) {
				t.Errorf("err = %v, want a usage error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestWriteNpyRoundTrip(t *testing.T) {
	for _, shape := range [][]int64{{5}, {2, 3}, {2, 3, 4, 5}, {1, 1000}} {
		x := ts.MustRandn(shape, gotch.Float, gotch.CPU)
		path := filepath.Join(t.TempDir(), "t.npy")
		if err := writeNpy(path, x); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if hl := 10 + int(b[8]) + int(b[9])<<8; hl%64 != 0 || b[hl-1] != '\n' {
			t.Errorf("shape %v: data starts at %d, want a multiple of 64 after a newline", shape, hl)
		}
		y, err := ts.ReadNpy(path)
		if err != nil {
			t.Fatalf("shape %v: %v", shape, err)
		}
		d := x.MustSub(y, false).MustAbs(true).MustMax(true)
		if v := d.Float64Values()[0]; v != 0 || !equalShape(x.MustSize(), y.MustSize()) {
			t.Errorf("shape %v: read back %v, max diff %g", shape, y.MustSize(), v)
		}
		for _, t := range []*ts.Tensor{x, y, d} {
			t.MustDrop()
		}
	}
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
