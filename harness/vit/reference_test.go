package vit

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// referencePython is Debian's interpreter, which has python3-torch and
// python3-torchvision; a python3 earlier on PATH (pyenv) may not.
const referencePython = "/usr/bin/python3"

type refCase struct {
	Name       string `json:"name"`
	Checkpoint string `json:"checkpoint"`
	Input      string `json:"input"`
	Logits     string `json:"logits"`
	Params     int64  `json:"params"`
	Config     struct {
		ImgSize    int     `json:"img_size"`
		PatchSize  int     `json:"patch_size"`
		InChans    int     `json:"in_chans"`
		NumClasses int     `json:"num_classes"`
		EmbedDim   int     `json:"embed_dim"`
		Depth      int     `json:"depth"`
		NumHeads   int     `json:"num_heads"`
		MLPRatio   float64 `json:"mlp_ratio"`
		Distilled  bool    `json:"distilled"`
	} `json:"config"`
}

// TestLogitsMatchPyTorch loads checkpoints written by PyTorch (torchvision's
// VisionTransformer, and timm-named modules) and checks that the logits
// match PyTorch's for the same input within 1e-4.
func TestLogitsMatchPyTorch(t *testing.T) {
	if _, err := os.Stat(referencePython); err != nil {
		t.Fatalf("reference interpreter %s missing: run make setup (installs python3-torch, python3-torchvision)", referencePython)
	}
	dir := t.TempDir()
	cmd := exec.Command(referencePython, "testdata/reference.py", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("reference.py: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []refCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 3 {
		t.Fatalf("want 3 reference cases, got %d", len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			cfg := Config{Name: c.Name, ImgSize: c.Config.ImgSize, PatchSize: c.Config.PatchSize,
				InChans: c.Config.InChans, NumClasses: c.Config.NumClasses, EmbedDim: c.Config.EmbedDim,
				Depth: c.Config.Depth, NumHeads: c.Config.NumHeads, MLPRatio: c.Config.MLPRatio,
				QKVBias: true, Distilled: c.Config.Distilled}
			m, err := New(cfg, gotch.CPU)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Drop()
			if err := m.LoadPyTorch(c.Checkpoint); err != nil {
				t.Fatal(err)
			}
			if got := m.NumParams(); got != c.Params {
				t.Errorf("parameters: %d, PyTorch counts %d", got, c.Params)
			}
			if got := cfg.Count().Params; got != c.Params {
				t.Errorf("analytic parameters: %d, PyTorch counts %d", got, c.Params)
			}
			x, err := ts.ReadNpy(c.Input)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ts.ReadNpy(c.Logits)
			if err != nil {
				t.Fatal(err)
			}
			var got *ts.Tensor
			torchrt.NoGrad(func() { got = m.Forward(x) })
			diff := got.MustSub(want, false).MustAbs(true).MustMax(true)
			d := diff.Float64Values()[0]
			if d > 1e-4 {
				t.Errorf("max |logits - PyTorch| = %g, want <= 1e-4", d)
			}
			t.Logf("max abs diff %.2g; got[0,:3]=%v want[0,:3]=%v", d, got.Float64Values()[:3], want.Float64Values()[:3])
			for _, x := range []*ts.Tensor{x, want, got, diff} {
				x.MustDrop()
			}
		})
	}
}

func TestLoadReportsKeyErrors(t *testing.T) {
	cfg, _ := Custom("", Overrides{})
	m, err := New(cfg, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Drop()
	sd := map[string]*ts.Tensor{}
	for name, v := range m.VS.Variables() {
		if name == "head.bias" {
			continue // missing
		}
		sd[name] = v.MustShallowClone()
	}
	sd["head.weight"] = ts.MustZeros([]int64{3, 3}, gotch.Float, gotch.CPU) // mis-shaped
	sd["blocks.99.attn.qkv.weight"] = ts.MustZeros([]int64{1}, gotch.Float, gotch.CPU)
	err = m.LoadStateDict(sd)
	ke, ok := err.(*KeyError)
	if !ok {
		t.Fatalf("error %v is not a *KeyError", err)
	}
	if len(ke.Missing) != 1 || ke.Missing[0] != "head.bias" {
		t.Errorf("missing = %v", ke.Missing)
	}
	if len(ke.Unexpected) != 1 || ke.Unexpected[0] != "blocks.99.attn.qkv.weight" {
		t.Errorf("unexpected = %v", ke.Unexpected)
	}
	if len(ke.Mismatched) != 1 {
		t.Errorf("mismatched = %v", ke.Mismatched)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	cfg, _ := Custom("", Overrides{})
	cfg = cfg.WithBlocks()
	cfg.Blocks[1].Heads = 2
	cfg.Blocks[2].MLPHidden = 100
	cfg.Blocks[3].Ranks = map[string]int{"fc1": 16}
	m, err := New(cfg, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Drop()
	path := filepath.Join(t.TempDir(), "m.pt")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	m2, err := Load(path, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Drop()
	x := ts.MustRandn([]int64{2, 3, 32, 32}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	var a, b *ts.Tensor
	torchrt.NoGrad(func() { a, b = m.Forward(x), m2.Forward(x) })
	d := a.MustSub(b, false).MustAbs(true).MustMax(true)
	if v := d.Float64Values()[0]; v != 0 {
		t.Errorf("reloaded model differs by %g", v)
	}
}
