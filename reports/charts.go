package reports

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"strings"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"
	"github.com/go-echarts/go-echarts/v2/types"
)

// EChartsScript is the file name of the ECharts script every page loads
// by relative path; Render copies it from Options.AssetsDir.
const EChartsScript = "echarts.min.js"

// echartsVersion is the ECharts release go-echarts v2.6.7 targets and
// scripts/assets.sh fetches from npm.
const echartsVersion = "5.4.3"

// localAssets is the go-echarts assets host of every chart: the report
// folder itself. Pages are written by this package's templates, which load
// EChartsScript by relative path; the host is set anyway so that no chart
// carries go-echarts' default CDN host.
const localAssets = "./"

// Note: go-echarts marks JavaScript functions inside option strings with a
// "__f__" marker that its templates strip with a regular expression over
// the whole output, so a user string containing the marker could break out
// of its JSON string. Chart options here are encoded with encoding/json
// (which escapes <, > and &), and the few functions are named placeholders
// replaced only where a whole JSON string equals the placeholder: a user
// string cannot produce an unescaped quote, so it cannot become code.
var jsFuncs = map[string]string{
	// fnTip shows a data item's pre-escaped HTML tooltip.
	"tip": "function (p) { return (p.data && p.data.tip) || ''; }",
	// fnLabel shows a data item's label text (canvas text, not HTML).
	"label": "function (p) { return (p.data && p.data.label) || ''; }",
	// whisker draws an item [x, y, xlo, xhi, ylo, yhi] as a 95% interval
	// cross: a vertical bar from ylo to yhi and a horizontal one from
	// xlo to xhi, each with short caps; a bar of zero length is left out.
	"whisker": `function (params, api) {
  var x = api.value(0), y = api.value(1), xl = api.value(2), xh = api.value(3), yl = api.value(4), yh = api.value(5);
  var st = api.style({ stroke: '#6b7280', fill: null, lineWidth: 1 });
  var out = [];
  function seg(a, b) {
    var p = api.coord(a), q = api.coord(b);
    out.push({ type: 'line', shape: { x1: p[0], y1: p[1], x2: q[0], y2: q[1] }, style: st });
  }
  function capV(px, py) { var p = api.coord([px, py]); out.push({ type: 'line', shape: { x1: p[0] - 3, y1: p[1], x2: p[0] + 3, y2: p[1] }, style: st }); }
  function capH(px, py) { var p = api.coord([px, py]); out.push({ type: 'line', shape: { x1: p[0], y1: p[1] - 3, x2: p[0], y2: p[1] + 3 }, style: st }); }
  if (yh > yl) { seg([x, yl], [x, yh]); capV(x, yl); capV(x, yh); }
  if (xh > xl) { seg([xl, y], [xh, y]); capH(xl, y); capH(xh, y); }
  return { type: 'group', children: out };
}`,
}

func jsFunc(name string) types.FuncStr {
	if _, ok := jsFuncs[name]; !ok {
		panic("reports: unknown chart function " + name)
	}
	return types.FuncStr("__vitbench_fn_" + name + "__")
}

// item is one data point of a series. Tip is HTML shown in the tooltip:
// build it with tip(), which escapes every value.
type item struct {
	Name       string          `json:"name,omitempty"`
	Value      interface{}     `json:"value"`
	Tip        string          `json:"tip,omitempty"`
	Label      string          `json:"label,omitempty"`
	Symbol     string          `json:"symbol,omitempty"`
	SymbolSize int             `json:"symbolSize,omitempty"`
	ItemStyle  *opts.ItemStyle `json:"itemStyle,omitempty"`
}

// tip builds tooltip HTML from a bold first line and further lines, all
// escaped.
func tip(title string, lines ...string) string {
	var b strings.Builder
	b.WriteString("<b>")
	b.WriteString(html.EscapeString(title))
	b.WriteString("</b>")
	for _, l := range lines {
		if l == "" {
			continue
		}
		b.WriteString("<br>")
		b.WriteString(html.EscapeString(l))
	}
	return b.String()
}

// chartBlock is one chart on a page.
type chartBlock struct {
	ID     string
	Title  string
	Note   string
	Height int
	Option template.JS
}

// chartSet numbers the charts of one page.
type chartSet struct {
	list []chartBlock
}

type optioner interface {
	Validate()
	JSON() map[string]interface{}
}

// add encodes a chart's option and appends it to the page.
func (s *chartSet) add(title, note string, height int, c optioner) error {
	js, err := optionJS(c)
	if err != nil {
		return fmt.Errorf("chart %q: %w", title, err)
	}
	if height == 0 {
		height = 420
	}
	s.list = append(s.list, chartBlock{
		ID:     fmt.Sprintf("chart-%d", len(s.list)+1),
		Title:  title,
		Note:   note,
		Height: height,
		Option: js,
	})
	return nil
}

// optionJS encodes a go-echarts chart's option as a JavaScript object
// literal safe inside a <script> element.
func optionJS(c optioner) (template.JS, error) {
	c.Validate()
	m := c.JSON()
	m["animation"] = false
	m["backgroundColor"] = "#ffffff"
	b, err := json.Marshal(m) // escapes <, >, &, U+2028 and U+2029
	if err != nil {
		return "", fmt.Errorf("encode chart option: %w", err)
	}
	for name, src := range jsFuncs {
		b = bytes.ReplaceAll(b, []byte(`"__vitbench_fn_`+name+`__"`), []byte(src))
	}
	return template.JS(b), nil
}

// initOpts are the initialization options of every chart.
func initOpts() charts.GlobalOpts {
	return charts.WithInitializationOpts(opts.Initialization{
		AssetsHost: localAssets,
		PageTitle:  "vitbench",
		Width:      "100%",
		Height:     "420px",
		Theme:      "white", // go-echarts' built-in palette; no theme script
	})
}

// commonOpts are the options every chart shares: item tooltips built from
// escaped HTML, a scrollable legend on top, a toolbox to save the image.
func commonOpts() []charts.GlobalOpts {
	return []charts.GlobalOpts{
		initOpts(),
		charts.WithAnimation(false),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "item", Formatter: jsFunc("tip")}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Type: "scroll", Top: "0"}),
		charts.WithToolboxOpts(opts.Toolbox{Show: opts.Bool(true), Right: "8", Feature: &opts.ToolBoxFeature{
			SaveAsImage: &opts.ToolBoxFeatureSaveAsImage{Show: opts.Bool(true), Title: "save as PNG"},
		}}),
	}
}

// withGrid sets a chart's only grid (go-echarts appends grids).
func withGrid(g opts.Grid) charts.GlobalOpts {
	return func(bc *charts.BaseConfiguration) {
		bc.GridList = []opts.Grid{g}
	}
}

// plotGrid is the grid of x-y charts: room for axis names.
func plotGrid() charts.GlobalOpts {
	return withGrid(opts.Grid{Left: "64", Right: "40", Top: "48", Bottom: "56", ContainLabel: opts.Bool(true)})
}

func valueAxis(name string, scale bool) opts.XAxis {
	return opts.XAxis{Type: "value", Name: name, NameLocation: "middle", NameGap: 30, Scale: opts.Bool(scale)}
}

func valueYAxis(name string, scale bool) opts.YAxis {
	return opts.YAxis{Type: "value", Name: name, NameLocation: "middle", NameGap: 48, Scale: opts.Bool(scale)}
}

// series makes a series from items.
func series(name, typ string, data []item, options ...charts.SeriesOpts) charts.SingleSeries {
	s := charts.SingleSeries{Name: name, Type: typ, Data: data}
	s.ConfigureSeriesOpts(options...)
	return s
}

// whiskerSeries draws the 95% intervals of scatter points (items of
// [x, y, xlo, xhi, ylo, yhi] in display units) as error bars under them,
// under one legend entry that hides them all. Add it before the points
// so that it is drawn beneath them.
func whiskerSeries(items []item) charts.SingleSeries {
	return series("95% interval", "custom", items,
		charts.WithCustomChartOpts(opts.CustomChart{RenderItem: jsFunc("whisker")}),
		charts.WithEncodeOpts(opts.Encode{X: []int{0, 2, 3}, Y: []int{1, 4, 5}}),
		charts.WithItemStyleOpts(opts.ItemStyle{Color: "#6b7280"}),
	)
}

// familySeriesOpts styles a scatter series of a family.
func familySeriesOpts(fam string) []charts.SeriesOpts {
	st := familyStyle[fam]
	return []charts.SeriesOpts{
		charts.WithItemStyleOpts(opts.ItemStyle{Color: st.Color}),
		charts.WithSeriesSymbolKeepAspect(true),
		func(s *charts.SingleSeries) {
			s.Symbol = st.Symbol
			s.SymbolSize = 12
			if fam == familyBaseline || fam == familyCombination {
				s.SymbolSize = 16
			}
		},
	}
}
