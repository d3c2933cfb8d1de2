package sysinfo

import (
	"strings"
	"testing"
)

func TestClassifyBLAS(t *testing.T) {
	tests := []struct {
		path   string
		want   string
		isBLAS bool
	}{
		{"/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3", "OpenBLAS (pthread)", true},
		{"/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblasp-r0.3.21.so", "OpenBLAS (pthread)", true},
		{"/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3", "OpenBLAS (OpenMP)", true},
		{"/usr/lib/x86_64-linux-gnu/openblas-serial/libblas.so.3", "OpenBLAS (serial)", true},
		{"/usr/lib64/libopenblaso.so.0", "OpenBLAS (OpenMP)", true},
		{"/opt/OpenBLAS/lib/libopenblas.so.0", "OpenBLAS", true},
		{"/usr/lib/x86_64-linux-gnu/blas/libblas.so.3", ReferenceBLAS, true},
		{"/usr/lib/aarch64-linux-gnu/blas/libblas.so.3.11.0", ReferenceBLAS, true},
		{"/usr/lib/librefblas.so.3", ReferenceBLAS, true},
		{"/opt/intel/oneapi/mkl/2024.0/lib/libmkl_rt.so.2", "Intel MKL", true},
		{"/usr/lib/x86_64-linux-gnu/libmkl_core.so", "Intel MKL", true},
		{"/usr/lib/x86_64-linux-gnu/blis-openmp/libblas.so.3", "BLIS (OpenMP)", true},
		{"/usr/lib/x86_64-linux-gnu/blis-pthread/libblis.so.4", "BLIS (pthread)", true},
		{"/usr/lib/x86_64-linux-gnu/atlas/libblas.so.3", "ATLAS", true},
		{"/usr/lib64/libflexiblas.so.3", "FlexiBLAS", true},
		{"/usr/lib/libblas.so.3", "libblas (unidentified implementation)", true},
		// Not BLAS libraries, though some sit next to one.
		{"/usr/lib/x86_64-linux-gnu/openblas-pthread/liblapack.so.3", "", false},
		{"/usr/lib/x86_64-linux-gnu/libgomp.so.1.0.0", "", false},
		{"/usr/lib/x86_64-linux-gnu/libtorch_cpu.so.1.13.0", "", false},
		{"/usr/lib/x86_64-linux-gnu/libcblas.so.3", "", false},
	}
	for _, tt := range tests {
		got, ok := classifyBLAS(tt.path)
		if got != tt.want || ok != tt.isBLAS {
			t.Errorf("classifyBLAS(%q) = %q, %v; want %q, %v", tt.path, got, ok, tt.want, tt.isBLAS)
		}
	}
}

// maps builds a /proc/PID/maps listing that maps each path twice, as the
// kernel does for text and data segments, with a few anonymous mappings.
func maps(paths ...string) string {
	var b strings.Builder
	b.WriteString("55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0                          [heap]\n")
	for i, p := range paths {
		for _, perm := range []string{"r-xp", "rw-p"} {
			b.WriteString("7f3a1c000000-7f3a1c200000 " + perm + " 00000000 fd:01 " + string(rune('1'+i)) + "23456    " + p + "\n")
		}
	}
	b.WriteString("7ffd4c1b5000-7ffd4c1d6000 rw-p 00000000 00:00 0                          [stack]\n")
	return b.String()
}

func TestBLASFromMaps(t *testing.T) {
	const lib = "/usr/lib/x86_64-linux-gnu/"
	tests := []struct {
		name     string
		maps     string
		links    map[string]string // symbolic links resolve follows
		want     string
		wantPath string
	}{
		{
			name:     "openblas pthread (Debian)",
			maps:     maps(lib+"libtorch_cpu.so.1.13.0", lib+"openblas-pthread/libblas.so.3", lib+"openblas-pthread/liblapack.so.3", lib+"openblas-pthread/libopenblasp-r0.3.21.so", lib+"libgomp.so.1.0.0"),
			want:     "OpenBLAS (pthread)",
			wantPath: lib + "openblas-pthread/libblas.so.3",
		},
		{
			name:     "openblas openmp (Debian)",
			maps:     maps(lib+"libtorch_cpu.so.1.13.0", lib+"openblas-openmp/libblas.so.3", lib+"openblas-openmp/libopenblaso-r0.3.21.so"),
			want:     "OpenBLAS (OpenMP)",
			wantPath: lib + "openblas-openmp/libblas.so.3",
		},
		{
			// libtorch binds sgemm_ to the libblas.so.3 it names, even when
			// another dependency maps OpenBLAS too.
			name:     "reference BLAS beside OpenBLAS",
			maps:     maps(lib+"libtorch_cpu.so.1.13.0", lib+"openblas-pthread/libopenblasp-r0.3.21.so", lib+"blas/libblas.so.3", lib+"lapack/liblapack.so.3"),
			want:     ReferenceBLAS,
			wantPath: lib + "blas/libblas.so.3",
		},
		{
			name:     "mkl",
			maps:     maps("/opt/libtorch/lib/libtorch_cpu.so", "/opt/intel/oneapi/mkl/latest/lib/libmkl_intel_lp64.so.2", "/opt/intel/oneapi/mkl/latest/lib/libmkl_core.so.2"),
			want:     "Intel MKL",
			wantPath: "/opt/intel/oneapi/mkl/latest/lib/libmkl_intel_lp64.so.2",
		},
		{
			name:     "loader name resolved through alternatives",
			maps:     maps("/lib/x86_64-linux-gnu/libblas.so.3"),
			links:    map[string]string{"/lib/x86_64-linux-gnu/libblas.so.3": lib + "openblas-pthread/libblas.so.3"},
			want:     "OpenBLAS (pthread)",
			wantPath: lib + "openblas-pthread/libblas.so.3",
		},
		{
			name: "statically linked (official libtorch)",
			maps: maps("/opt/libtorch/lib/libtorch_cpu.so", "/opt/libtorch/lib/libgomp-a34b3233.so.1", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
			want: "",
		},
		{name: "empty", maps: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resolve := func(p string) string {
				if r, ok := tt.links[p]; ok {
					return r
				}
				return p
			}
			got, path := blasFromMaps(tt.maps, resolve)
			if got != tt.want || path != tt.wantPath {
				t.Errorf("blasFromMaps = %q, %q; want %q, %q", got, path, tt.want, tt.wantPath)
			}
		})
	}
}

func TestMappedFiles(t *testing.T) {
	in := "7f00-7f10 r-xp 00000000 fd:01 1 /opt/my libs/libtorch_cpu.so\n" +
		"7f10-7f20 rw-p 00000000 fd:01 1 /opt/my libs/libtorch_cpu.so\n" +
		"7f20-7f30 rw-p 00000000 00:00 0 \n" +
		"7f30-7f40 r--p 00000000 fd:01 2 /tmp/x.so (deleted)\n" +
		"7f40-7f50 r--p 00000000 00:00 0 [vdso]\n"
	got := mappedFiles(in)
	want := []string{"/opt/my libs/libtorch_cpu.so", "/tmp/x.so"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("mappedFiles = %q, want %q", got, want)
	}
	if p := libraryFromMaps(in, "libtorch_cpu.so"); p != want[0] {
		t.Errorf("libraryFromMaps = %q, want %q", p, want[0])
	}
}

func TestBLASFromConfig(t *testing.T) {
	tests := []struct{ config, want string }{
		{"  - Build settings: BLAS_INFO=mkl, BUILD_TYPE=Release, CXX_COMPILER=/opt/rh/devtoolset-9/root/usr/bin/c++", "Intel MKL (linked into libtorch)"},
		{"Build settings: BLAS_INFO=open, BUILD_TYPE=Release", "OpenBLAS (linked into libtorch)"},
		{"Build settings: BLAS_INFO=generic, BUILD_TYPE=RelWithDebInfo", "generic (per libtorch's build configuration)"},
		{"PyTorch built with:\n  - GCC 12.2\n", ""},
	}
	for _, tt := range tests {
		if got := blasFromConfig(tt.config); got != tt.want {
			t.Errorf("blasFromConfig(%q) = %q, want %q", tt.config, got, tt.want)
		}
	}
	if v := configValue("a=1, TORCH_VERSION=2.1.0, USE_CUDA=ON", "TORCH_VERSION"); v != "2.1.0" {
		t.Errorf("configValue TORCH_VERSION = %q, want 2.1.0", v)
	}
}
