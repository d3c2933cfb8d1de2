package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSuitesPlan checks every shipped suite against the real technique
// registry with --dry-run: a stage parameter a technique no longer takes,
// or a sweep that stopped expanding, fails here rather than an hour into
// a run. The shipped suites must also keep covering what the issues and
// the report rely on.
func TestSuitesPlan(t *testing.T) {
	files, err := filepath.Glob("../../experiments/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no suites found: %v", err)
	}
	// Experiments (by generated name) each suite must plan, beyond parsing.
	wantExperiments := map[string][]string{
		"all.toml":   allCoverage(),
		"quick.toml": coverage,
		"scale.toml": scaleCoverage,
		"smoke.toml": {"vit_smoke", "vit_smoke_student", "ptq/w8", "ptq/w4", "lowrank", "prune/unstructured", "prune/heads", "prune/mlp", "tome", "heads-kd-int8"},
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := Main(context.Background(), []string{"run", f, "--dry-run"}, &stdout, &stderr); err != nil {
				t.Fatalf("dry run: %v\n%s", err, stderr.String())
			}
			for _, e := range wantExperiments[name] {
				if !strings.Contains(stdout.String(), "\n"+e+" ") {
					t.Errorf("the plan has no experiment %s", e)
				}
			}
		})
	}
}

// coverage is what all.toml and quick.toml both sweep: every family at the
// survey's levels and the combinations.
var coverage = []string{
	"cifar_vit", "fmnist_vit",
	"ptq-w8a8/minmax", "ptq-w8a8/percentile", "ptq-w8a8/omse",
	"ptq-w6a6/omse", "ptq-w4a4/minmax", "ptq-w4a4/omse",
	"weight-only/w8", "weight-only/w4",
	"vit-quant-w4a4/fq-vit", "vit-quant-w4a4/ptq4vit", "vit-quant-w4a4/repq-vit",
	"qat-w4a4", "bf16",
	"lowrank/p0.75", "lowrank/p0.5", "lowrank/p0.25",
	"unstructured/a0.3", "unstructured/a0.5", "unstructured/a0.7", "unstructured/a0.9",
	"heads/a0.25", "heads/a0.5", "mlp/a0.25", "mlp/a0.5",
	"tome/m4", "tome/m8", "evit",
	"student", "student-kd",
	"heads-kd-int8", "lowrank-int8", "student-kd-int8", "heads-tome", "heads-mlp-int8",
}

// scaleCoverage is the deployment-scale part: both models timed only, and
// the compressions whose speed issue 22 asks for at 224.
var scaleCoverage = []string{
	"deit_tiny", "deit_small",
	"tiny-int8", "tiny-heads-mlp", "tiny-tome", "tiny-evit", "tiny-heads-mlp-int8",
	"small-int8", "small-heads-mlp", "small-tome", "small-evit", "small-heads-mlp-int8",
}

// allCoverage is coverage as all.toml sweeps it, with quantization's
// methods, coverages, roundings, mixed precision and QAT variants, the
// students and EViT's fine-tune with three seeds, and scale.toml's part.
func allCoverage() []string {
	var out []string
	for _, e := range coverage {
		switch e {
		case "qat-w4a4":
		case "student", "student-kd", "student-kd-int8", "evit":
			out = append(out, e+"/seed0", e+"/seed1", e+"/seed2")
		default:
			out = append(out, e)
		}
	}
	out = append(out, "cifar_student/seed2", "cifar_student_kd/seed2", "evit-trainfree", "finetune-only/seed2")
	out = append(out, scaleCoverage...) // included from scale.toml
	return append(out, "qat-w4a4/ste", "qat-w4a4/lsq",
		"ptq-full-w8a8/minmax", "ptq-full-w4a4/omse",
		"vit-quant-w8a8/ptq4vit", "vit-quant-w6a6/repq-vit", "vit-quant-w4a4-full/ptq4vit",
		"weight-only-w4-rounding/gptq-no-bias_correction", "weight-only-w4-rounding/nearest-bias_correction",
		"mixed-w6a6", "mixed-w6a6-4or8")
}

// TestEViTMethodsValidate checks, against the real registry, that EViT
// as the paper (method evit) needs fine-tuning and the training-free
// variant refuses it, each error at the stage's file:line and key.
func TestEViTMethodsValidate(t *testing.T) {
	const head = "[suite]\nname = \"x\"\n\n[models.m]\narch = { img_size = 32, patch_size = 8, embed_dim = 32, depth = 4, num_heads = 2 }\ndata = \"cifar10\"\n\n[[experiment]]\nname = \"e\"\nmodel = \"m\"\npipeline = [\n"
	tests := []struct {
		name, stage, want string
	}{
		{"evit fine-tuned", `{ technique = "prune", kind = "tokens", method = "evit", keep_rate = 0.7, finetune_epochs = 0.2 }`, ""},
		{"evit-trainfree", `{ technique = "prune", kind = "tokens", method = "evit-trainfree", keep_rate = 0.7 }`, ""},
		{"evit without fine-tuning", `{ technique = "prune", kind = "tokens", method = "evit", keep_rate = 0.7 }`,
			"suite.toml:12: experiment[0].pipeline[0]: invalid parameters of prune: method evit fine-tunes after the keep rate is applied"},
		{"evit-trainfree fine-tuned", `{ technique = "prune", kind = "tokens", method = "evit-trainfree", finetune_epochs = 0.2 }`,
			"suite.toml:12: experiment[0].pipeline[0]: invalid parameters of prune: method evit-trainfree trains nothing, but finetune_epochs is 0.2"},
		{"evit swept over finetune_epochs", `{ technique = "prune", kind = "tokens", method = "evit", finetune_epochs = [0.2, 0] }`,
			"suite.toml:12: experiment[0].pipeline[0]: with finetune_epochs=0: invalid parameters of prune: method evit fine-tunes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "suite.toml")
			if err := os.WriteFile(p, []byte(head+"  "+tt.stage+",\n]\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			err := Main(context.Background(), []string{"run", p, "--dry-run"}, &stdout, &stderr)
			got := stderr.String()
			if err != nil {
				got += err.Error()
			}
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("dry run: %v\n%s", err, stderr.String())
			case tt.want != "" && err == nil:
				t.Errorf("no error, want %q", tt.want)
			case tt.want != "" && !strings.Contains(got, tt.want):
				t.Errorf("error %q, want it to contain %q", got, tt.want)
			}
		})
	}
}
