package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestReexecWithRuntimeEnv checks that bench re-executes itself with
// passive OpenMP waiting and the malloc settings, and leaves a user's own
// choice alone.
func TestReexecWithRuntimeEnv(t *testing.T) {
	for _, tc := range []struct {
		name, userSetting string
		want              string
	}{
		{"unset", "", "passive,4294967296"},
		{"user active", "active", "active,4294967296"},
		{"user empty", "=", ",4294967296"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			var env []string
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "OMP_WAIT_POLICY=") && !strings.HasPrefix(kv, "MALLOC_") && !strings.HasPrefix(kv, reexecMarker+"=") {
					env = append(env, kv)
				}
			}
			switch tc.userSetting {
			case "":
			case "=":
				env = append(env, "OMP_WAIT_POLICY=")
			default:
				env = append(env, "OMP_WAIT_POLICY="+tc.userSetting)
			}
			cmd.Env = append(env, "VITBENCH_TEST_REEXEC=1")
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.want {
				t.Errorf("OMP_WAIT_POLICY in the re-executed process = %q, want %q", out, tc.want)
			}
		})
	}
}
