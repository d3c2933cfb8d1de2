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
