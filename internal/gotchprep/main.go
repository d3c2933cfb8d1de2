// Command gotchprep prepares a build copy of gotch for the libtorch found on
// this machine and wires it into the workspace with go.work.
//
// gotch v0.9.1 targets libtorch 2.1 and hard-codes CUDA link flags. Against
// an older libtorch (Debian bookworm ships 1.13.1) about a hundred of its
// generated op wrappers call ops that do not exist yet, so its C++ does not
// compile. gotchprep copies the module into a git-ignored cache, writes link
// flags for the libtorch it finds, compiles the wrapper translation unit
// once with -fsyntax-only and replaces every wrapper the compiler rejects by
// a stub that raises a run-time error naming the op and the libtorch
// version. Nothing of gotch's source is committed and go.mod stays clean.
//
// A stamp file records what the copy was prepared for, so a second run with
// nothing changed returns in well under a second.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

// prepVersion changes whenever the way the copy is prepared changes, so
// that stale copies are rebuilt.
const prepVersion = "gotchprep-11"

const gotchModule = "github.com/sugarme/gotch"

func main() {
	if err := run(os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gotchprep:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, args []string) error {
	fs := flag.NewFlagSet("gotchprep", flag.ContinueOnError)
	dst := fs.String("dst", ".cache/gotch", "where the prepared copy of gotch goes")
	work := fs.String("work", "go.work", "go.work file to write (empty: do not write one)")
	force := fs.Bool("force", false, "prepare the copy even if the stamp says it is up to date")
	if err := fs.Parse(args); err != nil {
		return err
	}

	lt, err := findLibtorch()
	if err != nil {
		return err
	}
	src, gotchVersion, err := gotchSource()
	if err != nil {
		return err
	}
	key := stampKey(lt, gotchVersion)
	stampPath := filepath.Join(*dst, ".vitbench-stamp")
	if !*force {
		if b, err := os.ReadFile(stampPath); err == nil && strings.TrimSpace(string(b)) == key {
			fmt.Fprintf(w, "gotch %s for libtorch %s (%s): up to date in %s\n", gotchVersion, lt.Version, lt.Kind, *dst)
			return writeWork(*work, *dst, gotchVersion)
		}
	}

	fmt.Fprintf(w, "preparing gotch %s for libtorch %s (%s, %s) in %s\n", gotchVersion, lt.Version, lt.Kind, lt.Root, *dst)
	if err := os.RemoveAll(*dst); err != nil {
		return err
	}
	if err := copyTree(src, *dst); err != nil {
		return fmt.Errorf("copy gotch: %w", err)
	}
	libtch := filepath.Join(*dst, "libtch")
	if err := os.WriteFile(filepath.Join(libtch, "lib.go"), []byte(lt.libGo()), 0o644); err != nil {
		return err
	}
	n, err := panicInsteadOfExit(*dst)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "made %d log.Fatal calls panic instead, so one failing op cannot end a whole suite\n", n)
	if err := applyFixes(*dst); err != nil {
		return err
	}
	stubbed, err := stubMissingOps(w, libtch, lt)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "stubbed %d op wrappers that libtorch %s lacks (list in %s)\n", len(stubbed), lt.Version, filepath.Join(*dst, "STUBBED_OPS.txt"))
	if err := os.WriteFile(filepath.Join(*dst, "STUBBED_OPS.txt"), []byte(strings.Join(stubbed, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(stampPath, []byte(key+"\n"), 0o644); err != nil {
		return err
	}
	return writeWork(*work, *dst, gotchVersion)
}

// libtorch describes the libtorch the copy is built against.
type libtorch struct {
	Kind     string // "system" (Debian's libtorch-dev) or "tree" ($LIBTORCH)
	Root     string
	Includes []string
	LibDir   string
	Version  string
	CXX11ABI bool
	CUDA     bool
}

func findLibtorch() (*libtorch, error) {
	if root := os.Getenv("LIBTORCH"); root != "" {
		lt := &libtorch{
			Kind:     "tree",
			Root:     root,
			Includes: []string{filepath.Join(root, "include"), filepath.Join(root, "include", "torch", "csrc", "api", "include")},
			LibDir:   filepath.Join(root, "lib"),
		}
		if _, err := os.Stat(filepath.Join(lt.LibDir, "libtorch_cpu.so")); err != nil {
			return nil, fmt.Errorf("LIBTORCH=%s does not look like a libtorch tree (no lib/libtorch_cpu.so); unset it to use Debian's libtorch-dev, or point it at an unpacked libtorch zip", root)
		}
		_, err := os.Stat(filepath.Join(lt.LibDir, "libtorch_cuda.so"))
		lt.CUDA = err == nil
		return lt.finish()
	}
	multiarch := map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}[runtime.GOARCH]
	lt := &libtorch{
		Kind:     "system",
		Root:     "/usr",
		Includes: []string{"/usr/include", "/usr/include/torch/csrc/api/include"},
		LibDir:   filepath.Join("/usr/lib", multiarch),
	}
	if _, err := os.Stat(filepath.Join(lt.LibDir, "libtorch_cpu.so")); err != nil {
		return nil, errors.New("no libtorch found: install Debian's libtorch-dev (apt-get install libtorch-dev libopenblas0-pthread), or set LIBTORCH to an unpacked libtorch 2.1 tree")
	}
	return lt.finish()
}

var versionRe = regexp.MustCompile(`#define TORCH_VERSION_(MAJOR|MINOR|PATCH) (\d+)`)

func (lt *libtorch) finish() (*libtorch, error) {
	var vh string
	for _, inc := range lt.Includes {
		p := filepath.Join(inc, "torch", "version.h")
		if b, err := os.ReadFile(p); err == nil {
			vh = string(b)
			break
		}
	}
	if vh == "" {
		return nil, fmt.Errorf("libtorch at %s: torch/version.h not found under %v; is the -dev package complete?", lt.Root, lt.Includes)
	}
	parts := map[string]string{}
	for _, m := range versionRe.FindAllStringSubmatch(vh, -1) {
		parts[m[1]] = m[2]
	}
	lt.Version = parts["MAJOR"] + "." + parts["MINOR"] + "." + parts["PATCH"]
	if lt.Kind == "system" {
		// Debian's headers say 1.13.0 for the 1.13.1 release; the package
		// version is the one users can look up.
		if out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "libtorch-dev").Output(); err == nil {
			if m := regexp.MustCompile(`^(?:\d+:)?(\d+\.\d+\.\d+)`).FindSubmatch(out); m != nil {
				lt.Version = string(m[1])
			}
		}
	}

	// The C++ ABI of the wrappers must match the library's, or std::string
	// arguments fail to link. A library built with the new ABI exports
	// symbols in the std::__cxx11 namespace.
	out, err := exec.Command("nm", "-D", "--defined-only", filepath.Join(lt.LibDir, "libc10.so")).Output()
	if err != nil {
		return nil, fmt.Errorf("read symbols of libc10.so (is binutils installed?): %w", err)
	}
	lt.CXX11ABI = bytes.Contains(out, []byte("__cxx11"))
	return lt, nil
}

// libGo renders libtch/lib.go: the cgo flags for this libtorch.
func (lt *libtorch) libGo() string {
	abi := "0"
	if lt.CXX11ABI {
		abi = "1"
	}
	var inc []string
	for _, d := range lt.Includes {
		inc = append(inc, "-I"+d)
	}
	ld := "-lstdc++ -L" + lt.LibDir + " -ltorch -lc10 -ltorch_cpu"
	if lt.Kind == "tree" {
		ld += " -Wl,-rpath," + lt.LibDir
	}
	if lt.CUDA {
		// --no-as-needed: nothing references torch_cuda directly, but it must
		// be loaded for libtorch to register its CUDA kernels.
		ld += " -Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed"
	}
	return fmt.Sprintf(`package libtch

// Generated by vitbench's internal/gotchprep for libtorch %s (%s at %s).

// #cgo LDFLAGS: %s
// #cgo CFLAGS: -I${SRCDIR} -O3 -Wall -Wno-unused-variable -Wno-deprecated-declarations -Wno-c++11-narrowing -Wno-sign-compare -Wno-unused-function
// #cgo CFLAGS: -D_GLIBCXX_USE_CXX11_ABI=%s
// #cgo CXXFLAGS: -std=c++17 -I${SRCDIR} -O2 %s
import "C"
`, lt.Version, lt.Kind, lt.Root, ld, abi, strings.Join(inc, " "))
}

func (lt *libtorch) cxxFlags(libtch string) []string {
	abi := "0"
	if lt.CXX11ABI {
		abi = "1"
	}
	args := []string{"-std=c++17", "-fsyntax-only", "-fmax-errors=0", "-w", "-I" + libtch, "-D_GLIBCXX_USE_CXX11_ABI=" + abi}
	for _, d := range lt.Includes {
		args = append(args, "-I"+d)
	}
	return args
}

func stampKey(lt *libtorch, gotchVersion string) string {
	h := sha256.New()
	fmt.Fprintln(h, prepVersion, gotchVersion, lt.Kind, lt.Root, lt.LibDir, lt.Version, lt.CXX11ABI, lt.CUDA)
	if fi, err := os.Stat(filepath.Join(lt.LibDir, "libtorch_cpu.so")); err == nil {
		fmt.Fprintln(h, fi.Size(), fi.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil))
}

// gotchSource returns the module cache directory of the gotch version that
// go.mod requires, downloading it if needed.
func gotchSource() (dir, version string, err error) {
	// GOWORK=off: the go.work this program writes replaces gotch, and
	// then the module cache copy is not reported.
	cmd := exec.Command("go", "mod", "download", "-json", gotchModule)
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", "", fmt.Errorf("go mod download %s: %v\n%s", gotchModule, err, ee.Stderr)
		}
		return "", "", fmt.Errorf("go mod download %s: %w", gotchModule, err)
	}
	dir = jsonField(out, "Dir")
	version = jsonField(out, "Version")
	if dir == "" || version == "" {
		return "", "", fmt.Errorf("go mod download %s: no Dir/Version in %s", gotchModule, out)
	}
	return dir, version, nil
}

func jsonField(b []byte, name string) string {
	re := regexp.MustCompile(`"` + name + `":\s*"([^"]*)"`)
	if m := re.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

func writeWork(path, dst, version string) error {
	if path == "" {
		return nil
	}
	content := fmt.Sprintf("// Generated by vitbench's set-up (internal/gotchprep); git-ignored.\ngo %s\n\nuse .\n\nreplace %s %s => ./%s\n",
		goVersion(), gotchModule, version, filepath.ToSlash(filepath.Clean(dst)))
	if b, err := os.ReadFile(path); err == nil && string(b) == content {
		return nil
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

// goVersion is the go directive of go.mod, so go.work never asks for a
// newer toolchain than the module does.
func goVersion() string {
	b, err := os.ReadFile("go.mod")
	if err == nil {
		if m := regexp.MustCompile(`(?m)^go (\S+)`).FindSubmatch(b); m != nil {
			return string(m[1])
		}
	}
	return strings.TrimPrefix(runtime.Version(), "go")
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			// The module's examples are separate programs that need
			// ops we may stub; the build copy needs none of them.
			if rel == "example" || rel == "gen" {
				return filepath.SkipDir
			}
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

// panicInsteadOfExit rewrites gotch's log.Fatal* calls (every Must* op
// wrapper ends in one) to log.Panic*, which prints the same message and
// then panics. A runner can recover a panic and record the experiment as
// failed; it cannot recover an os.Exit.
func panicInsteadOfExit(root string) (int, error) {
	count := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n := bytes.Count(b, []byte("log.Fatal"))
		if n == 0 {
			return nil
		}
		count += n
		return os.WriteFile(p, bytes.ReplaceAll(b, []byte("log.Fatal"), []byte("log.Panic")), 0o644)
	})
	return count, err
}

// fix is an exact source replacement in the build copy.
type fix struct {
	file, why, old, new string
	count               int // occurrences expected; 0 means exactly one
}

// fixes are upstream bugs that break correctness here; each must apply
// exactly once, so a gotch upgrade that changes the code fails loudly.
var fixes = []fix{{
	file: "ts/tensor.go",
	why: "libtorch's grad mode is per OS thread and goroutines move between threads: " +
		"pin the goroutine while grad is off, and restore the previous mode rather than " +
		"forcing it on, or a thread is left with autograd off at random",
	old: `func NoGrad(fn func()) {
	// Switch off Grad
	MustGradSetEnabled(false)

	fn()

	// Switch on Grad
	MustGradSetEnabled(true)
}`,
	new: `func NoGrad(fn func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	prev := MustGradSetEnabled(false)
	defer MustGradSetEnabled(prev)
	fn()
}`,
}, {
	file: "libtch/tensor.go",
	why: "the C int result was read as an 8-byte Go int, so GradSetEnabled never " +
		"reported the previous grad mode correctly",
	old: `	cbool := *(*C.int)(unsafe.Pointer(&b))
	cretVal := C.at_grad_set_enabled(cbool)
	return *(*int)(unsafe.Pointer(&cretVal))`,
	new: `	return int(C.at_grad_set_enabled(C.int(b)))`,
}, {
	file: "ts/tensor.go",
	why: "every tensor wrapper carried a zeroed 100 KB Go ballast so that the garbage " +
		"collector would run often enough to finalize forgotten tensors; vitbench frees " +
		"its tensors itself, and the ballast cost 30 MB of zeroing and a collection " +
		"every few dozen ops (deit_tiny at batch 1: 44-52 ms a pass with it, 34 ms without)",
	old: "\tx.d = new(bigStruct)\n",
	new: "",
}, {
	file: "ts/tensor.go",
	why: "every new tensor formatted a unique name and entered it in a global map under " +
		"a lock, and every free looked it up and deleted it again: a few microseconds of " +
		"bookkeeping per op, used only for a debug report; a live-tensor counter keeps " +
		"what vitbench's leak tests read",
	old: `	lock.Lock()
	atomic.AddInt64(&TensorCount, 1)
	if gotch.Debug {
		nbytes := x.nbytes()
		atomic.AddInt64(&AllocatedMem, nbytes)

		log.Printf("INFO: Added tensor %q - Allocated memory: %d bytes.\n", x.name, nbytes)
	}
	name := newName(nameOpt...)
	if _, ok := ExistingTensors[name]; ok {
		name = fmt.Sprintf("%s_%09d", name, TensorCount)
	}
	ExistingTensors[name] = struct{}{}
	lock.Unlock()

	x.name = name
`,
	new: `	atomic.AddInt64(&TensorCount, 1)
	atomic.AddInt64(&LiveTensors, 1)
	if len(nameOpt) > 0 {
		x.name = nameOpt[0]
	}
`,
}, {
	file: "ts/tensor.go",
	why:  "the free side of the name registry removed above",
	old: `// free releases C allocated memory.
func freeCTensor(ts *Tensor) error {
	if ts == nil || ts.ctensor == nil {
		return nil
	}

	lock.Lock()
	defer lock.Unlock()

	if _, ok := ExistingTensors[ts.name]; !ok {
		log.Printf("WARNING: Probably double free tensor %q. Called from %q. Just skipping...\n", ts.name, ts.calledFrom)

		return nil
	}
`,
	new: `// LiveTensors counts the tensors created and not yet freed (added by
// vitbench's build copy in place of the name registry).
var LiveTensors int64

// free releases C allocated memory.
func freeCTensor(ts *Tensor) error {
	if ts == nil || ts.ctensor == nil {
		return nil
	}
`,
}, {
	file: "ts/tensor.go",
	why:  "the free side of the name registry removed above",
	old: `	delete(ExistingTensors, ts.name)
`,
	new: `	atomic.AddInt64(&LiveTensors, -1)
`,
}, {
	file: "ts/tensor.go",
	why: "Float64Values never freed its float64 copy (the drop is commented out " +
		"upstream); on a training loss the copy is part of the autograd graph, so it " +
		"kept every saved activation of the step alive until a garbage collection " +
		"happened to finalize it (with the ballast above gone, a suite grew to 11 GB " +
		"in a minute)",
	old: "\tfloat64Ts.MustCopyData(vec, numel)\n\t// float64Ts.MustDrop()\n",
	new: "\tfloat64Ts.MustCopyData(vec, numel)\n\tfloat64Ts.MustDrop()\n",
}, {
	file: "ts/tensor-generated.go",
	why: "in-place ops (Mul_, Add_, ...) swapped in the new C handle libtorch returns " +
		"and never deleted the old one, which holds a reference to the same storage: a " +
		"temporary changed in place was never freed at all, and a long-lived one leaked a " +
		"handle per call",
	old:   "  ts.ctensor = *ptr\n",
	new:   "  lib.AtFree(ts.ctensor)\n  ts.ctensor = *ptr\n",
	count: 260,
}, {
	file: "ts/tensor-generated.go",
	why: "every op's result slot was C.malloc(0) and never freed: one small C allocation " +
		"leaked per op call, so resident memory grew without bound over long runs; a Go " +
		"allocation holds the C tensor pointer just as well and is collected",
	old:   `ptr := (*lib.Ctensor)(unsafe.Pointer(C.malloc(0)))`,
	new:   `ptr := new(lib.Ctensor)`,
	count: 2221,
}, {
	file: "ts/tensor-generated.go",
	why: "ops with several results had the C side write them into a C.malloc(0) block " +
		"(past its end, and never freed); give them room for eight results in Go memory",
	old:   `ctensorPtr0 := (*lib.Ctensor)(unsafe.Pointer(C.malloc(0)))`,
	new:   `ctensorPtr0 := &new([8]lib.Ctensor)[0]`,
	count: 226,
}, {
	file: "ts/patch.go",
	why:  "the array of results atg_unbind mallocs was never freed",
	old: `	ctensorsPtr := lib.AtgUnbind(ts.ctensor, dim)
	if err = TorchErr(); err != nil {
		return retVal, err
	}
`,
	new: `	ctensorsPtr := lib.AtgUnbind(ts.ctensor, dim)
	if err = TorchErr(); err != nil {
		return retVal, err
	}
	defer C.free(unsafe.Pointer(ctensorsPtr))
`,
}, {
	file: "ts/patch.go",
	why:  "the array of results atg_split mallocs was never freed",
	old: `	ctensorsPtr := lib.AtgSplit(ts.ctensor, splitSize, dim)
	if err = TorchErr(); err != nil {
		return retVal, err
	}
`,
	new: `	ctensorsPtr := lib.AtgSplit(ts.ctensor, splitSize, dim)
	if err = TorchErr(); err != nil {
		return retVal, err
	}
	defer C.free(unsafe.Pointer(ctensorsPtr))
`,
}, {
	file: "ts/patch.go",
	why:  "the array of results atg_split_with_sizes mallocs was never freed",
	old: `	ctensorsPtr := lib.AtgSplitWithSizes(ts.ctensor, splitSizes, len(splitSizes), dim)
	if err = TorchErr(); err != nil {
		return retVal, err
	}
`,
	new: `	ctensorsPtr := lib.AtgSplitWithSizes(ts.ctensor, splitSizes, len(splitSizes), dim)
	if err = TorchErr(); err != nil {
		return retVal, err
	}
	defer C.free(unsafe.Pointer(ctensorsPtr))
`,
}}

func applyFixes(root string) error {
	for _, f := range fixes {
		p := filepath.Join(root, f.file)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		want := max(f.count, 1)
		if n := bytes.Count(b, []byte(f.old)); n != want {
			return fmt.Errorf("fix for %s (%s): expected the original code %d times, found it %d times", f.file, f.why, want, n)
		}
		if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte(f.old), []byte(f.new)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

var errLineRe = regexp.MustCompile(`^(.*?):(\d+):\d+: error: (.*)$`)

// stubMissingOps compiles the wrapper translation unit and stubs every
// top-level function the compiler rejects, repeating until it compiles.
func stubMissingOps(w io.Writer, libtch string, lt *libtorch) ([]string, error) {
	var stubbed []string
	for pass := 1; pass <= 4; pass++ {
		args := append(lt.cxxFlags(libtch), filepath.Join(libtch, "torch_api.cpp"))
		cmd := exec.Command("g++", args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		fmt.Fprintf(w, "pass %d: compiling the op wrappers to find the ops libtorch %s lacks (about a minute)\n", pass, lt.Version)
		err := cmd.Run()
		if err == nil {
			sort.Strings(stubbed)
			return stubbed, nil
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return nil, fmt.Errorf("run g++ (install build-essential): %w", err)
		}
		bad := map[string]map[int]bool{} // file -> error lines
		sc := bufio.NewScanner(&stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var other []string
		for sc.Scan() {
			m := errLineRe.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			file := m[1]
			if !strings.HasPrefix(filepath.Base(file), "torch_api") {
				other = append(other, sc.Text())
				continue
			}
			n, _ := strconv.Atoi(m[2])
			if bad[file] == nil {
				bad[file] = map[int]bool{}
			}
			bad[file][n] = true
		}
		if len(bad) == 0 {
			return nil, fmt.Errorf("the op wrappers do not compile against libtorch %s, and not because of missing ops:\n%s", lt.Version, firstLines(stderr.String(), other, 30))
		}
		for file, lines := range bad {
			names, err := stubFunctions(file, lines, lt.Version)
			if err != nil {
				return nil, err
			}
			stubbed = append(stubbed, names...)
		}
	}
	return nil, errors.New("op wrappers still do not compile after 4 passes of stubbing")
}

func firstLines(all string, errs []string, n int) string {
	if len(errs) == 0 {
		errs = strings.Split(all, "\n")
	}
	if len(errs) > n {
		errs = errs[:n]
	}
	return strings.Join(errs, "\n")
}

var (
	funcStartRe = regexp.MustCompile(`^([A-Za-z_][\w\s\*]*?)\b(\w+)\(.*\{\s*$`)
	opCallRe    = regexp.MustCompile(`(?:torch::|->|\.)(\w+)\(`)
)

// stubFunctions replaces each top-level function of file that contains one
// of the error lines by a stub raising a clear error.
func stubFunctions(file string, errLines map[int]bool, version string) ([]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(string(b), "\n")
	type span struct {
		start, end int // 0-based, inclusive
		ret, name  string
	}
	var spans []span
	for i := 0; i < len(lines); i++ {
		m := funcStartRe.FindStringSubmatch(lines[i])
		if m == nil || strings.HasPrefix(lines[i], " ") || strings.HasPrefix(lines[i], "\t") {
			continue
		}
		j := i + 1
		for j < len(lines) && lines[j] != "}" {
			j++
		}
		if j == len(lines) {
			break
		}
		spans = append(spans, span{i, j, strings.TrimSpace(m[1]), m[2]})
		i = j
	}
	var names []string
	replaced := map[int]span{}
	for n := range errLines {
		idx := n - 1
		found := false
		for _, s := range spans {
			if idx >= s.start && idx <= s.end {
				replaced[s.start] = s
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("%s:%d: compile error outside any function; cannot stub it", file, n)
		}
	}
	var out []string
	for i := 0; i < len(lines); i++ {
		s, ok := replaced[i]
		if !ok {
			out = append(out, lines[i])
			continue
		}
		op := strings.TrimPrefix(s.name, "atg_")
		for _, l := range lines[s.start+1 : s.end] {
			if m := opCallRe.FindStringSubmatch(l); m != nil && m[1] != "Tensor" {
				op = m[1]
				break
			}
		}
		msg := fmt.Sprintf("op %s (wrapper %s) is not available in libtorch %s: it needs a newer libtorch (gotch v0.9.1 targets 2.1)", op, s.name, version)
		out = append(out, lines[s.start])
		out = append(out, "  // Stubbed by vitbench's gotchprep: this libtorch lacks the op.")
		out = append(out, fmt.Sprintf("  torch_last_err = strdup(%s);", strconv.Quote(msg)))
		if s.ret != "void" {
			out = append(out, "  return {};")
		}
		out = append(out, "}")
		names = append(names, s.name+" ("+op+")")
		i = s.end
	}
	return names, os.WriteFile(file, []byte(strings.Join(out, "\n")), 0o644)
}
