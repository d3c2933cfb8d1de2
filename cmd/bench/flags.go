package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"

	"github.com/vitbench/vitbench/harness/config"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// newFlagSet makes a subcommand's flag set: its errors go to stderr, and
// -h prints usage (the text, then the flags).
func newFlagSet(name string, stderr io.Writer, usage func(w io.Writer)) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		usage(stderr)
		fs.PrintDefaults()
	}
	return fs
}

// usageText is a usage func printing a fixed text.
func usageText(text string) func(io.Writer) {
	return func(w io.Writer) { fmt.Fprint(w, text) }
}

// parseFlags parses a subcommand's flags and refuses positional
// arguments. help reports that -h printed the usage: the command then
// returns nil.
func parseFlags(fs *flag.FlagSet, args []string) (help bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, usageError{fmt.Errorf("%s: %w", fs.Name(), err)}
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return false, usageError{fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return false, nil
}

// setThreads sets libtorch's intra-op threads on the calling OS thread,
// which the caller has locked: n, or every logical CPU for 0. It returns
// the count set.
func setThreads(n int) int {
	if n == 0 {
		n = runtime.NumCPU()
	}
	torchrt.SetNumThreads(n)
	return n
}

// readSuite reads and checks a suite file, architectures against the
// registry and, when memory is above 0, training batches against it.
func readSuite(path string, memory int64) (*config.Suite, error) {
	return config.ReadFile(path, config.Options{CheckArch: func(name string) error {
		_, err := vit.Lookup(name)
		return err
	}, MemoryBytes: memory})
}
