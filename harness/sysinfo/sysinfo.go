// Package sysinfo fingerprints the machine a benchmark runs on: which
// libtorch and BLAS the process actually loaded, how fast a float32
// matrix multiply runs through gotch, the CPU, GPU, memory and operating
// system, and the versions of gotch, Go and the project itself.
//
// Every stored run records this fingerprint (harness/store.Machine, via
// Info.Run) with the facts of the run measured here (threads, sgemm
// speed, CUDA use: Info.Run), and `bench env` prints it. Latency numbers from machines
// with different fingerprints are not comparable; numbers measured on
// libtorch's reference BLAS are not worth comparing at all, which is why
// Info.Warnings says so loudly.
//
// Everything is read at run time from the running process (/proc/self/maps,
// the dynamic linker) rather than from what the build was prepared for:
// the binary may run on another machine than the one that built it.
package sysinfo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/sugarme/gotch"
	"github.com/vitbench/vitbench/internal/torchrt"

	"github.com/vitbench/vitbench/harness/store"
)

// slowSgemmGFLOPS is the sgemm speed below which Warnings complains: far
// below what an optimized BLAS reaches and far above the reference BLAS, so
// that it catches the wrong library rather than a busy machine (`bench env`
// measures it; docs/performance.md has the speeds seen).
const slowSgemmGFLOPS = 20

// Info is the fingerprint of a machine and of the libraries this process
// loaded. Its JSON form is the object `bench env --json` prints: the
// fingerprint's headline keys (libtorch through threads) first, then extra
// detail.
type Info struct {
	Libtorch    string  `json:"libtorch"`     // "1.13.1"; "" when unknown
	Gotch       string  `json:"gotch"`        // "v0.9.1 (prepared copy)"
	Go          string  `json:"go"`           // "go1.26.8"
	BLAS        string  `json:"blas"`         // "OpenBLAS (pthread)", ReferenceBLAS, unknownBLAS, ...
	SgemmGFLOPS float64 `json:"sgemm_gflops"` // 0 when not measured
	CUDA        bool    `json:"cuda"`         // libtorch can use a CUDA device
	GPU         string  `json:"gpu"`          // from nvidia-smi; "" when none
	CPU         string  `json:"cpu"`          // model name
	Cores       int     `json:"cores"`        // logical CPUs this process may use
	Threads     int     `json:"threads"`      // libtorch's intra-op threads

	PhysicalCores  int    `json:"physical_cores,omitempty"`
	SIMD           string `json:"simd"` // the CPU's vector and matrix instruction flags, "sse4_2 avx avx2 fma f16c"; "" when unknown
	MemoryBytes    int64  `json:"memory_bytes"`
	OS             string `json:"os"`
	Hostname       string `json:"hostname"`
	GitCommit      string `json:"git_commit"`                // with "-dirty" for local changes; "" outside a repository
	LibtorchPath   string `json:"libtorch_path,omitempty"`   // the libtorch_cpu library mapped
	LibtorchSource string `json:"libtorch_source,omitempty"` // where Libtorch was read
	BLASPath       string `json:"blas_path,omitempty"`       // the BLAS library, symbolic links resolved
	BLASDetail     string `json:"blas_detail,omitempty"`     // the library's own description, e.g. OpenBLAS's config string
	SgemmSize      int    `json:"sgemm_size,omitempty"`      // side of the matrices sgemm multiplied

	// Problems lists the probes that failed; the rest of Info is still
	// filled. Warnings includes them.
	Problems []string `json:"problems,omitempty"`
}

// Options tunes Collect. The zero value collects everything with the
// default measurement.
type Options struct {
	// SgemmSize is the side of the square matrices of the sgemm
	// measurement; 0 means 1024.
	SgemmSize int
	// SgemmRuns is the number of timed multiplies; 0 means 10.
	SgemmRuns int
	// SkipSgemm leaves SgemmGFLOPS at 0, for callers that need the
	// fingerprint in milliseconds.
	SkipSgemm bool
	// GitDir is the working tree whose commit is recorded when the binary
	// carries none (go run, go test); "" means the current directory.
	GitDir string
}

// probeTimeout bounds each external command (dpkg-query, nvidia-smi, git).
const probeTimeout = 10 * time.Second

// Collect fingerprints this machine and process. A probe that fails is
// recorded in Info.Problems and the others still run; the error is
// non-nil only when ctx ends first.
func Collect(ctx context.Context, opts Options) (*Info, error) {
	c := collector{run: runCommand}
	return c.collect(ctx, opts)
}

// collector holds what tests replace.
type collector struct {
	run runFunc
}

func (c collector) collect(ctx context.Context, opts Options) (*Info, error) {
	info := &Info{
		Go:    runtime.Version(),
		Cores: runtime.NumCPU(),
	}
	problem := func(format string, args ...any) {
		info.Problems = append(info.Problems, fmt.Sprintf(format, args...))
	}

	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		problem("read mapped libraries: %v", err)
	}
	c.libtorch(ctx, info, string(maps))
	c.blas(info, string(maps), problem)
	info.Gotch = gotchVersion()

	info.Threads = torchrt.NumThreads()
	info.CUDA = gotch.CUDA.IsAvailable()
	info.GPU = c.gpuName(ctx)

	if b, err := os.ReadFile("/proc/cpuinfo"); err != nil {
		problem("cpu model: %v", err)
	} else {
		info.CPU, info.PhysicalCores = cpuInfo(string(b))
		info.SIMD = cpuFlags(string(b))
	}
	if info.CPU == "" {
		info.CPU = runtime.GOARCH
	}
	if b, err := os.ReadFile("/proc/meminfo"); err != nil {
		problem("memory: %v", err)
	} else if info.MemoryBytes, err = memTotal(string(b)); err != nil {
		problem("memory: /proc/meminfo: %v", err)
	}
	info.OS = osString()
	if info.Hostname, err = os.Hostname(); err != nil {
		problem("hostname: %v", err)
	}
	info.GitCommit = c.gitCommit(ctx, opts.GitDir)

	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !opts.SkipSgemm {
		n := cmpOr(opts.SgemmSize, defaultSgemmSize)
		g, err := sgemm(ctx, n, defaultSgemmWarmup, cmpOr(opts.SgemmRuns, defaultSgemmRuns))
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			problem("%v", err)
		}
		info.SgemmGFLOPS, info.SgemmSize = g, n
	}
	return info, nil
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// libtorch fills the libtorch path and version.
func (c collector) libtorch(ctx context.Context, info *Info, maps string) {
	path := libraryFromMaps(maps, "libtorch_cpu.so")
	if path == "" {
		// Not in the maps (not Linux?): ask the dynamic linker.
		path = symbolLibrary("_ZN2at15get_num_threadsEv")
	}
	if path == "" {
		if root := os.Getenv("LIBTORCH"); root != "" {
			path = filepath.Join(root, "lib", "libtorch_cpu.so")
		}
	}
	info.LibtorchPath = path
	info.Libtorch, info.LibtorchSource = libtorchVersion(ctx, path, c.run)
	if info.Libtorch == "" {
		if cfg, err := showConfig(); err == nil {
			if v := configValue(cfg, "TORCH_VERSION"); v != "" {
				info.Libtorch, info.LibtorchSource = v, "libtorch's build configuration"
			}
		}
	}
}

// blas fills the BLAS fields: first the library that defines the sgemm_
// libtorch calls, as the dynamic linker resolves it; then the BLAS
// libraries mapped into the process; then libtorch's build configuration
// for builds that link their BLAS statically.
func (c collector) blas(info *Info, maps string, problem func(string, ...any)) {
	if p := symbolLibrary("sgemm_"); p != "" {
		real := resolvePath(p)
		if name, ok := classifyBLAS(real); ok {
			info.BLAS, info.BLASPath = name, real
		}
	}
	if info.BLAS == "" {
		info.BLAS, info.BLASPath = blasFromMaps(maps, resolvePath)
	}
	if info.BLAS == "" {
		cfg, err := showConfig()
		if err != nil {
			problem("libtorch build configuration: %v", err)
		}
		info.BLAS = blasFromConfig(cfg)
	}
	if info.BLAS == "" {
		info.BLAS = unknownBLAS
	}
	switch {
	case strings.HasPrefix(info.BLAS, "OpenBLAS"):
		cfg, parallel := openBLASConfig()
		info.BLASDetail = cfg
		if info.BLAS == "OpenBLAS" {
			info.BLAS += map[int]string{0: " (serial)", 1: " (pthread)", 2: " (OpenMP)"}[parallel]
		}
	case strings.HasPrefix(info.BLAS, "Intel MKL"):
		info.BLASDetail = mklVersion()
	}
}

func resolvePath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// gotchVersion reports the gotch module this binary was built with, noting
// a replacement: the project builds gotch from a prepared copy.
func gotchVersion() string {
	const path = "github.com/sugarme/gotch"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := moduleVersion(bi, path); v != "" {
			return v
		}
	}
	// Test binaries carry no module list: fall back on where gotch's
	// source was compiled from.
	file, _ := runtime.FuncForPC(reflect.ValueOf(gotch.NewCuda).Pointer()).FileLine(0)
	return versionFromSource(file, path)
}

// versionFromSource reads a module's version from the path of one of its
// source files: ".../github.com/sugarme/gotch@v0.9.1/device.go" gives
// "v0.9.1"; a file outside the module cache gives "unknown (built from
// DIR)"; "" gives "".
func versionFromSource(file, module string) string {
	if file == "" || file == "?" {
		return ""
	}
	dir := filepath.Dir(filepath.ToSlash(file))
	if _, rest, ok := strings.Cut(dir, module+"@"); ok {
		v, _, _ := strings.Cut(rest, "/")
		return v
	}
	return "unknown (built from " + dir + ")"
}

// moduleVersion returns the version of module path in bi, with
// " (prepared copy)" when a local directory replaces it and
// " (replaced by M@V)" when another module does; "" when bi lacks it.
func moduleVersion(bi *debug.BuildInfo, path string) string {
	for _, d := range bi.Deps {
		if d.Path != path {
			continue
		}
		v := d.Version
		switch r := d.Replace; {
		case r == nil:
		case filepath.IsAbs(r.Path) || strings.HasPrefix(r.Path, "./") || strings.HasPrefix(r.Path, "../"):
			// A directory: go.work's replace by the set-up's copy.
			v += " (prepared copy)"
		default:
			v += fmt.Sprintf(" (replaced by %s@%s)", r.Path, r.Version)
		}
		return v
	}
	return ""
}

// gpuName asks nvidia-smi for the GPUs' names: "" without nvidia-smi or
// GPU, "NVIDIA H100 80GB HBM3", or "2 x NVIDIA H100 80GB HBM3".
func (c collector) gpuName(ctx context.Context) string {
	out, err := c.run(ctx, "nvidia-smi", "--query-gpu=name", "--format=csv,noheader")
	if err != nil {
		return ""
	}
	return gpuNames(string(out))
}

// gpuNames summarizes nvidia-smi's one-name-per-line output.
func gpuNames(out string) string {
	var names []string
	count := map[string]int{}
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if count[l] == 0 {
			names = append(names, l)
		}
		count[l]++
	}
	for i, n := range names {
		if count[n] > 1 {
			names[i] = fmt.Sprintf("%d x %s", count[n], n)
		}
	}
	return strings.Join(names, ", ")
}

// osString describes the operating system: PRETTY_NAME of os-release and
// the kernel release.
func osString() string {
	name := runtime.GOOS
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if b, err := os.ReadFile(p); err == nil {
			if n := osName(string(b)); n != "" {
				name = n
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		name += ", kernel " + strings.TrimSpace(string(b))
	}
	return name + " (" + runtime.GOOS + "/" + runtime.GOARCH + ")"
}

// gitCommit returns the commit of the code: the one stamped into the
// binary by go build when there is one, else the one of the working tree
// at dir ("-dirty" when it has local changes), else "".
func (c collector) gitCommit(ctx context.Context, dir string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := vcsCommit(bi.Settings); v != "" {
			return v
		}
	}
	return c.workTreeCommit(ctx, dir)
}

// workTreeCommit asks git for the commit checked out at dir, with
// "-dirty" when the tree has local changes; "" outside a repository or
// without git.
func (c collector) workTreeCommit(ctx context.Context, dir string) string {
	if dir == "" {
		dir = "."
	}
	out, err := c.run(ctx, "git", "-C", dir, "rev-parse", "HEAD")
	if err != nil {
		return ""
	}
	commit := strings.TrimSpace(string(out))
	// --no-optional-locks: never take the index lock, other processes
	// may be using the repository.
	st, err := c.run(ctx, "git", "--no-optional-locks", "-C", dir, "status", "--porcelain")
	if err == nil && len(bytes.TrimSpace(st)) > 0 {
		commit += "-dirty"
	}
	return commit
}

// vcsCommit reads the vcs.revision and vcs.modified build settings.
func vcsCommit(settings []debug.BuildSetting) string {
	var rev string
	var modified bool
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" && modified {
		rev += "-dirty"
	}
	return rev
}

// runCommand runs name with args under ctx (at most probeTimeout) and
// returns its standard output; a missing program is an error like any
// other.
func runCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "GIT_OPTIONAL_LOCKS=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("%s: %w: %s", name, err, msg)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// machine converts the fingerprint to the record a stored run carries.
func (i *Info) machine() store.Machine {
	return store.Machine{
		Hostname:    i.Hostname,
		CPU:         i.CPU,
		Cores:       i.Cores,
		MemoryBytes: i.MemoryBytes,
		GPU:         i.GPU,
		OS:          i.OS,
		Libtorch:    i.Libtorch,
		BLAS:        i.BLAS,
		Gotch:       i.Gotch,
		Go:          i.Go,
	}
}

// Run returns the record of a run on this machine with what Info knows of
// it: the machine, libtorch's thread count, the sgemm speed, the CPU's
// SIMD flags and whether libtorch can use CUDA. The caller fills in the
// rest (the runner sets Threads, Engine and Int8Engine to what it times
// with).
func (i *Info) Run() store.Run {
	return store.Run{
		Machine:     i.machine(),
		Threads:     i.Threads,
		SgemmGFLOPS: i.SgemmGFLOPS,
		SIMD:        i.SIMD,
		CUDA:        i.CUDA,
	}
}

// Warnings returns what makes this machine's measurements suspect, most
// serious first, each with what to do about it. None means all is well.
func (i *Info) Warnings() []string {
	var w []string
	if i.BLAS == ReferenceBLAS {
		w = append(w, fmt.Sprintf("libtorch is using the REFERENCE BLAS (%s): matrix multiplies run about 30x slower "+
			"(1024x1024 sgemm 3.9 vs ~120 GFLOP/s on 2 cores), so latency and training times mean nothing. "+
			"Fix: apt-get install libopenblas0-pthread%s", i.BLASPath, alternativesHint(i.BLASPath)))
	}
	if i.SgemmGFLOPS > 0 && i.SgemmGFLOPS < slowSgemmGFLOPS {
		w = append(w, fmt.Sprintf("sgemm reached only %.1f GFLOP/s (%dx%d float32, %d libtorch threads; an optimized BLAS "+
			"reaches ~100 or more on 2 cores): check the BLAS (%s) and the thread count (OMP_NUM_THREADS)",
			i.SgemmGFLOPS, i.SgemmSize, i.SgemmSize, i.Threads, i.BLAS))
	}
	if i.BLAS == unknownBLAS {
		w = append(w, "could not tell which BLAS libtorch loaded; the sgemm speed is the only evidence")
	}
	if i.GPU != "" && !i.CUDA {
		w = append(w, fmt.Sprintf("a GPU is present (%s) but this libtorch cannot use CUDA: everything runs on the CPU. "+
			"To use it, set LIBTORCH to an official CUDA libtorch tree and run the set-up again", i.GPU))
	}
	if i.Libtorch == "" {
		w = append(w, fmt.Sprintf("could not tell the libtorch version (libtorch_cpu library: %q)", i.LibtorchPath))
	}
	for _, p := range i.Problems {
		w = append(w, "probe failed: "+p)
	}
	return w
}

// alternativesHint adds, for Debian's reference BLAS, the command that
// switches the libblas.so.3 alternative when OpenBLAS is installed but
// not selected.
func alternativesHint(path string) string {
	dir := filepath.Dir(path)
	if filepath.Base(dir) != "blas" {
		return ""
	}
	libdir := filepath.Dir(dir)
	triplet := filepath.Base(libdir)
	return fmt.Sprintf(" (if it is installed already: update-alternatives --set libblas.so.3-%s %s)",
		triplet, filepath.Join(libdir, "openblas-pthread", "libblas.so.3"))
}
