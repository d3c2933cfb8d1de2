// Package reports renders the results a store holds as a static HTML site
// that opens from disk with no network: the survey's trade-off views
// (accuracy against MACs, parameters, model size and measured latency, with
// the Pareto front), per-technique sweep curves, a combination matrix, a
// sortable summary table with findings computed from the data, one page per
// experiment, runs of several machines side by side, and the published
// ImageNet-1k results of the literature beside the measured ones.
//
// It pairs with harness/store, which supplies the [store.Snapshot] to
// render, and harness/metrics, which names every metric, its normalised
// unit and which direction is better. Values arrive normalised (seconds,
// bytes, percent, counts) and are converted to display units (ms, MiB, G)
// only here, at the edge.
//
// Rendering follows four steps:
//
//  1. index: runs and experiments are joined, each experiment to its run
//     and to the baseline its relative metrics are against (newView);
//  2. select: the latest result of each experiment name forms the current
//     view that trade-offs, sweeps, combinations and findings use; the
//     machines page uses every run;
//  3. derive: relative metrics, Pareto fronts, budgets, findings and
//     geometric means are computed from the data, with warnings (benchstat
//     style, []error) when rows are missing;
//  4. write: html/template pages and go-echarts chart options, with the
//     ECharts script copied next to them from the set-up's asset cache
//     (scripts/assets.sh).
//
// Every string that comes from a suite (experiment, model and data set
// names, pipelines, errors) is escaped: html/template escapes the pages,
// chart options are JSON with <, > and & escaped, and tooltips, which
// ECharts renders as HTML, are built from HTML-escaped text.
//
// Note: the ViT literature's "GFLOPs" are multiply-accumulates (GMACs).
// Every axis and column here says "MACs"; FLOPs would be twice as many.
package reports
