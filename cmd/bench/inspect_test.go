package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// saveTinyArtifact saves a small model as a vitbench artifact in dir
// (16x16 input, patch 8, 3 classes) and returns its path. Every parameter
// is random and non-zero; when pruned is set, the first half of block 0's
// fc1 neurons have zero weights.
func saveTinyArtifact(t *testing.T, dir string, pruned bool) string {
	t.Helper()
	img, patch, dim, depth, heads, classes := 16, 8, 32, 2, 2, 3
	cfg, err := vit.Custom("", vit.Overrides{ImgSize: &img, PatchSize: &patch, EmbedDim: &dim,
		Depth: &depth, NumHeads: &heads, NumClasses: &classes})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Name = "tiny"
	m, err := vit.New(cfg, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Drop()
	torchrt.NoGrad(func() {
		for _, v := range m.VS.Variables() {
			r := ts.MustRand(v.MustSize(), gotch.Float, gotch.CPU).MustAddScalar(ts.FloatScalar(0.5), true)
			v.Copy_(r)
			r.MustDrop()
		}
		if pruned {
			half := m.Blocks[0].FC1.Weight.MustNarrow(0, 0, int64(m.Blocks[0].FC1.Out/2), false)
			half.MustZero_()
			half.MustDrop()
		}
	})
	path := filepath.Join(dir, "tiny.pt")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func runJSON(t *testing.T, args []string, v any) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := Main(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("bench %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), v); err != nil {
		t.Fatalf("bench %s: not one JSON object: %v\n%s", strings.Join(args, " "), err, stdout.String())
	}
}

func TestInspectJSONCounts(t *testing.T) {
	tests := []struct {
		args   []string
		params int64
		gmacs  float64 // published GMACs (the literature's "GFLOPs")
		tol    float64
		layers int
	}{
		{[]string{"--arch", "vit_b_16"}, 86_567_656, 17.56, 0.01, 2 + 12*7 + 2},
		{[]string{"--arch", "vit_b_32"}, 88_224_232, 4.41, 0.01, 2 + 12*7 + 2},
		{[]string{"--arch", "deit_small_patch16_224"}, 22_050_664, 4.6, 0.01, 2 + 12*7 + 2},
		{[]string{"--arch", "deit_tiny_patch16_224"}, 5_717_416, 1.3, 0.05 / 1.3, 2 + 12*7 + 2},
		{[]string{"--arch", "deit_tiny_distilled_patch16_224"}, 5_910_800, 1.3, 0.05 / 1.3, 2 + 12*7 + 3},
		// Head of 10 classes: 1000-10 fewer outputs of 192 inputs, plus biases.
		{[]string{"--arch", "deit_tiny_patch16_224", "--num-classes", "10"}, 5_717_416 - 990*193, 1.3, 0.05 / 1.3, 2 + 12*7 + 2},
		// 32x32 input: 4 patches + class token instead of 197 tokens.
		{[]string{"--arch", "deit_tiny_patch16_224", "--img-size", "32"}, 5_717_416 - 192*192, 0.027439104, 1e-9, 2 + 12*7 + 2},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var got map[string]json.RawMessage
			runJSON(t, append([]string{"inspect", "--json"}, tt.args...), &got)
			for _, k := range []string{"arch", "params", "macs", "flops", "size_bytes", "layers"} {
				if _, ok := got[k]; !ok {
					t.Errorf("key %q missing", k)
				}
			}
			var r inspectResult
			runJSON(t, append([]string{"inspect", "--json"}, tt.args...), &r)
			if r.Arch != tt.args[1] {
				t.Errorf("arch = %q, want %q", r.Arch, tt.args[1])
			}
			if r.Params != tt.params {
				t.Errorf("params = %d, want %d", r.Params, tt.params)
			}
			if g := float64(r.MACs) / 1e9; math.Abs(g-tt.gmacs)/tt.gmacs > tt.tol {
				t.Errorf("GMACs = %.4f, want %.4f within %.1f%%", g, tt.gmacs, 100*tt.tol)
			}
			if r.FLOPs != 2*r.MACs {
				t.Errorf("flops %d != 2 x macs %d", r.FLOPs, r.MACs)
			}
			if r.SizeBytes != 4*r.Params {
				t.Errorf("size_bytes = %d, want 4 x params = %d (float32)", r.SizeBytes, 4*r.Params)
			}
			if len(r.Layers) != tt.layers {
				t.Errorf("%d layers, want %d", len(r.Layers), tt.layers)
			}
			var params, macs int64
			for _, l := range r.Layers {
				params += l.Params
				macs += l.MACs
				if l.FLOPs != 2*l.MACs {
					t.Errorf("layer %s: flops %d != 2 x macs %d", l.Name, l.FLOPs, l.MACs)
				}
			}
			if params != r.Params || macs != r.MACs {
				t.Errorf("layers sum to %d params, %d MACs; totals %d, %d", params, macs, r.Params, r.MACs)
			}
		})
	}
}

// TestInspectWeights counts a loaded artifact: parameters and size from
// its tensors, and the zeros of a pruned layer in non-zero parameters
// and effective MACs.
func TestInspectWeights(t *testing.T) {
	for _, pruned := range []bool{false, true} {
		dir := t.TempDir()
		path := saveTinyArtifact(t, dir, pruned)
		var r inspectResult
		runJSON(t, []string{"inspect", "--json", "--weights", path}, &r)
		cfg := r.Config
		analytic := cfg.Count()
		if r.ParamsFrom != "weights" || r.Arch != "tiny" {
			t.Errorf("pruned=%v: params_from %q, arch %q; want weights, tiny", pruned, r.ParamsFrom, r.Arch)
		}
		if r.Params != analytic.Params || r.SizeBytes != 4*analytic.Params {
			t.Errorf("pruned=%v: params %d, size %d; want %d, %d", pruned, r.Params, r.SizeBytes, analytic.Params, 4*analytic.Params)
		}
		fc1 := int64(32 * 128 / 2) // half of block 0's fc1 weight
		wantNZ, wantEff := r.Params, r.MACs
		if pruned {
			wantNZ -= fc1
			wantEff -= int64(cfg.NumTokens()) * fc1
		}
		if r.NonZero != wantNZ || r.EffMACs != wantEff {
			t.Errorf("pruned=%v: nonzero %d, eff_macs %d; want %d, %d", pruned, r.NonZero, r.EffMACs, wantNZ, wantEff)
		}
		var text bytes.Buffer
		if err := writeInspectText(&text, &r); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(text.String(), "eff. MMACs"); got != pruned {
			t.Errorf("pruned=%v: effective MACs column shown: %v\n%s", pruned, got, text.String())
		}
	}
}

func TestInspectText(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := Main(context.Background(), []string{"inspect", "--arch", "vit_b_16"}, &stdout, &stderr); err != nil {
		t.Fatal(err, stderr.String())
	}
	s := stdout.String()
	for _, want := range []string{
		"params  86,567,656 (analytic)\n",
		`MACs    17.56 GMACs per image (the "GFLOPs" of DeiT's and torchvision's tables are these GMACs)`,
		"FLOPs   35.13 GFLOPs per image (= 2 x MACs)\n",
		"size    346,270,624 bytes",
		"MMACs  MFLOPs (2xMACs)\n",
		"\nblocks.11.mlp.fc2  ",
		"\ntotal  ",
		"MFLOPs = 2 x MMACs",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("%q not in\n%s", want, s)
		}
	}
	// Every row has as many columns as the header.
	lines := strings.Split(strings.TrimSpace(s[strings.Index(s, "layer  "):strings.Index(s, "\n\nMMACs")]), "\n")
	for _, l := range lines[1:] {
		if n := len(strings.Fields(l)); n != 6 && !(strings.HasPrefix(l, "total") && n == 4) {
			t.Errorf("row %q has %d fields", l, n)
		}
	}
}

func TestInspectErrors(t *testing.T) {
	dir := t.TempDir()
	art := saveTinyArtifact(t, dir, false)
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{}, "--arch is required"},
		{[]string{"--arch", "vit_nano"}, `unknown ViT architecture "vit_nano"`},
		{[]string{"--arch", "vit_b_16", "--num-classes", "-1"}, "want > 0"},
		{[]string{"--arch", "vit_b_16", "--img-size", "100"}, "not a multiple of patch_size 16"},
		{[]string{"--arch", "vit_b_16", "extra"}, `unexpected argument "extra"`},
		{[]string{"--arch", "vit_b_16", "--weights", filepath.Join(dir, "nope.pth")}, "no such file"},
		{[]string{"--weights", art, "--img-size", "32"}, "drop --num-classes and --img-size"},
		{[]string{"--json=maybe"}, "invalid boolean value"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := Main(context.Background(), append([]string{"inspect"}, tt.args...), &stdout, &stderr)
		var ue usageError
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &ue) {
			t.Errorf("%q: err = %v, want a usage error containing %q", tt.args, err, tt.wantErr)
		}
		if code := exitCode(err, &stderr); code != 2 {
			t.Errorf("%q: exit status %d, want 2", tt.args, code)
		}
	}
	var stdout, stderr bytes.Buffer
	if err := Main(context.Background(), []string{"inspect", "-h"}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "deit_tiny_patch16_224") {
		t.Errorf("-h: err %v, usage on stdout without the architecture names:\n%s", err, stdout.String())
	}
}

func TestCommas(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 86567656: "86,567,656", -1234567: "-1,234,567"} {
		if got := commas(n); got != want {
			t.Errorf("commas(%d) = %q, want %q", n, got, want)
		}
	}
}
