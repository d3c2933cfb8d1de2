package reports

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/vitbench/vitbench/harness/store"
)

// blockKey splits a site key inside a block, "blocks.3.attn.qkv.weight",
// into its block index and the key with the index as "*".
var blockKey = regexp.MustCompile(`^blocks\.(\d+)\.(.+)$`)

// siteGroup is the sites of one type (key pattern) that share a spec.
type siteGroup struct {
	kind, pattern, quantizer, granularity string
	bits                                  int
	symmetric                             bool
	blocks                                []int // block indices; none outside the blocks
	first                                 int   // position of the first site, for a stable order
}

// quantTable lists a model's quantized sites compactly: one row per site
// type (the key with its block index as "*") and spec, with the blocks
// that share it, so that a mixed-precision model's widths show as rows of
// the same type with different bits. Kinds, keys and quantizers are shown
// as stored, so new ones need no change here.
func quantTable(q *store.Quantization) (table, string) {
	t := table{
		Empty: "The model is not quantized: every tensor is float32.",
		Head: []headCell{{Text: "site"}, {Text: "key"}, {Text: "quantizer"}, {Text: "bits", Num: true},
			{Text: "granularity"}, {Text: "symmetric"}, {Text: "blocks"}},
	}
	if q == nil {
		return t, ""
	}
	if len(q.Sites) == 0 {
		t.Empty = "Every tensor is cast to " + q.Precision + "; no integer quantizer."
		return t, ""
	}
	var groups []*siteGroup
	index := map[string]*siteGroup{}
	nblocks := 0
	for i, s := range q.Sites {
		pattern, block := s.Key, -1
		if m := blockKey.FindStringSubmatch(s.Key); m != nil {
			block, _ = strconv.Atoi(m[1])
			pattern = "blocks.*." + m[2]
			nblocks = max(nblocks, block+1)
		}
		id := fmt.Sprintf("%s|%s|%s|%d|%d|%t", s.Kind, pattern, s.Quantizer, s.Bits, s.Axis, s.Symmetric)
		g := index[id]
		if g == nil {
			g = &siteGroup{kind: s.Kind, pattern: pattern, quantizer: s.Quantizer, bits: s.Bits,
				granularity: s.Granularity(), symmetric: s.Symmetric, first: i}
			index[id] = g
			groups = append(groups, g)
		}
		if block >= 0 {
			g.blocks = append(g.blocks, block)
		}
	}
	kindRank := func(k string) int {
		if k == store.SiteWeight {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(groups, func(a, b *siteGroup) int {
		return cmp.Or(cmp.Compare(kindRank(a.kind), kindRank(b.kind)), cmp.Compare(a.pattern, b.pattern),
			cmp.Compare(b.bits, a.bits), cmp.Compare(a.first, b.first))
	})
	for _, g := range groups {
		sym := "no"
		if g.symmetric {
			sym = "yes"
		}
		t.Rows = append(t.Rows, []cell{{Text: g.kind}, {Text: g.pattern}, {Text: g.quantizer},
			{Text: strconv.Itoa(g.bits), Class: "num"}, {Text: g.granularity}, {Text: sym}, {Text: blockList(g.blocks, nblocks)}})
	}
	note := fmt.Sprintf("%d quantized sites (%s precision) in %d rows: sites of one type that share a quantizer are one row, with the blocks they are in.", len(q.Sites), q.Precision, len(groups))
	if m := q.Mixed; m != nil {
		note += fmt.Sprintf(" Mixed precision (%s): weight widths from %v chosen to minimise the summed sensitivity within a %s budget of %d (uniform %d bits); the choice costs %d.",
			m.Method, m.Choices, m.Budget, m.Limit, m.BudgetBits, m.Cost)
	}
	return t, note
}

// blockList writes block indices as ranges, "0–3, 6", or "all (n)".
func blockList(blocks []int, n int) string {
	if len(blocks) == 0 {
		return "—"
	}
	b := slices.Sorted(slices.Values(blocks))
	b = slices.Compact(b)
	if len(b) == n && n > 1 {
		return fmt.Sprintf("all (%d)", n)
	}
	var parts []string
	for i := 0; i < len(b); {
		j := i
		for j+1 < len(b) && b[j+1] == b[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d–%d", b[i], b[j]))
		} else {
			parts = append(parts, strconv.Itoa(b[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// mixedTable lists a mixed-precision search layer by layer: each searched
// weight's Hessian trace, its sensitivity at every candidate width and
// the width chosen (bold).
func mixedTable(q *store.Quantization) table {
	if q == nil || q.Mixed == nil {
		return table{}
	}
	t := table{Sortable: true, Head: []headCell{{Text: "weight"}, {Text: "Hessian trace / n", Num: true}}}
	for _, b := range q.Mixed.Choices {
		t.Head = append(t.Head, headCell{Text: fmt.Sprintf("Ω at %d bits", b), Num: true})
	}
	t.Head = append(t.Head, headCell{Text: "bits", Num: true})
	for _, s := range q.Sites {
		if s.Kind != store.SiteWeight || len(s.Sensitivity) != len(q.Mixed.Choices) {
			continue
		}
		row := []cell{{Text: s.Key, Sort: s.Key}, {Text: fmt.Sprintf("%.3g", s.Trace), Sort: strconv.FormatFloat(s.Trace, 'g', -1, 64), Class: "num"}}
		for i, v := range s.Sensitivity {
			c := cell{Text: fmt.Sprintf("%.3g", v), Sort: strconv.FormatFloat(v, 'g', -1, 64), Class: "num"}
			if q.Mixed.Choices[i] == s.Bits {
				c.Class += " swept"
			}
			row = append(row, c)
		}
		row = append(row, cell{Text: strconv.Itoa(s.Bits), Sort: strconv.Itoa(s.Bits), Class: "num"})
		for i := range row {
			row[i].Sortable = true
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}
