// Command bench runs vitbench suites and inspects their results.
//
//	bench FILE.toml [flags]          same as: bench run FILE.toml
//	bench run FILE.toml [flags]      run a suite, store results, write the report
//	bench report [--db PATH]...      re-render the report; several --db merge machines
//	bench list                       runs, experiments, status
//	bench export --format csv|json   one row per experiment result
//	bench compare [RUN...]           runs side by side: intervals, deltas, p-values
//	bench inspect --arch NAME        parameters, MACs and FLOPs per layer
//	bench latency --arch NAME        measured latency and throughput
//	bench forward --arch NAME ...    logits of a checkpoint for an .npy input
//	bench env                        libtorch, BLAS, sgemm speed, CPU and GPU
//
// Exit status: 0 when everything succeeded, 1 when some experiments failed
// (the rest still ran and were stored), 2 for bad input (nothing ran).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	reexecWithRuntimeEnv()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}

// command is one subcommand: it parses its own flags from args and writes
// to stdout/stderr.
type command func(ctx context.Context, args []string, stdout, stderr io.Writer) error

var commands = map[string]command{}

// Main dispatches to a subcommand. A first argument ending in .toml is a
// suite to run.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return usageError{errors.New("no command")}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return nil
	}
	name, rest := args[0], args[1:]
	if strings.HasSuffix(name, ".toml") {
		name, rest = "run", args
	}
	cmd, ok := commands[name]
	if !ok {
		usage(stderr)
		return usageError{fmt.Errorf("unknown command %q", name)}
	}
	if wantsHelp(rest) {
		stderr = stdout // asked for, the usage is output, not a complaint
	}
	return cmd(ctx, rest, stdout, stderr)
}

// wantsHelp reports whether a subcommand's arguments ask for its usage.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: bench <command> [arguments]

  bench FILE.toml [flags]                  same as: bench run FILE.toml
  bench run FILE.toml [--db PATH] [--report DIR] [--only GLOB] [--device cpu|cuda|auto]
                      [--threads N] [--train-workers N] [--dry-run] [--shard I/N] [--data-dir DIR]
                      [--assets DIR] [--max-experiments N] [--cpuprofile FILE]
  bench report [--db PATH]... [--out DIR] [--assets DIR]
                                           re-render; several --db merge runs from several machines
  bench list   [--db PATH] [--json]        runs, experiments, status
  bench export [--db PATH] --format csv|json
  bench compare [--db PATH]... [RUN...] [--machine HOST]... [--commit PREFIX]... [--metric NAME]... [--json]
                                           benchstat-style: metrics with intervals, deltas, p-values
  bench inspect --arch NAME [--weights FILE] [--num-classes N] [--img-size N] [--json]
  bench latency --arch NAME [--weights FILE] [--batch B] [--threads T] [--engine auto|split|eager]
                [--precision fp32|bf16|fp16|int8|int8-dynamic] [--warmup N] [--iters N] [--device cpu|cuda] [--json]
  bench forward --arch NAME --weights FILE --input X.npy --output Y.npy
  bench env [--json]

Run 'bench <command> -h' for a command's flags.
`)
}

// usageError marks bad input: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// errSomeFailed is returned by run when the suite finished but some
// experiments failed: exit status 1 without a further message.
var errSomeFailed = errors.New("some experiments failed")

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	case errors.Is(err, errSomeFailed):
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	default:
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
}
