package compare

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/vitbench/vitbench/harness/store"
)

// The JSON form of a Comparison: numbers that are not finite are null.
type (
	jsonComparison struct {
		Runs     []jsonRun   `json:"runs"`
		Metrics  []jsonTable `json:"metrics"`
		Warnings []string    `json:"warnings"`
	}
	jsonRun struct {
		Label       string    `json:"label"` // A, B, ... as in the text
		ID          int64     `json:"id"`
		UUID        string    `json:"uuid"`
		Hostname    string    `json:"hostname"`
		Fingerprint string    `json:"fingerprint"`
		CPU         string    `json:"cpu"`
		GPU         string    `json:"gpu"`
		SIMD        string    `json:"simd"`
		Threads     int       `json:"threads"`
		Device      string    `json:"device"`
		GitCommit   string    `json:"git_commit"`
		Started     time.Time `json:"started"`
		Suite       string    `json:"suite"`
	}
	jsonTable struct {
		Metric   string    `json:"metric"`
		Label    string    `json:"label"`
		Unit     string    `json:"unit"`
		Kind     Kind      `json:"kind"`
		Better   int       `json:"better"`
		Delta    string    `json:"delta_unit"` // "points" or "percent"
		Rows     []jsonRow `json:"rows"`
		Summary  *jsonRow  `json:"summary"` // geomean (mean for accuracy); null when none
		Warnings []string  `json:"warnings"`
	}
	jsonRow struct {
		Name  string     `json:"name"`
		Cells []jsonCell `json:"cells"`
	}
	jsonCell struct {
		Present     bool     `json:"present"`
		Value       *float64 `json:"value"`
		Lo          *float64 `json:"lo"`
		Hi          *float64 `json:"hi"`
		N           int      `json:"n"`
		Delta       *float64 `json:"delta"`
		DeltaLo     *float64 `json:"delta_lo"`
		DeltaHi     *float64 `json:"delta_hi"`
		P           *float64 `json:"p"`
		Test        string   `json:"test"`
		Significant bool     `json:"significant"`
	}
)

// WriteJSON writes c as one indented JSON object:
// {"runs": [...], "metrics": [{"metric", "rows": [{"name", "cells": [...]}], "summary"}], "warnings"}.
func (c *Comparison) WriteJSON(w io.Writer) error {
	out := jsonComparison{Runs: []jsonRun{}, Metrics: []jsonTable{}, Warnings: nonNil(c.Warnings)}
	for i, r := range c.Runs {
		out.Runs = append(out.Runs, jsonRun{
			Label: Label(i), ID: r.ID, UUID: r.UUID, Hostname: r.Machine.Hostname,
			Fingerprint: store.Fingerprint(r.Machine), CPU: r.Machine.CPU, GPU: r.Machine.GPU,
			SIMD: r.SIMD, Threads: r.Threads, Device: r.Device, GitCommit: r.GitCommit,
			Started: r.Started.UTC(), Suite: r.SuiteName,
		})
	}
	for _, t := range c.Tables {
		jt := jsonTable{Metric: t.Metric, Label: t.Label, Unit: t.Unit, Kind: t.Kind, Better: t.Better,
			Delta: "percent", Rows: []jsonRow{}, Warnings: nonNil(t.Warnings)}
		if t.Kind == Accuracy {
			jt.Delta = "points"
		}
		for _, r := range t.Rows {
			jt.Rows = append(jt.Rows, rowJSON(r))
		}
		if t.Summary != nil {
			s := rowJSON(*t.Summary)
			jt.Summary = &s
		}
		out.Metrics = append(out.Metrics, jt)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	return nil
}

func rowJSON(r Row) jsonRow {
	jr := jsonRow{Name: r.Name, Cells: []jsonCell{}}
	for _, c := range r.Cells {
		jr.Cells = append(jr.Cells, jsonCell{
			Present: c.Present, Value: finite(c.Value), Lo: finite(c.Lo), Hi: finite(c.Hi), N: c.N,
			Delta: finite(c.Delta), DeltaLo: finite(c.DeltaLo), DeltaHi: finite(c.DeltaHi),
			P: finite(c.P), Test: c.Test, Significant: c.Significant,
		})
	}
	return jr
}

func finite(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
