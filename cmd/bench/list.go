package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/stats"
	"github.com/vitbench/vitbench/harness/store"
)

func init() { commands["list"] = runList }

const listUsage = `usage: bench list [--db PATH] [--json]

Lists the runs of a results database, oldest first, with their machine,
suite and status, and the experiments of each with top-1, parameters and
p50 latency at batch 1.

`

// runList implements `bench list [--db PATH] [--json]`: the runs of a
// results database, oldest first, each with its experiments.
func runList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("list", stderr, usageText(listUsage))
	dbPath := fset.String("db", store.DefaultPath, "results `database`")
	asJSON := fset.Bool("json", false, `print one JSON object, {"runs": [...]}`)
	if help, err := parseFlags(fset, args); help || err != nil {
		return err
	}
	snap, err := readResults(*dbPath)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeListJSON(stdout, snap)
	}
	return writeListText(stdout, snap)
}

// readResults reads the databases at paths, merged, without creating or
// changing them. A missing file is bad input naming the path.
func readResults(paths ...string) (*store.Snapshot, error) {
	for _, p := range paths {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			return nil, usageError{fmt.Errorf("database %s does not exist (run a suite first, or name one with --db)", p)}
		}
	}
	snap, err := store.OpenSnapshots(paths...)
	if err != nil {
		return nil, err
	}
	return snap, nil
}

// experimentCounts counts the experiments of each run by status.
func experimentCounts(s *store.Snapshot) map[int64]map[string]int {
	n := map[int64]map[string]int{}
	for _, e := range s.Experiments {
		if n[e.RunID] == nil {
			n[e.RunID] = map[string]int{}
		}
		n[e.RunID][e.Status]++
	}
	return n
}

func writeListText(w io.Writer, s *store.Snapshot) error {
	if len(s.Runs) == 0 {
		_, err := fmt.Fprintln(w, "no runs")
		return err
	}
	counts := experimentCounts(s)
	byRun := map[int64][]store.Experiment{}
	for _, e := range s.Experiments {
		byRun[e.RunID] = append(byRun[e.RunID], e)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for i, r := range s.Runs {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		c := counts[r.ID]
		tally := fmt.Sprintf("%d ok / %d failed", c[store.StatusOK], c[store.StatusFailed])
		for _, st := range []string{store.StatusRunning, store.StatusInterrupted} {
			if c[st] > 0 {
				tally += fmt.Sprintf(" / %d %s", c[st], st)
			}
		}
		fmt.Fprintf(tw, "run %s  %s  %s  suite %s  %s  %s\n",
			shortUUID(r.UUID), r.Started.Local().Format("2006-01-02 15:04:05"),
			machineLabel(r), r.SuiteName, r.Status, tally)
		exps := byRun[r.ID]
		if len(exps) == 0 {
			fmt.Fprintln(tw, "  (no experiments)")
			continue
		}
		fmt.Fprintln(tw, "  EXPERIMENT\tSTATUS\tTOP-1 % [95% CI]\tΔ TOP-1 VS BASELINE\tPARAMS\tP50 MS [95% CI]\tNOTE")
		sets := store.Replicas(exps)
		last := map[*store.Experiment]*store.ReplicaSet{}
		for i := range sets {
			last[sets[i].Experiments[len(sets[i].Experiments)-1]] = &sets[i]
		}
		for i := range exps {
			e := exps[i]
			v := metricValues(e)
			top1 := formatInterval(v, metrics.Top1, func(x float64) string { return fmt.Sprintf("%.2f", x) })
			if _, ok := v[metrics.Top1]; !ok && e.Status == store.StatusOK {
				top1 = "timed only"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n",
				e.Name, e.Status, top1,
				formatDelta(v, metrics.Top1Delta, func(x float64) string { return fmt.Sprintf("%+.2f", x) }),
				formatMetric(v, metrics.Params, formatCount),
				formatInterval(v, metrics.LatencyP50, func(x float64) string { return fmt.Sprintf("%.2f", x*1e3) }),
				firstLine(e.Error, 60))
			if set := last[&exps[i]]; set != nil {
				writeMeanRow(tw, set)
			}
		}
	}
	return tw.Flush()
}

// writeMeanRow writes a replica set's means across its seeds, each with
// the half-width of its t interval (symmetric about the mean).
func writeMeanRow(w io.Writer, set *store.ReplicaSet) {
	mean := func(name string, f func(float64) string) string {
		a, ok := set.Metric(name)
		if !ok {
			return "-"
		}
		if half := a.Hi - a.Value; half > 0 && !math.IsInf(half, 0) {
			return f(a.Value) + " ±" + strings.TrimPrefix(f(half), "+")
		}
		return f(a.Value)
	}
	status := store.StatusOK
	if ok := len(set.Seeds); ok < len(set.Experiments) {
		status = fmt.Sprintf("%d/%d ok", ok, len(set.Experiments))
	}
	fmt.Fprintf(w, "  %s (mean of %d seeds)\t%s\t%s\t%s\t%s\t%s\t\n", set.Name, len(set.Seeds), status,
		mean(metrics.Top1, func(x float64) string { return fmt.Sprintf("%.2f", x) }),
		mean(metrics.Top1Delta, func(x float64) string { return fmt.Sprintf("%+.2f", x) }),
		mean(metrics.Params, formatCount),
		mean(metrics.LatencyP50, func(x float64) string { return fmt.Sprintf("%.2f", x*1e3) }))
}

// machineLabel names the machine of r: host, CPU, threads, engine and
// device.
func machineLabel(r store.Run) string {
	m := r.Machine
	parts := []string{m.CPU}
	if m.GPU != "" {
		parts = append(parts, m.GPU)
	}
	parts = append(parts, fmt.Sprintf("%d threads", r.Threads))
	if r.Engine != "" {
		parts = append(parts, r.Engine)
	}
	if r.Device != "" {
		parts = append(parts, r.Device)
	}
	return fmt.Sprintf("%s (%s)", m.Hostname, strings.Join(parts, ", "))
}

func shortUUID(u string) string {
	if len(u) > 8 {
		return u[:8]
	}
	return u
}

func metricValues(e store.Experiment) map[string]float64 {
	v := make(map[string]float64, len(e.Metrics))
	for _, m := range e.Metrics {
		v[m.Name] = m.Value
	}
	return v
}

func formatMetric(v map[string]float64, name string, f func(float64) string) string {
	x, ok := v[name]
	if !ok || math.IsNaN(x) {
		return "-"
	}
	return f(x)
}

// formatInterval writes a metric with its 95% interval when one is
// stored: "70.22 [69.32, 71.11]".
func formatInterval(v map[string]float64, name string, f func(float64) string) string {
	out := formatMetric(v, name, f)
	lo, okLo := v[metrics.Lo(name)]
	hi, okHi := v[metrics.Hi(name)]
	if out == "-" || !okLo || !okHi || math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return out
	}
	return fmt.Sprintf("%s [%s, %s]", out, f(lo), f(hi))
}

// formatDelta writes a difference to the baseline with its interval,
// marked "~" when its test finds no significant difference, as
// benchstat marks one.
func formatDelta(v map[string]float64, name string, f func(float64) string) string {
	out := formatInterval(v, name, f)
	if p, ok := v[metrics.P(name)]; ok && out != "-" && !stats.Significant(p) {
		out += " ~"
	}
	return out
}

// formatCount writes a count with an SI suffix: 5.72M, 86.6K.
func formatCount(x float64) string {
	switch a := math.Abs(x); {
	case a >= 1e9:
		return fmt.Sprintf("%.2fG", x/1e9)
	case a >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case a >= 1e3:
		return fmt.Sprintf("%.1fK", x/1e3)
	default:
		return fmt.Sprintf("%.0f", x)
	}
}

// firstLine returns the first line of s, cut to at most n runes.
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// The JSON form of `bench list --json`.
type (
	listOutput struct {
		Runs []listRun `json:"runs"`
	}
	// listReplicaSet is the seed replicas of one experiment with each
	// metric's mean across the seeds (store.Replicas).
	listReplicaSet struct {
		Name        string              `json:"name"`
		Seeds       []int64             `json:"seeds"`       // of the replicas that succeeded
		Experiments []string            `json:"experiments"` // every replica's name
		Metrics     map[string]listMean `json:"metrics"`
	}
	listMean struct {
		Mean *float64 `json:"mean"`
		Lo   *float64 `json:"lo"` // 95% Student-t interval; null with fewer than 2 values
		Hi   *float64 `json:"hi"`
		N    int      `json:"n"` // replicas with a value
		Unit string   `json:"unit"`
	}
	listRun struct {
		UUID        string           `json:"uuid"`
		Suite       string           `json:"suite"`
		SuitePath   string           `json:"suite_path"`
		SuiteHash   string           `json:"suite_hash"`
		GitCommit   string           `json:"git_commit"`
		Args        []string         `json:"args"`
		Device      string           `json:"device"`
		Started     time.Time        `json:"started"`
		Ended       *time.Time       `json:"ended"` // null while running
		Status      string           `json:"status"`
		Machine     listMachine      `json:"machine"`
		OK          int              `json:"ok"`
		Failed      int              `json:"failed"`
		Experiments []listExperiment `json:"experiments"`
		Replicas    []listReplicaSet `json:"replicas"` // sets of experiments that differ only in their seed
	}
	// listMachine is the machine a run executed on. Threads, engines, CUDA,
	// sgemm speed and SIMD flags are facts of the run (store.Run); they
	// sit in this object, where consumers of the JSON have always found
	// the run's machine facts.
	listMachine struct {
		Fingerprint string   `json:"fingerprint"`
		Hostname    string   `json:"hostname"`
		CPU         string   `json:"cpu"`
		SIMD        string   `json:"simd"` // "" when unknown
		Cores       int      `json:"cores"`
		Threads     int      `json:"threads"`
		Engine      string   `json:"engine"`
		Int8Engine  string   `json:"int8_engine"` // "none" when int8 models stayed simulated; "" when not recorded
		MemoryBytes int64    `json:"memory_bytes"`
		GPU         string   `json:"gpu"`
		CUDA        bool     `json:"cuda"`
		OS          string   `json:"os"`
		Libtorch    string   `json:"libtorch"`
		BLAS        string   `json:"blas"`
		SgemmGFLOPS *float64 `json:"sgemm_gflops"`
		Gotch       string   `json:"gotch"`
		Go          string   `json:"go"`
	}
	listExperiment struct {
		Name       string              `json:"name"`
		Replica    string              `json:"replica"` // the name its seed replicas share
		Seed       *int64              `json:"seed"`    // null when stored before seeds were recorded
		Group      string              `json:"group"`
		Model      string              `json:"model"`
		Dataset    string              `json:"dataset"`
		Baseline   string              `json:"baseline"`
		Families   []string            `json:"families"`
		Pipeline   string              `json:"pipeline"`
		Params     map[string]string   `json:"params"`   // the swept parameters
		Settings   []listSetting       `json:"settings"` // every parameter of every stage, in pipeline order
		Hash       string              `json:"hash"`
		Status     string              `json:"status"`
		Error      string              `json:"error"`
		Executed   string              `json:"executed"`
		ExecDetail string              `json:"exec_detail,omitempty"`
		Quant      *store.Quantization `json:"quant,omitempty"` // every quantized site
		Started    *time.Time          `json:"started"`
		Ended      *time.Time          `json:"ended"`
		Metrics    map[string]*float64 `json:"metrics"` // null when not finite
		Units      map[string]string   `json:"units"`
	}
	listSetting struct {
		Name      string `json:"name"` // flat key, e.g. "quantize.weight_bits"; bench export's column "param:" + name
		Stage     int    `json:"stage"`
		Technique string `json:"technique"`
		Key       string `json:"key"`
		Value     string `json:"value"`
		Swept     bool   `json:"swept"`
	}
)

func writeListJSON(w io.Writer, s *store.Snapshot) error {
	out := listOutput{Runs: []listRun{}}
	counts := experimentCounts(s)
	at := map[int64]int{}
	for _, r := range s.Runs {
		m := r.Machine
		at[r.ID] = len(out.Runs)
		out.Runs = append(out.Runs, listRun{
			UUID: r.UUID, Suite: r.SuiteName, SuitePath: r.SuitePath, SuiteHash: r.SuiteHash,
			GitCommit: r.GitCommit, Args: nonNilStrings(r.Args), Device: r.Device,
			Started: r.Started, Ended: timeOrNil(r.Ended), Status: r.Status,
			Machine: listMachine{
				Fingerprint: store.Fingerprint(m), Hostname: m.Hostname, CPU: m.CPU, SIMD: r.SIMD, Cores: m.Cores,
				Threads: r.Threads, Engine: r.Engine, Int8Engine: r.Int8Engine,
				MemoryBytes: m.MemoryBytes, GPU: m.GPU, CUDA: r.CUDA, OS: m.OS,
				Libtorch: m.Libtorch, BLAS: m.BLAS, SgemmGFLOPS: finiteOrNil(r.SgemmGFLOPS),
				Gotch: m.Gotch, Go: m.Go,
			},
			OK:          counts[r.ID][store.StatusOK],
			Failed:      counts[r.ID][store.StatusFailed],
			Experiments: []listExperiment{},
			Replicas:    []listReplicaSet{},
		})
	}
	for _, e := range s.Experiments {
		i, ok := at[e.RunID]
		if !ok {
			continue
		}
		le := listExperiment{
			Name: e.Name, Replica: e.ReplicaName(), Seed: e.Seed, Group: e.Group, Model: e.Model, Dataset: e.Dataset, Baseline: e.Baseline,
			Families: nonNilStrings(e.Families), Pipeline: e.Pipeline, Params: e.Params, Hash: e.Hash,
			Status: e.Status, Error: e.Error, Executed: e.Executed, ExecDetail: e.ExecDetail, Quant: e.Quant,
			Started: timeOrNil(e.Started), Ended: timeOrNil(e.Ended),
			Settings: []listSetting{},
			Metrics:  map[string]*float64{}, Units: map[string]string{},
		}
		if le.Params == nil {
			le.Params = map[string]string{}
		}
		for _, st := range e.Settings {
			le.Settings = append(le.Settings, listSetting(st))
		}
		for _, m := range e.Metrics {
			le.Metrics[m.Name] = finiteOrNil(m.Value)
			le.Units[m.Name] = m.Unit
		}
		out.Runs[i].Experiments = append(out.Runs[i].Experiments, le)
	}
	for _, set := range store.Replicas(s.Experiments) {
		i, ok := at[set.RunID]
		if !ok {
			continue
		}
		ls := listReplicaSet{Name: set.Name, Seeds: set.Seeds, Metrics: map[string]listMean{}}
		if ls.Seeds == nil {
			ls.Seeds = []int64{}
		}
		for _, e := range set.Experiments {
			ls.Experiments = append(ls.Experiments, e.Name)
		}
		for _, a := range set.Metrics {
			ls.Metrics[a.Name] = listMean{Mean: finiteOrNil(a.Value), Lo: finiteOrNil(a.Lo), Hi: finiteOrNil(a.Hi), N: a.N, Unit: a.Unit}
		}
		out.Runs[i].Replicas = append(out.Runs[i].Replicas, ls)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	return nil
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func finiteOrNil(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
