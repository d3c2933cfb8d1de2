package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/vitbench/vitbench/harness/sysinfo"
)

func init() { commands["env"] = runEnv }

const envUsage = `usage: bench env [--json]

Prints what this machine's measurements depend on: the libtorch and BLAS
the process loaded, the 1024x1024 float32 sgemm speed reached through
gotch, CUDA and GPU, CPU model and SIMD flags, cores, libtorch threads,
memory, OS, and the versions of gotch and Go. Warns loudly when the numbers would be
misleading (reference BLAS, slow sgemm).

Flags:
`

// runEnv implements `bench env`.
func runEnv(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("env", stderr, usageText(envUsage))
	asJSON := fs.Bool("json", false, "print one JSON object: libtorch, gotch, go, blas, sgemm_gflops, cuda, gpu, cpu, cores and threads first, then extra detail and \"warnings\"")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}

	info, err := sysinfo.Collect(ctx, sysinfo.Options{})
	if err != nil {
		return fmt.Errorf("env: %w", err)
	}
	warnings := info.Warnings()
	if *asJSON {
		if err := writeEnvJSON(stdout, info, warnings); err != nil {
			return fmt.Errorf("env: %w", err)
		}
		// Keep the warnings visible when stdout goes to a file or jq.
		for _, w := range warnings {
			fmt.Fprintln(stderr, "bench env: WARNING:", w)
		}
		return nil
	}
	return writeEnvText(stdout, info, warnings)
}

// envJSON is the `bench env --json` object: Info's keys, then warnings
// (always an array, empty when all is well).
type envJSON struct {
	*sysinfo.Info
	// RuntimeEnv is threadEnv as an object: scripts/bench.sh exports it
	// to PyTorch's side so that both run the same kernels and allocator.
	RuntimeEnv map[string]string `json:"runtime_env"`
	Warnings   []string          `json:"warnings"`
}

func writeEnvJSON(w io.Writer, info *sysinfo.Info, warnings []string) error {
	if warnings == nil {
		warnings = []string{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	vars := map[string]string{}
	for _, kv := range threadEnvVars() {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	return enc.Encode(envJSON{info, vars, warnings})
}

// writeEnvText prints info as an aligned block, with any warnings framed
// both before and after it so they cannot be missed.
func writeEnvText(w io.Writer, info *sysinfo.Info, warnings []string) error {
	banner := func() {
		if len(warnings) == 0 {
			return
		}
		rule := strings.Repeat("!", 72)
		fmt.Fprintln(w, rule)
		for _, m := range warnings {
			fmt.Fprintln(w, "!! WARNING:", m)
		}
		fmt.Fprintln(w, rule)
	}
	banner()

	or := func(s, none string) string {
		if s == "" {
			return none
		}
		return s
	}
	paren := func(parts ...string) string {
		var keep []string
		for _, p := range parts {
			if p != "" {
				keep = append(keep, p)
			}
		}
		if len(keep) == 0 {
			return ""
		}
		return " (" + strings.Join(keep, "; ") + ")"
	}
	yesNo := map[bool]string{true: "yes", false: "no"}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("libtorch", or(info.Libtorch, "unknown")+paren(info.LibtorchSource, info.LibtorchPath))
	row("gotch", or(info.Gotch, "unknown"))
	row("go", info.Go)
	row("blas", info.BLAS+paren(info.BLASPath, info.BLASDetail))
	if info.SgemmGFLOPS > 0 {
		row("sgemm", fmt.Sprintf("%.1f GFLOP/s (%dx%d float32 matmul, median)", info.SgemmGFLOPS, info.SgemmSize, info.SgemmSize))
	} else {
		row("sgemm", "not measured")
	}
	row("cuda", yesNo[info.CUDA])
	row("gpu", or(info.GPU, "none"))
	row("cpu", info.CPU)
	row("simd", or(info.SIMD, "unknown"))
	cores := fmt.Sprintf("%d logical", info.Cores)
	if info.PhysicalCores > 0 {
		cores += fmt.Sprintf(", %d physical", info.PhysicalCores)
	}
	row("cores", cores)
	threads := fmt.Sprintf("%d (libtorch intra-op)", info.Threads)
	if info.Threads > 0 && info.Threads < info.Cores {
		threads = fmt.Sprintf("%d (libtorch intra-op, of %d logical CPUs: raise with --threads or OMP_NUM_THREADS)", info.Threads, info.Cores)
	}
	row("threads", threads)
	row("thread env", threadEnv())
	row("memory", fmt.Sprintf("%.1f GiB", float64(info.MemoryBytes)/(1<<30)))
	row("os", info.OS)
	row("hostname", info.Hostname)
	row("git", or(info.GitCommit, "not a git working tree"))
	if err := tw.Flush(); err != nil {
		return err
	}
	banner()
	return nil
}

// threadEnv lists the environment variables that change how libtorch's
// OpenMP pool, the BLAS and malloc behave, as this process sees them
// (bench sets some itself when they are unset; see runtimeEnv).
func threadEnv() string {
	kv := threadEnvVars()
	if len(kv) == 0 {
		return "none set"
	}
	return strings.Join(kv, " ")
}

// threadEnvVars is threadEnv's list as KEY=value strings.
func threadEnvVars() []string {
	var kv []string
	keys := []string{"OMP_NUM_THREADS", "GOMP_SPINCOUNT", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE", blasCoreChoice, "ATEN_CPU_CAPABILITY"}
	for _, r := range runtimeEnv {
		if !slices.Contains(keys, r.key) {
			keys = append(keys, r.key)
		}
	}
	for _, k := range keys {
		if v, ok := os.LookupEnv(k); ok {
			kv = append(kv, k+"="+v)
		}
	}
	return kv
}
