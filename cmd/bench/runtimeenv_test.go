package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestReexecWithRuntimeEnv checks that bench re-executes itself with
// passive OpenMP waiting and the malloc settings, leaves a user's own
// choice alone, and replaces an OpenBLAS core type without AVX-512 on a
// CPU that has it.
func TestReexecWithRuntimeEnv(t *testing.T) {
	// What this machine's CPU makes of OPENBLAS_CORETYPE=Haswell.
	haswell := "Haswell"
	if thisCPU().avx512() {
		haswell = "SkylakeX"
	}
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"unset", nil, "passive,4294967296,"},
		{"user active", []string{"OMP_WAIT_POLICY=active"}, "active,4294967296,"},
		{"user empty", []string{"OMP_WAIT_POLICY="}, ",4294967296,"},
		{"core type Haswell", []string{"OPENBLAS_CORETYPE=Haswell"}, "passive,4294967296," + haswell},
		{"core type kept", []string{"OPENBLAS_CORETYPE=Haswell", blasCoreChoice + "=keep"}, "passive,4294967296,Haswell"},
		{"core type chosen", []string{"OPENBLAS_CORETYPE=Haswell", blasCoreChoice + "=Zen"}, "passive,4294967296,Zen"},
		{"core type chosen, others set", []string{"OMP_WAIT_POLICY=active", "MALLOC_TRIM_THRESHOLD_=1", "MALLOC_MMAP_THRESHOLD_=1", "MALLOC_ARENA_MAX=2", "MALLOC_MMAP_MAX_=1", "OPENBLAS_THREAD_TIMEOUT=1", blasCoreChoice + "=Zen"}, "active,1,Zen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			var env []string
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "OMP_WAIT_POLICY=") && !strings.HasPrefix(kv, "MALLOC_") && !strings.HasPrefix(kv, "OPENBLAS_") &&
					!strings.HasPrefix(kv, "VITBENCH_") {
					env = append(env, kv)
				}
			}
			cmd.Env = append(append(env, tc.env...), "VITBENCH_TEST_REEXEC=1")
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.want {
				t.Errorf("OMP_WAIT_POLICY,MALLOC_TRIM_THRESHOLD_,OPENBLAS_CORETYPE in the re-executed process = %q, want %q", out, tc.want)
			}
		})
	}
}

func TestBLASCoreOverride(t *testing.T) {
	avx512 := x86Features{AVX512F: true, AVX512CD: true, AVX512BW: true, AVX512DQ: true, AVX512VL: true}
	avx2 := x86Features{}
	noVL := avx512
	noVL.AVX512VL = false
	for _, tc := range []struct {
		name    string
		current string
		set     bool
		choice  string
		cpu     x86Features
		want    string
	}{
		{"unset: OpenBLAS detects", "", false, "", avx512, ""},
		{"Haswell on AVX-512", "Haswell", true, "", avx512, "SkylakeX"},
		{"lower case zen on AVX-512", "zen", true, "", avx512, "SkylakeX"},
		{"Haswell on AVX2", "Haswell", true, "", avx2, ""},
		{"Haswell without AVX-512 VL", "Haswell", true, "", noVL, ""},
		{"already AVX-512", "SkylakeX", true, "", avx512, ""},
		{"Cooperlake any case", "COOPERLAKE", true, "", avx512, ""},
		{"keep", "Haswell", true, "keep", avx512, ""},
		{"chosen", "Haswell", true, "Zen", avx512, "Zen"},
		{"chosen, unset", "", false, "Haswell", avx512, "Haswell"},
		{"chosen equals current", "haswell", true, "Haswell", avx512, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := blasCoreOverride(tc.current, tc.set, tc.choice, tc.cpu); got != tc.want {
				t.Errorf("blasCoreOverride(%q, %v, %q) = %q, want %q", tc.current, tc.set, tc.choice, got, tc.want)
			}
		})
	}
}

func TestComputes(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"-h"}, false},
		{[]string{"list"}, false},
		{[]string{"report", "--db", "a.db"}, false},
		{[]string{"compare"}, false},
		{[]string{"experiments/all.toml"}, true},
		{[]string{"run", "s.toml"}, true},
		{[]string{"run", "s.toml", "--dry-run"}, false},
		{[]string{"run", "-h"}, false},
		{[]string{"latency", "--arch", "deit_tiny_patch16_224"}, true},
		{[]string{"env"}, true},
	} {
		if got := computes(tt.args); got != tt.want {
			t.Errorf("computes(%q) = %v, want %v", tt.args, got, tt.want)
		}
	}
}
