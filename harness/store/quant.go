package store

import (
	"encoding/json"
	"fmt"
)

// Site kinds of a QuantSite.
const (
	SiteWeight = "weight" // a parameter, by its name
	SiteAct    = "act"    // an activation, by its key
)

// Quantization is what an experiment's model quantizes, site by site.
type Quantization struct {
	Precision string      `json:"precision"` // "int", "fp16", "bf16"
	Sites     []QuantSite `json:"sites"`     // weights first, then activations, each sorted by key
	// Mixed is the mixed-precision search that chose the weight widths;
	// nil when the widths were uniform.
	Mixed *MixedSearch `json:"mixed,omitempty"`
}

// QuantSite is one quantizer. Kind and Quantizer are kept as the model
// names them, so that new sites and quantizer kinds need no change here.
type QuantSite struct {
	Key       string `json:"key"`       // "blocks.0.attn.qkv.weight", "blocks.0.attn_map"
	Kind      string `json:"kind"`      // SiteWeight or SiteAct
	Quantizer string `json:"quantizer"` // "uniform", "log2", "twin-uniform", ...
	Bits      int    `json:"bits"`
	// Axis is the channel axis of per-channel scales, -1 for one scale.
	Axis      int  `json:"axis"`
	Symmetric bool `json:"symmetric"`
	// Sensitivity holds a searched weight's sensitivity at each of the
	// search's Choices (MixedSearch); Trace its average Hessian trace.
	Sensitivity []float64 `json:"sensitivity,omitempty"`
	Trace       float64   `json:"trace,omitempty"`
}

// Granularity is "per-channel" (with the axis) or "per-tensor".
func (s QuantSite) Granularity() string {
	if s.Axis >= 0 {
		return fmt.Sprintf("per-channel(%d)", s.Axis)
	}
	return "per-tensor"
}

// MixedSearch summarises a mixed-precision search.
type MixedSearch struct {
	Method     string `json:"method"`      // e.g. "hawq-v3"
	Budget     string `json:"budget"`      // "size" or "bitops"
	BudgetBits int    `json:"budget_bits"` // the uniform width whose cost is Limit
	Limit      int64  `json:"limit"`
	Cost       int64  `json:"cost"`    // the chosen assignment's
	Choices    []int  `json:"choices"` // the candidate widths
}

// encodeQuant is the quant_sites column of q: "" for none.
func encodeQuant(q *Quantization) (string, error) {
	if q == nil {
		return "", nil
	}
	b, err := json.Marshal(q)
	if err != nil {
		return "", fmt.Errorf("encode quantization: %w", err)
	}
	return string(b), nil
}

// decodeQuant reads the quant_sites column.
func decodeQuant(s string) (*Quantization, error) {
	if s == "" {
		return nil, nil
	}
	q := &Quantization{}
	if err := json.Unmarshal([]byte(s), q); err != nil {
		return nil, fmt.Errorf("decode quantization: %w", err)
	}
	return q, nil
}

// QuantSitesText is a one-line form of q for exports: the sites as
// "key=quantizer/bits/granularity[/sym]" joined by "; ", "" for none.
func QuantSitesText(q *Quantization) string {
	if q == nil {
		return ""
	}
	out := make([]byte, 0, 64*len(q.Sites))
	for i, s := range q.Sites {
		if i > 0 {
			out = append(out, "; "...)
		}
		out = fmt.Appendf(out, "%s=%s/%d/%s", s.Key, s.Quantizer, s.Bits, s.Granularity())
		if s.Symmetric {
			out = append(out, "/sym"...)
		}
	}
	if len(q.Sites) == 0 {
		return q.Precision
	}
	return string(out)
}
