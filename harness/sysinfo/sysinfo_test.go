package sysinfo

import (
	"context"
	"encoding/json"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/vitbench/vitbench/harness/store"
)

// TestCollect fingerprints this machine for real: libtorch, BLAS and the
// sgemm measurement go through the loaded libraries.
func TestCollect(t *testing.T) {
	// A directory outside any repository: the test leaves the checkout's
	// git state alone.
	info, err := Collect(context.Background(), Options{SgemmSize: 256, SgemmRuns: 5, GitDir: t.TempDir()})
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	t.Logf("%+v", *info)
	check := func(what string, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("%s: not as expected in %+v", what, *info)
		}
	}
	check("libtorch version", info.Libtorch != "" && info.LibtorchPath != "")
	// Test binaries carry no module list; a built bench says "v0.9.1
	// (prepared copy)".
	check("gotch version", strings.HasPrefix(info.Gotch, "v0.9.") || strings.HasPrefix(info.Gotch, "unknown (built from /"))
	check("go version", info.Go == runtime.Version())
	check("blas", info.BLAS != "" && info.BLAS != unknownBLAS)
	check("sgemm", info.SgemmGFLOPS > 0 && info.SgemmSize == 256)
	check("cpu", info.CPU != "")
	// An x86-64 CPU fast enough for these benchmarks lists at least sse4_2.
	check("simd", runtime.GOOS != "linux" || runtime.GOARCH != "amd64" || info.SIMD != "")
	check("cores", info.Cores > 0)
	check("threads", info.Threads > 0)
	check("memory", info.MemoryBytes > 0)
	check("os", info.OS != "")
	check("git outside a repository", info.GitCommit == "")
	if len(info.Problems) > 0 {
		t.Errorf("problems: %q", info.Problems)
	}

	// The JSON form starts with the machine keys every result file carries, in order.
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"libtorch", "gotch", "go", "blas", "sgemm_gflops", "cuda", "gpu", "cpu", "cores", "threads"}
	last := -1
	for _, k := range keys {
		i := strings.Index(string(b), `"`+k+`":`)
		if i < 0 || i < last {
			t.Errorf("JSON key %q missing or out of order in %s", k, b)
		}
		last = i
	}
}

func TestCollectCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Collect(ctx, Options{GitDir: t.TempDir()}); err != context.Canceled {
		t.Errorf("Collect with a canceled context: err = %v, want %v", err, context.Canceled)
	}
}

func TestSgemm(t *testing.T) {
	g, err := sgemm(context.Background(), 128, 1, 3)
	if err != nil || g <= 0 {
		t.Errorf("sgemm(128) = %v, %v; want a positive speed", g, err)
	}
	for _, bad := range [][3]int{{0, 1, 1}, {8, -1, 1}, {8, 1, 0}} {
		if _, err := sgemm(context.Background(), bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("sgemm%v: no error", bad)
		}
	}
}

func TestMedianDuration(t *testing.T) {
	tests := []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{5}, 5},
		{[]time.Duration{9, 1, 5}, 5},
		{[]time.Duration{9, 1, 5, 3}, 4},
	}
	for _, tt := range tests {
		if got := medianDuration(tt.in); got != tt.want {
			t.Errorf("medianDuration(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestWarnings(t *testing.T) {
	good := Info{Libtorch: "1.13.1", BLAS: "OpenBLAS (pthread)", SgemmGFLOPS: 120, SgemmSize: 1024, Threads: 2}
	tests := []struct {
		name string
		edit func(*Info)
		want []string // substrings, one per warning, in order
	}{
		{"all well", func(*Info) {}, nil},
		{"not measured", func(i *Info) { i.SgemmGFLOPS = 0 }, nil},
		{
			"reference BLAS",
			func(i *Info) {
				i.BLAS, i.BLASPath, i.SgemmGFLOPS = ReferenceBLAS, "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3", 3.9
			},
			[]string{
				"REFERENCE BLAS (/usr/lib/x86_64-linux-gnu/blas/libblas.so.3)",
				"only 3.9 GFLOP/s",
			},
		},
		{"slow sgemm", func(i *Info) { i.SgemmGFLOPS = 12.5 }, []string{"only 12.5 GFLOP/s (1024x1024 float32, 2 libtorch threads"}},
		{"unknown BLAS", func(i *Info) { i.BLAS = unknownBLAS }, []string{"could not tell which BLAS"}},
		{"GPU without CUDA", func(i *Info) { i.GPU = "NVIDIA H100" }, []string{"a GPU is present (NVIDIA H100)"}},
		{"GPU with CUDA", func(i *Info) { i.GPU, i.CUDA = "NVIDIA H100", true }, nil},
		{"no libtorch version", func(i *Info) { i.Libtorch = "" }, []string{"libtorch version"}},
		{"failed probe", func(i *Info) { i.Problems = []string{"memory: no MemTotal line"} }, []string{"probe failed: memory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := good
			tt.edit(&i)
			got := i.Warnings()
			if len(got) != len(tt.want) {
				t.Fatalf("Warnings() = %q, want %d warnings", got, len(tt.want))
			}
			for k, w := range tt.want {
				if !strings.Contains(got[k], w) {
					t.Errorf("warning %d = %q, want it to contain %q", k, got[k], w)
				}
			}
		})
	}
	// The reference BLAS warning says how to fix it.
	i := good
	i.BLAS, i.BLASPath = ReferenceBLAS, "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3"
	w := i.Warnings()[0]
	for _, fix := range []string{"apt-get install libopenblas0-pthread", "update-alternatives --set libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3"} {
		if !strings.Contains(w, fix) {
			t.Errorf("reference BLAS warning %q lacks %q", w, fix)
		}
	}
}

func TestMachine(t *testing.T) {
	i := Info{
		Libtorch: "1.13.1", Gotch: "v0.9.1 (prepared copy)", Go: "go1.26.8", BLAS: "OpenBLAS (pthread)",
		SgemmGFLOPS: 118.5, CUDA: true, GPU: "NVIDIA H100", CPU: "AMD EPYC", Cores: 2, Threads: 1,
		MemoryBytes: 1 << 34, OS: "Debian GNU/Linux 12 (bookworm)", Hostname: "vm", GitCommit: "abc",
		SIMD: "sse4_2 avx avx2 fma f16c",
	}
	want := store.Machine{
		Hostname: "vm", CPU: "AMD EPYC", Cores: 2, MemoryBytes: 1 << 34, GPU: "NVIDIA H100",
		OS: "Debian GNU/Linux 12 (bookworm)", Libtorch: "1.13.1", BLAS: "OpenBLAS (pthread)",
		Gotch: "v0.9.1 (prepared copy)", Go: "go1.26.8",
	}
	if got := i.machine(); got != want {
		t.Errorf("machine() = %+v\nwant %+v", got, want)
	}
	wantRun := store.Run{Machine: want, Threads: 1, SgemmGFLOPS: 118.5, SIMD: "sse4_2 avx avx2 fma f16c", CUDA: true}
	if got := i.Run(); !reflect.DeepEqual(got, wantRun) {
		t.Errorf("Run() = %+v\nwant %+v", got, wantRun)
	}
}

func TestModuleVersion(t *testing.T) {
	const gotch = "github.com/sugarme/gotch"
	bi := func(replace *debug.Module) *debug.BuildInfo {
		return &debug.BuildInfo{Deps: []*debug.Module{
			{Path: "github.com/BurntSushi/toml", Version: "v1.6.0"},
			{Path: gotch, Version: "v0.9.1", Replace: replace},
		}}
	}
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"plain", bi(nil), "v0.9.1"},
		{"go.work directory", bi(&debug.Module{Path: "./.cache/gotch", Version: "(devel)"}), "v0.9.1 (prepared copy)"},
		{"absolute directory", bi(&debug.Module{Path: "/src/gotch"}), "v0.9.1 (prepared copy)"},
		{"fork", bi(&debug.Module{Path: "github.com/me/gotch", Version: "v0.9.2"}), "v0.9.1 (replaced by github.com/me/gotch@v0.9.2)"},
		{"absent", &debug.BuildInfo{}, ""},
	}
	for _, tt := range tests {
		if got := moduleVersion(tt.bi, gotch); got != tt.want {
			t.Errorf("%s: moduleVersion = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestVersionFromSource(t *testing.T) {
	const gotch = "github.com/sugarme/gotch"
	tests := []struct{ file, want string }{
		{"/root/go/pkg/mod/github.com/sugarme/gotch@v0.9.1/device.go", "v0.9.1"},
		{"github.com/sugarme/gotch@v0.9.2-0.20240101000000-abcdef123456/device.go", "v0.9.2-0.20240101000000-abcdef123456"},
		{"/work/main/.cache/gotch/device.go", "unknown (built from /work/main/.cache/gotch)"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := versionFromSource(tt.file, gotch); got != tt.want {
			t.Errorf("versionFromSource(%q) = %q, want %q", tt.file, got, tt.want)
		}
	}
}

func TestVCSCommit(t *testing.T) {
	tests := []struct {
		settings []debug.BuildSetting
		want     string
	}{
		{nil, ""},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}}, "abc"},
		{[]debug.BuildSetting{{Key: "vcs.modified", Value: "true"}, {Key: "vcs.revision", Value: "abc"}}, "abc-dirty"},
		{[]debug.BuildSetting{{Key: "vcs.modified", Value: "true"}}, ""},
	}
	for _, tt := range tests {
		if got := vcsCommit(tt.settings); got != tt.want {
			t.Errorf("vcsCommit(%v) = %q, want %q", tt.settings, got, tt.want)
		}
	}
}

func TestWorkTreeCommit(t *testing.T) {
	const rev = "git -C /repo rev-parse HEAD"
	const status = "git --no-optional-locks -C /repo status --porcelain"
	tests := []struct {
		name    string
		answers map[string]string
		want    string
	}{
		{"clean", map[string]string{rev: "0123abcd\n", status: ""}, "0123abcd"},
		{"dirty", map[string]string{rev: "0123abcd\n", status: " M harness/sysinfo/sysinfo.go\n"}, "0123abcd-dirty"},
		{"status fails", map[string]string{rev: "0123abcd\n"}, "0123abcd"},
		{"not a repository", map[string]string{}, ""},
	}
	for _, tt := range tests {
		c := collector{run: fakeRun(tt.answers)}
		if got := c.workTreeCommit(context.Background(), "/repo"); got != tt.want {
			t.Errorf("%s: workTreeCommit = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestGPUName(t *testing.T) {
	const query = "nvidia-smi --query-gpu=name --format=csv,noheader"
	tests := []struct {
		name    string
		answers map[string]string
		want    string
	}{
		{"none", nil, ""},
		{"one", map[string]string{query: "NVIDIA H100 80GB HBM3\n"}, "NVIDIA H100 80GB HBM3"},
		{"two alike", map[string]string{query: "NVIDIA H100 80GB HBM3\nNVIDIA H100 80GB HBM3\n"}, "2 x NVIDIA H100 80GB HBM3"},
		{"mixed", map[string]string{query: "NVIDIA A100\nNVIDIA T4\nNVIDIA A100\n"}, "2 x NVIDIA A100, NVIDIA T4"},
	}
	for _, tt := range tests {
		c := collector{run: fakeRun(tt.answers)}
		if got := c.gpuName(context.Background()); got != tt.want {
			t.Errorf("%s: gpuName = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestRunCommand(t *testing.T) {
	out, err := runCommand(context.Background(), "sh", "-c", "echo out; echo err >&2")
	if err != nil || string(out) != "out\n" {
		t.Errorf("runCommand = %q, %v; want \"out\\n\"", out, err)
	}
	_, err = runCommand(context.Background(), "sh", "-c", "echo why >&2; exit 3")
	if err == nil || !strings.Contains(err.Error(), "why") {
		t.Errorf("failing command: err = %v, want its stderr in it", err)
	}
	if _, err := runCommand(context.Background(), "vitbench-no-such-program"); err == nil {
		t.Error("missing program: no error")
	}
}
