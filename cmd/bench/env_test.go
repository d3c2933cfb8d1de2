package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/vitbench/vitbench/harness/sysinfo"
)

// TestEnvJSON runs `bench env --json` for real: libtorch, BLAS and sgemm
// come from the loaded libraries.
func TestEnvJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := Main(context.Background(), []string{"env", "--json"}, &stdout, &stderr); err != nil {
		t.Fatalf("bench env --json: %v\n%s", err, stderr.String())
	}
	var got map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, stdout.String())
	}
	t.Logf("%s", stdout.String())
	nonEmpty := func(v any) bool { s, ok := v.(string); return ok && s != "" }
	anyString := func(v any) bool { _, ok := v.(string); return ok }
	positive := func(v any) bool { f, ok := v.(float64); return ok && f > 0 }
	isBool := func(v any) bool { _, ok := v.(bool); return ok }
	// The machine keys bench env --json prints first.
	spec := map[string]func(any) bool{
		"libtorch": nonEmpty, "gotch": nonEmpty, "go": nonEmpty, "blas": nonEmpty,
		"sgemm_gflops": positive, "cuda": isBool, "gpu": anyString, "cpu": nonEmpty,
		"cores": positive, "threads": positive,
	}
	for key, ok := range spec {
		v, present := got[key]
		if !present || !ok(v) {
			t.Errorf("key %q = %#v (present %v): wrong type or empty", key, v, present)
		}
	}
	if w, ok := got["warnings"].([]any); !ok {
		t.Errorf("warnings = %#v, want an array", got["warnings"])
	} else if len(w) > 0 && !strings.Contains(stderr.String(), "WARNING") {
		t.Errorf("warnings %q not repeated on stderr: %q", w, stderr.String())
	}
}

func TestEnvFlags(t *testing.T) {
	tests := []struct {
		args      []string
		wantUsage bool   // a usageError: exit status 2
		wantErr   string // substring; "" for success
	}{
		{[]string{"env", "--bogus"}, true, "flag provided but not defined: -bogus"},
		{[]string{"env", "extra"}, true, `unexpected argument "extra"`},
		{[]string{"env", "--json=maybe"}, true, "invalid boolean value"},
		{[]string{"env", "-h"}, false, ""},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := Main(context.Background(), tt.args, &stdout, &stderr)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%q: %v", tt.args, err)
			}
			if !strings.Contains(stdout.String(), "usage: bench env") || stderr.Len() > 0 {
				t.Errorf("%q: asked for, the usage goes to stdout alone: stdout %q, stderr %q", tt.args, stdout.String(), stderr.String())
			}
			continue
		}
		var ue usageError
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errors.As(err, &ue) != tt.wantUsage {
			t.Errorf("%q: err = %v, want a usage error containing %q", tt.args, err, tt.wantErr)
		}
		if code := exitCode(err, &stderr); code != 2 {
			t.Errorf("%q: exit status %d, want 2", tt.args, code)
		}
	}
}

func sampleInfo() *sysinfo.Info {
	return &sysinfo.Info{
		Libtorch: "1.13.1", Gotch: "v0.9.1 (prepared copy)", Go: "go1.26.8", BLAS: sysinfo.ReferenceBLAS,
		SgemmGFLOPS: 3.9, SgemmSize: 1024, CPU: "AMD EPYC", SIMD: "sse4_2 avx avx2 fma f16c",
		Cores: 2, PhysicalCores: 2, Threads: 1,
		MemoryBytes: 8 << 30, OS: "Debian GNU/Linux 12 (bookworm)", Hostname: "vm",
		LibtorchSource: "Debian package libtorch1.13 1.13.1+dfsg-4",
		BLASPath:       "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3",
	}
}

func TestWriteEnvText(t *testing.T) {
	info := sampleInfo()
	var out bytes.Buffer
	if err := writeEnvText(&out, info, info.Warnings()); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"libtorch    1.13.1 (Debian package libtorch1.13 1.13.1+dfsg-4)\n",
		"blas        reference BLAS (slow!) (/usr/lib/x86_64-linux-gnu/blas/libblas.so.3)\n",
		"sgemm       3.9 GFLOP/s (1024x1024 float32 matmul, median)\n",
		"gpu         none\n",
		"cpu         AMD EPYC\nsimd        sse4_2 avx avx2 fma f16c\n",
		"cores       2 logical, 2 physical\n",
		"threads     1 (libtorch intra-op, of 2 logical CPUs",
		"memory      8.0 GiB\n",
		"git         not a git working tree\n",
		"thread env  ",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("%q not in\n%s", want, s)
		}
	}
	// The warnings frame the block, before and after.
	if n := strings.Count(s, "!! WARNING: libtorch is using the REFERENCE BLAS"); n != 2 {
		t.Errorf("reference BLAS warning printed %d times, want 2:\n%s", n, s)
	}
	if !strings.HasPrefix(s, strings.Repeat("!", 72)) {
		t.Errorf("output does not open with the warnings:\n%s", s)
	}

	// No warnings, no banner; flags not read say so.
	info.BLAS, info.SgemmGFLOPS, info.SIMD = "OpenBLAS (pthread)", 120, ""
	out.Reset()
	if err := writeEnvText(&out, info, info.Warnings()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "WARNING") || !strings.HasPrefix(out.String(), "libtorch") {
		t.Errorf("output without warnings:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "simd        unknown\n") {
		t.Errorf("no \"simd unknown\" row without flags:\n%s", out.String())
	}
}

func TestWriteEnvJSON(t *testing.T) {
	var out bytes.Buffer
	if err := writeEnvJSON(&out, sampleInfo(), nil); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	// The machine keys come first, in their order; warnings is [] not null.
	last := -1
	for _, k := range []string{"libtorch", "gotch", "go", "blas", "sgemm_gflops", "cuda", "gpu", "cpu", "cores", "threads", "warnings"} {
		i := strings.Index(s, `"`+k+`":`)
		if i < last {
			t.Errorf("key %q missing or out of order:\n%s", k, s)
		}
		last = i
	}
	if !strings.Contains(s, `"warnings": []`) {
		t.Errorf("warnings not an empty array:\n%s", s)
	}
}
