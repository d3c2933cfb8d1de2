package reports

import (
	"fmt"
	"strconv"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/store"
)

type machinesBody struct {
	Fingerprints table
	Single       string
	Notes        []error
	Charts       []chartBlock
	Table        table
}

// machines writes machines.html: every run's machine fingerprint, and the
// same experiments across runs side by side with geomean latency ratios
// against the first run.
func (s *site) machines() error {
	v := s.v
	b := machinesBody{Fingerprints: fingerprintTable(v.runs)}
	switch len(v.runs) {
	case 0:
		b.Single = "No runs recorded."
	case 1:
		b.Single = "One run: to compare machines, run the suite on another machine and render with several databases: bench report --db a.db --db b.db."
	}

	// Experiment names in first-seen order, and each run's rows by name.
	var names []string
	seen := map[string]bool{}
	byRun := map[int64]map[string]*row{}
	for _, r := range v.rows {
		if r.run == nil {
			continue
		}
		if !seen[r.exp.Name] {
			seen[r.exp.Name] = true
			names = append(names, r.exp.Name)
		}
		if byRun[r.run.ID] == nil {
			byRun[r.run.ID] = map[string]*row{}
		}
		byRun[r.run.ID][r.exp.Name] = r
	}

	var cs chartSet
	if len(names) > 0 && len(v.runs) > 0 {
		lat := charts.NewBar()
		sp := charts.NewBar()
		for _, c := range []*charts.Bar{lat, sp} {
			c.SetGlobalOptions(commonOpts()...)
			c.SetGlobalOptions(plotGrid())
			c.SetGlobalOptions(charts.WithXAxisOpts(opts.XAxis{Type: "category", AxisLabel: &opts.AxisLabel{Rotate: 30, Interval: "0"}}))
			c.SetXAxis(names)
		}
		lat.SetGlobalOptions(charts.WithYAxisOpts(valueYAxis("latency p50, batch 1 (ms)", false)))
		sp.SetGlobalOptions(charts.WithYAxisOpts(valueYAxis("speed-up vs its baseline, same run (×)", false)))
		for _, run := range v.runs {
			var li, si []item
			for _, n := range names {
				r := byRun[run.ID][n]
				li = append(li, barItem(r, run, metrics.LatencyP50, func(r *row) (float64, bool) { return r.get(metrics.LatencyP50) }, 1e3, " ms"))
				si = append(si, barItem(r, run, metrics.Speedup, (*row).speedup, 1, "×"))
			}
			lat.MultiSeries = append(lat.MultiSeries, series(runLabel(run), "bar", li))
			sp.MultiSeries = append(sp.MultiSeries, series(runLabel(run), "bar", si))
		}
		if err := cs.add("Latency p50 at batch 1 per run", "Missing bars: the experiment did not run, failed, or has no latency in that run.", 440, lat); err != nil {
			return fmt.Errorf("machines: %w", err)
		}
		if err := cs.add("Measured speed-up over each run's own baseline", "A speed-up is relative to the baseline measured on the same machine, so machines compare fairly.", 440, sp); err != nil {
			return fmt.Errorf("machines: %w", err)
		}
	}
	b.Charts = cs.list
	b.Table, b.Notes = sideBySide(v.runs, names, byRun)
	return s.page("machines.html", "machines", "Machines and runs", nil, cs.list, b)
}

func barItem(r *row, run *store.Run, metric string, get func(*row) (float64, bool), scale float64, unit string) item {
	if r == nil || !r.ok() {
		return item{Value: nil}
	}
	v, ok := get(r)
	if !ok {
		return item{Value: nil}
	}
	return item{Value: round(v * scale), Tip: tip(r.exp.Name, "run: "+runLabel(run), "pipeline: "+pipelineText(r), metric+": "+fmtNum(v*scale)+unit)}
}

func fingerprintTable(runs []*store.Run) table {
	t := table{
		Empty: "No runs recorded.",
		Head: []headCell{{Text: "run"}, {Text: "host"}, {Text: "CPU"},
			{Text: "SIMD", Title: "the CPU's vector and matrix instruction flags, which decide the kernels libtorch and oneDNN pick"},
			{Text: "cores", Num: true}, {Text: "threads", Num: true},
			{Text: "engine", Title: "how a timed CPU pass used its threads: split (a share per thread) or eager (libtorch's intra-op pool)"},
			{Text: "int8 engine", Title: "the kernels integer-quantized models executed on; none: they stayed simulated"},
			{Text: "memory (GiB)", Num: true}, {Text: "GPU"}, {Text: "device"}, {Text: "OS"}, {Text: "libtorch"}, {Text: "BLAS"},
			{Text: "sgemm (GFLOP/s)", Num: true, Title: "1024×1024 fp32 matrix multiply through libtorch"}, {Text: "gotch"}, {Text: "Go"}, {Text: "commit"}},
	}
	for _, r := range runs {
		m := r.Machine
		gpu := orMissing(m.GPU, "none")
		if r.CUDA && m.GPU != "" {
			gpu.Text += " (CUDA)"
		}
		mem := cell{Text: "—", Class: "num missing"}
		if m.MemoryBytes > 0 {
			mem = cell{Text: fmtNum(float64(m.MemoryBytes) / (1 << 30)), Class: "num"}
		}
		sg := cell{Text: "—", Class: "num missing", Title: "not measured"}
		if r.SgemmGFLOPS > 0 {
			sg = cell{Text: fmtNum(r.SgemmGFLOPS), Class: "num"}
		}
		t.Rows = append(t.Rows, []cell{
			{Text: fmt.Sprintf("#%d", r.ID), Title: r.UUID},
			orMissing(m.Hostname, "not recorded"),
			orMissing(m.CPU, "not recorded"),
			orMissing(r.SIMD, "not recorded"),
			intCell(m.Cores), intCell(r.Threads), {Text: r.TimedEngine()},
			orMissing(r.Int8Engine, "not recorded"),
			mem, gpu,
			orMissing(r.Device, "not recorded"),
			orMissing(m.OS, "not recorded"),
			orMissing(m.Libtorch, "not recorded"),
			orMissing(m.BLAS, "not recorded"),
			sg,
			orMissing(m.Gotch, "not recorded"),
			orMissing(m.Go, "not recorded"),
			orMissing(shortHash(r.GitCommit), "not recorded"),
		})
	}
	return t
}

func intCell(n int) cell {
	if n <= 0 {
		return cell{Text: "—", Class: "num missing"}
	}
	return cell{Text: strconv.Itoa(n), Class: "num"}
}

// sideBySide tabulates p50 latency of each experiment in each run, with the
// geomean of per-experiment latency ratios of every run against the first.
func sideBySide(runs []*store.Run, names []string, byRun map[int64]map[string]*row) (table, []error) {
	t := table{Sortable: true, Empty: "No experiments recorded."}
	if len(runs) == 0 || len(names) == 0 {
		return t, nil
	}
	t.Head = []headCell{{Text: "experiment"}}
	for i, r := range runs {
		t.Head = append(t.Head, headCell{Text: runLabel(r) + ": p50 (ms)", Num: true})
		if i > 0 {
			t.Head = append(t.Head, headCell{Text: "speed vs #" + strconv.FormatInt(runs[0].ID, 10), Num: true, Title: "reference p50 / this p50: above 1 is faster"})
		}
	}
	p50 := func(run *store.Run, name string) (float64, bool) {
		r := byRun[run.ID][name]
		if r == nil || !r.ok() {
			return 0, false
		}
		return r.get(metrics.LatencyP50)
	}
	for _, n := range names {
		cells := []cell{{Text: n, Sort: n, Sortable: true}}
		for i, run := range runs {
			v, ok := p50(run, n)
			if !ok {
				cells = append(cells, cell{Text: "—", Class: "num missing", Sortable: true})
			} else {
				cells = append(cells, cell{Text: fmtNum(v * 1e3), Sort: strconv.FormatFloat(v, 'g', -1, 64), Class: "num", Sortable: true})
			}
			if i == 0 {
				continue
			}
			ref, ok2 := p50(runs[0], n)
			if !ok || !ok2 || v == 0 {
				cells = append(cells, cell{Text: "—", Class: "num missing", Sortable: true})
				continue
			}
			q := ref / v
			cells = append(cells, cell{Text: "×" + fmtNum(q), Sort: strconv.FormatFloat(q, 'g', -1, 64), Class: "num " + deltaClass(metrics.Speedup, q, 1), Sortable: true})
		}
		t.Rows = append(t.Rows, cells)
	}
	var warnings []error
	if len(runs) > 1 {
		foot := []cell{{Text: "geomean vs #" + strconv.FormatInt(runs[0].ID, 10), Title: "geometric mean of per-experiment latency ratios over the experiments both runs measured"}}
		refNames := measured(runs[0], names, p50)
		for i, run := range runs {
			foot = append(foot, cell{})
			if i == 0 {
				continue
			}
			these := measured(run, names, p50)
			if err := setDiff(fmt.Sprintf("latency of %s vs %s", runLabel(run), runLabel(runs[0])), runLabel(runs[0]), runLabel(run), refNames, these); err != nil {
				warnings = append(warnings, err)
			}
			common := intersect(refNames, these)
			g := geomeanOf("latency ratio "+runLabel(run), common, func(k int) (float64, bool) {
				a, ok1 := p50(runs[0], common[k])
				b, ok2 := p50(run, common[k])
				if !ok1 || !ok2 || b == 0 {
					return 0, false
				}
				return a / b, true
			})
			warnings = append(warnings, g.Warnings...)
			foot = append(foot, ratioCell(metrics.Speedup, g, 1))
		}
		t.Foot = [][]cell{foot}
	}
	return t, warnings
}

func measured(run *store.Run, names []string, p50 func(*store.Run, string) (float64, bool)) []string {
	var out []string
	for _, n := range names {
		if _, ok := p50(run, n); ok {
			out = append(out, n)
		}
	}
	return out
}

func intersect(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out []string
	for _, x := range a {
		if in[x] {
			out = append(out, x)
		}
	}
	return out
}
