package reports

import (
	"math"
	"strconv"
	"strings"

	"github.com/vitbench/vitbench/harness/metrics"
)

// displayUnit says how a normalised metric is shown: multiply by scale and
// append unit.
type displayUnit struct {
	scale float64
	unit  string
}

// displayOf picks the display unit of a metric from its name and stored
// unit: seconds of latency as ms, other seconds as s, bytes as MiB,
// parameter counts as M, operations as G.
func displayOf(name, unit string) displayUnit {
	if unit == "" {
		if info, ok := metrics.Lookup(name); ok {
			unit = info.Unit
		}
	}
	switch unit {
	case metrics.UnitSeconds:
		if strings.HasPrefix(name, "latency") {
			return displayUnit{1e3, "ms"}
		}
		return displayUnit{1, "s"}
	case metrics.UnitBytes:
		return displayUnit{1.0 / (1 << 20), "MiB"}
	case metrics.UnitCount:
		if strings.HasPrefix(name, "params") {
			return displayUnit{1e-6, "M"}
		}
		return displayUnit{1, ""}
	case metrics.UnitOps:
		return displayUnit{1e-9, "G"}
	case metrics.UnitPercent:
		if name == metrics.Top1Delta {
			return displayUnit{1, "pts"}
		}
		return displayUnit{1, "%"}
	case metrics.UnitRatio:
		return displayUnit{1, "×"}
	}
	return displayUnit{1, unit}
}

// fmtMetric formats a normalised value in its display unit.
func fmtMetric(name string, v float64, unit string) string {
	d := displayOf(name, unit)
	s := fmtNum(v * d.scale)
	switch d.unit {
	case "":
		return s
	case "%", "×":
		return s + d.unit
	}
	return s + " " + d.unit
}

// fmtNum formats a number with about three significant digits, never in
// exponent notation for the magnitudes reports show.
func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "—"
	case a == 0:
		return "0"
	case a >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a >= 0.001:
		return strconv.FormatFloat(v, 'f', 3+int(-math.Floor(math.Log10(a)))-1, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// fmtMinus formats a number with a typographic minus, as fmtSigned does,
// and no plus sign.
func fmtMinus(v float64) string {
	if v < 0 {
		return fmtSigned(v)
	}
	return fmtNum(v)
}

// fmtSigned formats a delta with an explicit sign.
func fmtSigned(v float64) string {
	s := fmtNum(v)
	if v > 0 {
		return "+" + s
	}
	if v < 0 {
		return "−" + strings.TrimPrefix(s, "-")
	}
	return s
}

// betterText describes a metric's direction.
func betterText(better int) string {
	switch better {
	case +1:
		return "higher is better"
	case -1:
		return "lower is better"
	}
	return "neither"
}

// deltaClass colours a change: "good", "bad" or "" when the direction is
// unknown or the change is nil. pivot is the no-change value (0 for a
// difference, 1 for a ratio).
func deltaClass(metric string, v, pivot float64) string {
	info, ok := metrics.Lookup(metric)
	if !ok || info.Better == 0 || v == pivot {
		return ""
	}
	if (v > pivot) == (info.Better > 0) {
		return "good"
	}
	return "bad"
}

// interval returns the 95% interval the runner stored beside a metric
// (metrics.Lo and metrics.Hi); ok is false when it has none.
func (r *row) interval(name string) (lo, hi float64, ok bool) {
	lo, ok1 := r.get(metrics.Lo(name))
	hi, ok2 := r.get(metrics.Hi(name))
	return lo, hi, ok1 && ok2 && hi >= lo
}

// pValue returns the stored p-value of a relative metric's difference to
// the baseline (metrics.P).
func (r *row) pValue(name string) (float64, bool) { return r.get(metrics.P(name)) }

// significant reports whether a relative metric's difference to the
// baseline is significant at 5%: its p-value is below 0.05, or, without
// one, its interval excludes pivot (0 for a difference, 1 for a ratio).
// ok is false when neither was stored.
func (r *row) significant(name string, pivot float64) (sig, ok bool) {
	if p, ok := r.pValue(name); ok {
		return p < 0.05, true
	}
	if lo, hi, ok := r.interval(name); ok {
		return lo > pivot || hi < pivot, true
	}
	return false, false
}

// ciText formats an interval in a display scale: "[69.1, 70.9]".
func ciText(lo, hi, scale float64) string {
	return "[" + fmtMinus(lo*scale) + ", " + fmtMinus(hi*scale) + "]"
}

// valueCI formats a metric with its interval where stored: "70.2
// [69.3, 71.1]".
func (r *row) valueCI(name string, scale float64) (string, bool) {
	v, ok := r.get(name)
	if !ok {
		return "", false
	}
	s := fmtNum(v * scale)
	if lo, hi, ok := r.interval(name); ok {
		s += " " + ciText(lo, hi, scale)
	}
	return s, true
}

// pText formats a p-value as benchstat does: "p=0.003".
func pText(p float64) string {
	if p < 0.001 {
		return "p<0.001"
	}
	return "p=" + strconv.FormatFloat(p, 'f', 3, 64)
}

// ciCell is a sortable table cell of a metric in a display scale with its
// 95% interval where one is stored.
func ciCell(r *row, name string, scale float64) cell {
	text, ok := r.valueCI(name, scale)
	if !ok {
		title := "not recorded"
		if !r.ok() {
			title = "experiment " + r.exp.Status
		}
		return cell{Text: "—", Class: "num missing", Title: title}
	}
	v, _ := r.get(name)
	return cell{Text: text, Sort: strconv.FormatFloat(v, 'g', -1, 64), Class: "num"}
}
