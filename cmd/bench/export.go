package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/vitbench/vitbench/harness/store"
)

func init() { commands["export"] = runExport }

// exportDBs is the repeatable --db flag of export.
type exportDBs []string

func (d *exportDBs) String() string { return strings.Join(*d, ",") }
func (d *exportDBs) Set(v string) error {
	*d = append(*d, v)
	return nil
}

const exportUsage = `usage: bench export [--db PATH]... --format csv|json [--out FILE]

Writes one row per experiment: the run (uuid, suite, start), its machine
(hostname, cpu, cores, gpu, libtorch, blas, threads, device), the experiment
(name, group, model, dataset, baseline, pipeline, families, status,
executed, error), then one column per stage parameter of any experiment,
defaults included ("param:quantize.weight_bits"; "param:quantize#2.KEY"
for a pipeline's second quantize stage), then one column per metric in
normalised units (seconds, bytes, percent, counts). CSV leaves a missing
value empty; JSON is an array of objects with the same keys, parameters
as strings or null, metrics as numbers or null.

`

// runExport implements `bench export [--db PATH]... --format csv|json
// [--out FILE]`: one row per experiment result, with the run's machine, for
// pandas or a spreadsheet.
func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("export", stderr, usageText(exportUsage))
	var dbs exportDBs
	fset.Var(&dbs, "db", "results `database`; repeat to merge the databases of several machines (default "+store.DefaultPath+")")
	format := fset.String("format", "", "output `format`: csv or json (required)")
	out := fset.String("out", "", "write to `FILE` instead of standard output")
	if help, err := parseFlags(fset, args); help || err != nil {
		return err
	}
	var write func(io.Writer, *store.Snapshot) error
	switch *format {
	case "csv":
		write = store.WriteCSV
	case "json":
		write = store.WriteJSON
	case "":
		return usageError{errors.New("export: --format csv|json is required")}
	default:
		return usageError{fmt.Errorf("export: unknown --format %q (want csv or json)", *format)}
	}
	if len(dbs) == 0 {
		dbs = exportDBs{store.DefaultPath}
	}
	snap, err := readResults(dbs...)
	if err != nil {
		return err
	}
	if *out == "" {
		return write(stdout, snap)
	}
	return writeFileAtomic(*out, func(w io.Writer) error { return write(w, snap) })
}

// writeFileAtomic writes path through a temporary file renamed into place,
// so that a failed export leaves no partial file.
func writeFileAtomic(path string, fill func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := fill(f); err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	return nil
}
