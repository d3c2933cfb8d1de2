package reports

import (
	"bytes"
	_ "embed"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// publishedTOML holds published ImageNet-1k results of ViT compression
// methods with their citations (authors' numbers).
//
//go:embed published.toml
var publishedTOML []byte

// source is one publication's table: columns and rows as its authors
// report them. Cells are strings or numbers.
type source struct {
	ID        string          `toml:"id"`
	Name      string          `toml:"name"` // short name for headings; optional
	Cite      string          `toml:"cite"`
	Technique string          `toml:"technique"` // quantization, distillation, pruning, low-rank
	Notes     string          `toml:"notes"`
	Columns   []string        `toml:"columns"`
	Rows      [][]interface{} `toml:"rows"`
}

// published returns the published results embedded in the package.
func published() ([]source, error) {
	return parsePublished(bytes.NewReader(publishedTOML))
}

// parsePublished reads published results in the layout of
// reports/published.toml: [[source]] tables with id, cite, technique,
// columns and rows. Every row must have one cell per column, and every
// cell must be a string or a number.
func parsePublished(r io.Reader) ([]source, error) {
	var doc struct {
		Source []source `toml:"source"`
	}
	md, err := toml.NewDecoder(r).Decode(&doc)
	if err != nil {
		return nil, fmt.Errorf("parse published results: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("parse published results: unknown key %s", und[0])
	}
	seen := map[string]bool{}
	for i, s := range doc.Source {
		where := fmt.Sprintf("source[%d]", i)
		if s.ID != "" {
			where = fmt.Sprintf("source %q", s.ID)
		}
		switch {
		case s.ID == "":
			return nil, fmt.Errorf("parse published results: %s: missing id", where)
		case seen[s.ID]:
			return nil, fmt.Errorf("parse published results: %s: duplicate id", where)
		case s.Cite == "":
			return nil, fmt.Errorf("parse published results: %s: missing cite", where)
		case len(s.Columns) == 0:
			return nil, fmt.Errorf("parse published results: %s: no columns", where)
		}
		seen[s.ID] = true
		for j, row := range s.Rows {
			if len(row) != len(s.Columns) {
				return nil, fmt.Errorf("parse published results: %s: row %d has %d cells, want %d (columns %s)",
					where, j+1, len(row), len(s.Columns), strings.Join(s.Columns, ", "))
			}
			for k, c := range row {
				switch c.(type) {
				case string, int64, float64:
				default:
					return nil, fmt.Errorf("parse published results: %s: row %d column %q: %T is neither a string nor a number", where, j+1, s.Columns[k], c)
				}
			}
		}
	}
	return doc.Source, nil
}

func (s *source) col(name string) int {
	for i, c := range s.Columns {
		if c == name {
			return i
		}
	}
	return -1
}

// num returns a numeric cell.
func num(c interface{}) (float64, bool) {
	switch v := c.(type) {
	case int64:
		return float64(v), true
	case float64:
		return v, !math.IsNaN(v)
	}
	return 0, false
}

func cellText(c interface{}) string {
	switch v := c.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return fmt.Sprint(c)
}

// litPoint is one published result in relative terms.
type litPoint struct {
	X, Y  float64
	Label string
}

// litSeries is a method's points.
type litSeries struct {
	Name   string
	Points []litPoint
}

// litPlot is a source's results as a chart: relative where the source has
// its own reference, absolute otherwise (and said so).
type litPlot struct {
	XLabel, YLabel string
	Relative       bool
	DiscreteX      bool   // x takes a few values (bit widths): spread series sideways
	Reference      string // what the relative values are against
	Series         []litSeries
	Note           string
	// measured reads the same x from a measured row of family; nil when the
	// plot has no measured counterpart.
	family   string
	measured func(r *row) (float64, bool)
	// measuredY reads y (Δ top-1 when Relative).
	measuredY func(r *row) (float64, bool)
}

var quantColumn = regexp.MustCompile(`^(?:(.+)_)?w(\d+)a(\d+)$`)

// plotSource interprets a source's layout. It recognises the layouts of
// reports/published.toml; an unknown layout gives a table and no chart.
func plotSource(s *source, methodName string) (*litPlot, error) {
	switch {
	case s.col("fp32") >= 0:
		return plotQuantWide(s, 0, methodName)
	case s.col("w") >= 0 && s.col("a") >= 0:
		return plotQuantLong(s)
	case s.col("top1") >= 0 && pairedColumns(s) != "":
		return plotPaired(s, pairedColumns(s))
	case s.col("flops_ratio") >= 0 && s.col("top1") >= 0:
		return plotRatio(s)
	case s.Technique == "distillation" && s.col("top1") >= 0 && s.col("params_m") >= 0:
		return plotDistill(s, methodName)
	case s.col("top1") >= 0 && s.col("gflops") >= 0:
		return plotAbsolute(s)
	}
	return nil, fmt.Errorf("source %q: no chart for columns %s", s.ID, strings.Join(s.Columns, ", "))
}

// plotQuantWide: one row per model, a full-precision column "fp32" and one
// column per method and bit width ("base_w8a8", "w4a4").
func plotQuantWide(s *source, label int, methodName string) (*litPlot, error) {
	fp := s.col("fp32")
	p := &litPlot{
		XLabel: "weight bits (W = A)", YLabel: "Δ top-1 vs fp32 (pts)", Relative: true, DiscreteX: true,
		Reference: "each model's fp32 top-1 in the same table",
		family:    familyQuantize, measured: weightBits, measuredY: (*row).top1Delta,
	}
	bySeries := map[string]*litSeries{}
	var order []string
	for ci, c := range s.Columns {
		m := quantColumn.FindStringSubmatch(c)
		if m == nil {
			continue
		}
		w, _ := strconv.Atoi(m[2])
		a, _ := strconv.Atoi(m[3])
		name := methodLabel(m[1], methodName)
		if w != a {
			name += fmt.Sprintf(" (W%d/A%d)", w, a)
		}
		if bySeries[name] == nil {
			bySeries[name] = &litSeries{Name: name}
			order = append(order, name)
		}
		for _, row := range s.Rows {
			base, ok1 := num(row[fp])
			v, ok2 := num(row[ci])
			if !ok1 || !ok2 {
				continue
			}
			bySeries[name].Points = append(bySeries[name].Points, litPoint{
				X: float64(w), Y: v - base,
				Label: fmt.Sprintf("%s %s W%dA%d: %s%% (fp32 %s%%)", cellText(row[label]), name, w, a, fmtNum(v), fmtNum(base)),
			})
		}
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("source %q: an fp32 column but no wXaY columns", s.ID)
	}
	for _, n := range order {
		p.Series = append(p.Series, *bySeries[n])
	}
	return p, nil
}

// plotQuantLong: one row per method and bit width (w, a, attn), one column
// per model, the full-precision row having w = 32.
func plotQuantLong(s *source) (*litPlot, error) {
	wc, ac, attn := s.col("w"), s.col("a"), s.col("attn")
	first := 0
	for _, c := range []int{wc, ac, attn} {
		if c+1 > first {
			first = c + 1
		}
	}
	var fpRow []interface{}
	for _, row := range s.Rows {
		if w, ok := num(row[wc]); ok && w >= 32 {
			fpRow = row
			break
		}
	}
	if fpRow == nil {
		return nil, fmt.Errorf("source %q: no full-precision row (w = 32)", s.ID)
	}
	p := &litPlot{
		XLabel: "weight bits", YLabel: "Δ top-1 vs full precision (pts)", Relative: true, DiscreteX: true,
		Reference: "each model's full-precision row in the same table",
		family:    familyQuantize, measured: weightBits, measuredY: (*row).top1Delta,
	}
	for _, row := range s.Rows {
		w, _ := num(row[wc])
		if w >= 32 {
			continue
		}
		a, _ := num(row[ac])
		name := fmt.Sprintf("%s W%g/A%g", cellText(row[0]), w, a)
		if attn >= 0 {
			at, _ := num(row[attn])
			name += fmt.Sprintf("/Attn%g", at)
		}
		ser := litSeries{Name: name}
		for ci := first; ci < len(s.Columns); ci++ {
			v, ok1 := num(row[ci])
			base, ok2 := num(fpRow[ci])
			if !ok1 || !ok2 {
				continue
			}
			ser.Points = append(ser.Points, litPoint{X: w, Y: v - base,
				Label: fmt.Sprintf("%s, %s: %s%% (full precision %s%%)", name, s.Columns[ci], fmtNum(v), fmtNum(base))})
		}
		p.Series = append(p.Series, ser)
	}
	return p, nil
}

// pairedColumns finds a method prefix P such that both "top1" and
// "P_top1" are columns (ToMe's before/after layout).
func pairedColumns(s *source) string {
	for _, c := range s.Columns {
		if strings.HasSuffix(c, "_top1") {
			return strings.TrimSuffix(c, "_top1")
		}
	}
	return ""
}

// plotPaired: before/after columns of one method: Δ top-1 against the
// throughput gain.
func plotPaired(s *source, prefix string) (*litPlot, error) {
	t0, t1 := s.col("top1"), s.col(prefix+"_top1")
	q0, q1 := s.col("throughput"), s.col(prefix+"_throughput")
	if q0 < 0 || q1 < 0 {
		return nil, fmt.Errorf("source %q: %s_top1 without throughput and %s_throughput", s.ID, prefix, prefix)
	}
	p := &litPlot{
		XLabel: "throughput gain (×)", YLabel: "Δ top-1 vs unmodified model (pts)", Relative: true,
		Reference: "the same model without " + prefix,
		family:    familyPrune, measured: throughputGain, measuredY: (*row).top1Delta,
		Note: "Published throughput gains were measured on the authors' GPU; measured ones are this harness's throughput gain at its batch size.",
	}
	ser := litSeries{Name: prefix}
	if strings.EqualFold(prefix, s.ID) {
		ser.Name = sourceName(s)
	}
	for _, row := range s.Rows {
		a, ok1 := num(row[t0])
		b, ok2 := num(row[t1])
		x, ok3 := num(row[q0])
		y, ok4 := num(row[q1])
		if !ok1 || !ok2 || !ok3 || !ok4 || x == 0 {
			continue
		}
		ser.Points = append(ser.Points, litPoint{X: y / x, Y: b - a,
			Label: fmt.Sprintf("%s: %s%% → %s%%, %s → %s img/s", cellText(row[0]), fmtNum(a), fmtNum(b), fmtNum(x), fmtNum(y))})
	}
	p.Series = append(p.Series, ser)
	return p, nil
}

// plotRatio: a reference row with flops_ratio = 1 and compressed rows:
// Δ top-1 against the MACs ratio.
func plotRatio(s *source) (*litPlot, error) {
	t, r := s.col("top1"), s.col("flops_ratio")
	var ref []interface{}
	for _, row := range s.Rows {
		if v, ok := num(row[r]); ok && v == 1 {
			ref = row
			break
		}
	}
	if ref == nil {
		return nil, fmt.Errorf("source %q: no reference row with flops_ratio = 1", s.ID)
	}
	base, _ := num(ref[t])
	p := &litPlot{
		XLabel: "MACs ratio (compressed / baseline)", YLabel: "Δ top-1 vs baseline (pts)", Relative: true,
		Reference: fmt.Sprintf("%s (%s%%)", cellText(ref[0]), fmtNum(base)),
		family:    familyPrune, measured: (*row).macsRatio, measuredY: (*row).top1Delta,
	}
	bySeries := map[string]*litSeries{}
	var order []string
	for _, row := range s.Rows {
		x, ok1 := num(row[r])
		y, ok2 := num(row[t])
		if !ok1 || !ok2 || x == 1 {
			continue
		}
		name := cellText(row[0])
		if bySeries[name] == nil {
			bySeries[name] = &litSeries{Name: name}
			order = append(order, name)
		}
		bySeries[name].Points = append(bySeries[name].Points, litPoint{X: x, Y: y - base,
			Label: fmt.Sprintf("%s: %s%% at %s of the baseline's MACs", name, fmtNum(y), fmtNum(x))})
	}
	for _, n := range order {
		p.Series = append(p.Series, *bySeries[n])
	}
	return p, nil
}

// plotDistill: models of several sizes, distilled or not: Δ top-1 against
// the parameter ratio, both against the largest non-distilled model.
func plotDistill(s *source, methodName string) (*litPlot, error) {
	t, pc := s.col("top1"), s.col("params_m")
	refIdx := -1
	var refParams float64
	for i, row := range s.Rows {
		v, ok := num(row[pc])
		if !ok || strings.Contains(strings.ToLower(cellText(row[0])), "distilled") {
			continue
		}
		if refIdx < 0 || v > refParams {
			refIdx, refParams = i, v
		}
	}
	if refIdx < 0 || refParams == 0 {
		return nil, fmt.Errorf("source %q: no reference model with parameters", s.ID)
	}
	ref := s.Rows[refIdx]
	base, _ := num(ref[t])
	p := &litPlot{
		XLabel: "parameter ratio (model / reference)", YLabel: "Δ top-1 vs reference (pts)", Relative: true,
		Reference: fmt.Sprintf("%s, the largest model in the table (%s%%, %sM parameters)", cellText(ref[0]), fmtNum(base), fmtNum(refParams)),
		family:    familyDistill, measured: (*row).paramsRatio, measuredY: (*row).top1Delta,
	}
	// A table that marks some rows "distilled" compares them with models
	// trained directly; otherwise every row is the method's.
	plain := litSeries{Name: "trained directly"}
	dist := litSeries{Name: "distilled"}
	marked := false
	for _, row := range s.Rows {
		if strings.Contains(strings.ToLower(cellText(row[0])), "distilled") {
			marked = true
		}
	}
	if !marked {
		plain.Name = methodName
	}
	for _, row := range s.Rows {
		x, ok1 := num(row[pc])
		y, ok2 := num(row[t])
		if !ok1 || !ok2 {
			continue
		}
		pt := litPoint{X: x / refParams, Y: y - base, Label: fmt.Sprintf("%s: %s%%, %sM parameters", cellText(row[0]), fmtNum(y), fmtNum(x))}
		if strings.Contains(strings.ToLower(cellText(row[0])), "distilled") {
			dist.Points = append(dist.Points, pt)
		} else {
			plain.Points = append(plain.Points, pt)
		}
	}
	for _, ser := range []litSeries{plain, dist} {
		if len(ser.Points) > 0 {
			p.Series = append(p.Series, ser)
		}
	}
	return p, nil
}

// plotAbsolute: no reference in the source: top-1 against GMACs, said so.
func plotAbsolute(s *source) (*litPlot, error) {
	t, g := s.col("top1"), s.col("gflops")
	p := &litPlot{
		XLabel: "GMACs (the source's \"GFLOPs\")", YLabel: "top-1 (%)",
		Note: "This source has no uncompressed reference row, so its results are shown in absolute terms and without measured points; measured results of this family are on the trade-off pages.",
	}
	bySeries := map[string]*litSeries{}
	var order []string
	for _, row := range s.Rows {
		x, ok1 := num(row[g])
		y, ok2 := num(row[t])
		if !ok1 || !ok2 {
			continue
		}
		name := cellText(row[0])
		if bySeries[name] == nil {
			bySeries[name] = &litSeries{Name: name}
			order = append(order, name)
		}
		lbl := fmt.Sprintf("%s: %s%% at %s GMACs", name, fmtNum(y), fmtNum(x))
		if k := s.col("keep"); k >= 0 {
			lbl += ", token keep ratio " + cellText(row[k])
		}
		bySeries[name].Points = append(bySeries[name].Points, litPoint{X: x, Y: y, Label: lbl})
	}
	for _, n := range order {
		p.Series = append(p.Series, *bySeries[n])
	}
	return p, nil
}

func methodLabel(prefix, methodName string) string {
	switch strings.ToLower(prefix) {
	case "":
		return methodName
	case "base":
		return "base PTQ"
	}
	if strings.EqualFold(prefix, methodName) {
		return methodName
	}
	return prefix
}

// sourceName is a display name for a source: its name, else the method
// named at the start of its citation ("PTQ4ViT"), else its id.
func sourceName(s *source) string {
	if s.Name != "" {
		return s.Name
	}
	if i := strings.Index(s.Cite, ", "); i >= 0 {
		rest := s.Cite[i+2:]
		if j := strings.Index(rest, ":"); j > 0 && j < 40 {
			return rest[:j]
		}
	}
	return s.ID
}

// Stage parameters (store.Setting flat keys) the literature charts read.
const (
	settingWeightBits = "quantize.weight_bits"
	settingPrecision  = "quantize.precision"
)

// weightBits is the weight bit width of a quantized experiment: the
// weight_bits parameter of its first quantize stage, as the runner stored
// it with every other resolved parameter (swept or fixed, defaults
// included). An experiment without it (stored before settings existed),
// one whose quantize stage casts to a float precision (precision other
// than "int"), or one whose weights stay float (16 or 32 bits) has none.
func weightBits(r *row) (float64, bool) {
	if p, ok := r.exp.Setting(settingPrecision); ok && p != "int" {
		return 0, false
	}
	v, ok := r.exp.Setting(settingWeightBits)
	if !ok {
		return 0, false
	}
	b, err := strconv.ParseFloat(v, 64)
	if err != nil || b <= 0 || b >= 16 {
		return 0, false
	}
	return b, true
}

// throughputGain is throughput / baseline throughput, else the batch-1
// speed-up.
func throughputGain(r *row) (float64, bool) {
	if v, ok := r.get("throughput_gain"); ok {
		return v, true
	}
	if v, ok := r.ratio("throughput"); ok {
		return v, true
	}
	return r.speedup()
}
