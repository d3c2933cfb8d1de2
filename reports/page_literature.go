package reports

import (
	"fmt"
	"sort"
	"strings"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"

	"github.com/vitbench/vitbench/harness/metrics"
)

// Labels that tell published from measured points everywhere.
const (
	publishedLabel = "published (ImageNet-1k, authors' numbers)"
	measuredLabel  = "measured"
)

type litSource struct {
	ID        string
	Name      string
	Technique string
	Cite      string
	Notes     string
	Reference string
	Charts    []chartBlock
	NoChart   string
	Table     table
}

type literatureBody struct {
	MACsNote string
	Error    string
	Sources  []litSource
}

// literature writes literature.html: every published source as a table and
// a chart in relative terms, with measured points of the same family in
// the same terms beside them.
func (s *site) literature() error {
	var cs chartSet
	b := literatureBody{MACsNote: macsNote}
	if s.pubErr != nil {
		b.Error = "The published results could not be read: " + s.pubErr.Error()
	}
	for i := range s.pub {
		src := &s.pub[i]
		ls := litSource{ID: "src-" + slug(src.ID), Name: sourceName(src), Technique: src.Technique, Cite: src.Cite, Notes: src.Notes, Table: sourceTable(src)}
		plot, err := plotSource(src, ls.Name)
		if err != nil {
			ls.NoChart = "No chart: " + err.Error() + "."
			b.Sources = append(b.Sources, ls)
			continue
		}
		ls.Reference = plot.Reference
		first := len(cs.list)
		c, notes := literatureChart(plot, s.v.current)
		note := plot.Note
		for _, n := range notes {
			if note != "" {
				note += " "
			}
			note += n
		}
		title := fmt.Sprintf("%s: %s vs %s — hollow circles: %s", ls.Name, plot.YLabel, plot.XLabel, publishedLabel)
		if plot.Relative && plot.measured != nil {
			title += "; filled diamonds: measured (this harness: machine, data set)"
		}
		if plot.DiscreteX && len(plot.Series) > 1 {
			note = strings.TrimSpace(note + " Published methods are spread sideways around each bit width so they do not overlap.")
		}
		if err := cs.add(title, note, 420, c); err != nil {
			return fmt.Errorf("literature %s: %w", src.ID, err)
		}
		ls.Charts = cs.list[first:]
		b.Sources = append(b.Sources, ls)
	}
	return s.page("literature.html", "literature", "Literature: published results beside measured ones", nil, cs.list, b)
}

func sourceTable(src *source) table {
	t := table{Empty: "The source has no rows."}
	for _, c := range src.Columns {
		t.Head = append(t.Head, headCell{Text: c})
	}
	for _, row := range src.Rows {
		var cells []cell
		for _, c := range row {
			cl := cell{Text: cellText(c)}
			if _, ok := num(c); ok {
				cl.Class = "num"
			}
			cells = append(cells, cl)
		}
		t.Rows = append(t.Rows, cells)
	}
	return t
}

// literatureChart draws a source's published points (hollow) and, where
// the plot has relative terms, the measured points of its family (filled
// diamonds), one series per (machine, data set).
func literatureChart(p *litPlot, rows []*row) (*charts.Scatter, []string) {
	c := charts.NewScatter()
	c.SetGlobalOptions(commonOpts()...)
	c.SetGlobalOptions(plotGrid())
	c.SetGlobalOptions(
		charts.WithXAxisOpts(valueAxis(p.XLabel, true)),
		charts.WithYAxisOpts(valueYAxis(p.YLabel, true)),
	)
	palette := []string{"#7c3aed", "#db2777", "#2563eb", "#0891b2", "#ca8a04", "#9333ea", "#be123c", "#4f46e5"}
	for i, ser := range p.Series {
		// On a few discrete x values (bit widths) the methods' points are
		// spread sideways so they do not hide each other; tooltips give
		// the exact values.
		offset := 0.0
		if p.DiscreteX && len(p.Series) > 1 {
			offset = (float64(i) - float64(len(p.Series)-1)/2) * 0.12
		}
		var items []item
		for _, pt := range ser.Points {
			items = append(items, item{Value: []float64{round(pt.X + offset), round(pt.Y)}, Tip: tip(publishedLabel, ser.Name, pt.Label)})
		}
		color := palette[i%len(palette)]
		c.MultiSeries = append(c.MultiSeries, series("published: "+ser.Name, "scatter", items,
			charts.WithItemStyleOpts(opts.ItemStyle{Color: "#ffffff", BorderColor: color, BorderWidth: 2}),
			func(s *charts.SingleSeries) { s.Symbol = "circle"; s.SymbolSize = 10 }))
	}
	var notes []string
	if !p.Relative || p.measured == nil {
		return c, notes
	}
	measured, missing := measuredSeries(p, rows)
	green := []string{"#047857", "#65a30d", "#0f766e", "#15803d"}
	for i, ms := range measured {
		var items []item
		for _, pt := range ms.Points {
			r := pt.Row
			top1, _ := r.get(metrics.Top1)
			items = append(items, item{
				Value: []float64{round(pt.X), round(pt.Y)},
				Tip: tip(fmt.Sprintf("%s (%s, %s)", measuredLabel, ms.Machine, ms.Dataset), r.exp.Name, "pipeline: "+pipelineText(r),
					fmt.Sprintf("top-1 %s (%s pts vs baseline)", fmtMetric(metrics.Top1, top1, ""), fmtSigned(pt.Y)),
					fmt.Sprintf("%s: %s", p.XLabel, fmtNum(pt.X))),
			})
		}
		c.MultiSeries = append(c.MultiSeries, series(fmt.Sprintf("%s (%s, %s)", measuredLabel, ms.Machine, ms.Dataset), "scatter", items,
			charts.WithItemStyleOpts(opts.ItemStyle{Color: green[i%len(green)]}),
			func(s *charts.SingleSeries) { s.Symbol = "diamond"; s.SymbolSize = 13 }))
	}
	switch {
	case len(measured) == 0 && missing == 0:
		notes = append(notes, fmt.Sprintf("No measured %s experiment yet: only published points are shown.", p.family))
	case missing > 0:
		notes = append(notes, fmt.Sprintf("%d measured %s experiments lack the values for these axes and are not shown.", missing, p.family))
	}
	return c, notes
}

// measuredPoint is a measured experiment on a literature chart.
type measuredPoint struct {
	X, Y float64
	Row  *row
}

// measuredGroup is the measured points of one (machine, data set).
type measuredGroup struct {
	Machine, Dataset string
	Points           []measuredPoint
}

// measuredSeries places the successful experiments of the plot's family
// in its terms, one group per (machine, data set) ordered by data set and
// machine, and counts those that lack a value for either axis.
func measuredSeries(p *litPlot, rows []*row) (groups []measuredGroup, missing int) {
	if p.measured == nil || p.measuredY == nil {
		return nil, 0
	}
	at := map[[2]string]int{}
	for _, r := range rows {
		if r.fam != p.family || !r.ok() {
			continue
		}
		x, ok1 := p.measured(r)
		y, ok2 := p.measuredY(r)
		if !ok1 || !ok2 {
			missing++
			continue
		}
		k := [2]string{machineLabel(r.run), r.exp.Dataset}
		i, ok := at[k]
		if !ok {
			i = len(groups)
			at[k] = i
			groups = append(groups, measuredGroup{Machine: k[0], Dataset: k[1]})
		}
		groups[i].Points = append(groups[i].Points, measuredPoint{X: x, Y: y, Row: r})
	}
	sort.SliceStable(groups, func(i, j int) bool {
		if groups[i].Dataset != groups[j].Dataset {
			return groups[i].Dataset < groups[j].Dataset
		}
		return groups[i].Machine < groups[j].Machine
	})
	return groups, missing
}
