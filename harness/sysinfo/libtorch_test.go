package sysinfo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRun answers commands from a table keyed by the joined command line;
// anything else fails as a missing program would.
func fakeRun(answers map[string]string) runFunc {
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		key := strings.Join(append([]string{name}, args...), " ")
		if out, ok := answers[key]; ok {
			return []byte(out), nil
		}
		return nil, errors.New(key + ": not answered")
	}
}

func TestDebianUpstream(t *testing.T) {
	tests := []struct{ in, want string }{
		{"1.13.1+dfsg-4", "1.13.1"},
		{"1:2.1.0-1", "2.1.0"},
		{"2.1.2~rc1-1", "2.1.2"},
		{"\n", ""},
	}
	for _, tt := range tests {
		if got := debianUpstream(tt.in); got != tt.want {
			t.Errorf("debianUpstream(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDpkgOwner(t *testing.T) {
	const p = "/usr/lib/x86_64-linux-gnu/libtorch_cpu.so.1.13.0"
	tests := []struct{ out, want string }{
		{"libtorch1.13:amd64: " + p + "\n", "libtorch1.13:amd64"},
		{"diversion by foo from: " + p + "\nlibtorch1.13:amd64: " + p + "\n", "libtorch1.13:amd64"},
		{"a, b: " + p + "\n", "a"},
		{"libtorch1.13:amd64: /usr/lib/other.so\n", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := dpkgOwner(tt.out, p); got != tt.want {
			t.Errorf("dpkgOwner(%q) = %q, want %q", tt.out, got, tt.want)
		}
	}
}

func TestLibtorchVersion(t *testing.T) {
	ctx := context.Background()
	const debPath = "/usr/lib/x86_64-linux-gnu/libtorch_cpu.so.1.13.0"
	dpkg := map[string]string{
		"dpkg-query -S " + debPath:                       "libtorch1.13:amd64: " + debPath + "\n",
		"dpkg-query -W -f=${Version} libtorch1.13:amd64": "1.13.1+dfsg-4",
	}
	// dpkg knows the file under the other name of a merged /usr.
	dpkgLib := map[string]string{
		"dpkg-query -S /lib/x86_64-linux-gnu/libtorch_cpu.so.1.13.0": "libtorch1.13:amd64: /lib/x86_64-linux-gnu/libtorch_cpu.so.1.13.0\n",
		"dpkg-query -W -f=${Version} libtorch1.13:amd64":             "1.13.1+dfsg-4",
	}

	tree := func(files map[string]string) string {
		root := t.TempDir()
		for name, content := range files {
			p := filepath.Join(root, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return filepath.Join(root, "lib", "libtorch_cpu.so")
	}
	official := tree(map[string]string{"build-version": "2.1.0+cu121\n", "lib/libtorch_cpu.so": ""})
	pip := tree(map[string]string{"version.py": "__version__ = '2.1.2+cpu'\ndebug = False\n", "lib/libtorch_cpu.so": ""})
	header := tree(map[string]string{"include/torch/version.h": "#define TORCH_VERSION_MAJOR 2\n#define TORCH_VERSION_MINOR 0\n#define TORCH_VERSION_PATCH 1\n"})

	tests := []struct {
		name, path string
		answers    map[string]string
		want       string
		wantSource string // a substring of the source
	}{
		{"debian", debPath, dpkg, "1.13.1", "Debian package libtorch1.13 1.13.1+dfsg-4"},
		{"debian, merged /usr", debPath, dpkgLib, "1.13.1", "Debian package libtorch1.13"},
		{"official tree", official, nil, "2.1.0+cu121", "build-version"},
		{"pip torch", pip, nil, "2.1.2+cpu", "version.py"},
		{"version.h", header, nil, "2.0.1", "version.h"},
		{"file name only (no dpkg)", debPath, nil, "1.13.0", "file name"},
		{"unversioned file", "/nowhere/lib/libtorch_cpu.so", nil, "", ""},
		{"not found", "", dpkg, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, src := libtorchVersion(ctx, tt.path, fakeRun(tt.answers))
			if got != tt.want || !strings.Contains(src, tt.wantSource) {
				t.Errorf("libtorchVersion(%q) = %q, %q; want %q, source containing %q", tt.path, got, src, tt.want, tt.wantSource)
			}
		})
	}
}
