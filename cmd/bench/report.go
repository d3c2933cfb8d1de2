package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/vitbench/vitbench/harness/store"
	"github.com/vitbench/vitbench/reports"
)

func init() { commands["report"] = runReport }

const reportUsage = `usage: bench report [--db PATH]... [--out DIR] [--assets DIR]

Renders the results databases as a static HTML site that opens from disk
with no network: an overview with findings and a sortable summary,
trade-off views with Pareto fronts, sweeps, a combination matrix, one page
per experiment, machines side by side and the published literature.
Several --db merge the runs of several machines.

`

// runReport implements `bench report [--db PATH]... [--out DIR]`: it reads
// one or more results databases read-only, merges their runs (several
// machines side by side) and writes the HTML report, then prints the path
// of its index page.
func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("report", stderr, usageText(reportUsage))
	var dbs dbPathsFlag
	fset.Var(&dbs, "db", "results `database`; repeat to merge the runs of several machines (default "+store.DefaultPath+")")
	out := fset.String("out", reportOutDefault, "report `folder`")
	assets := fset.String("assets", reports.DefaultAssetsDir, "`folder` holding "+reports.EChartsScript+" (filled by scripts/assets.sh)")
	if help, err := parseFlags(fset, args); help || err != nil {
		return err
	}
	if *out == "" {
		return usageError{errors.New("report: --out is empty")}
	}
	if len(dbs) == 0 {
		dbs = dbPathsFlag{store.DefaultPath}
	}
	snap, err := readResults(dbs...)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := reports.Render(snap, reports.Options{OutDir: *out, AssetsDir: *assets}); err != nil {
		return err
	}
	fmt.Fprintln(stdout, filepath.Join(*out, reports.IndexPage))
	return nil
}

// reportOutDefault is where the report goes unless told otherwise.
const reportOutDefault = "results/report"

// dbPathsFlag is a repeatable path flag.
type dbPathsFlag []string

func (p *dbPathsFlag) String() string { return strings.Join(*p, ",") }

func (p *dbPathsFlag) Set(v string) error {
	if v == "" {
		return errors.New("empty path")
	}
	*p = append(*p, v)
	return nil
}
