package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem found in a suite file. Its text names the file, the
// line and the full key, e.g.
//
//	suite.toml:14: experiment[2].pipeline[0].weight_bits: want an integer, got string "8"
type Error struct {
	File string // the file as it was named to ReadFile or Parse, or joined onto the including file's folder
	Line int    // 1-based; 0 when unknown
	Key  string // full key, e.g. "models.vit_cifar.train.lr"; empty for file-level problems
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		b.WriteString(": ")
		b.WriteString(e.Key)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in one pass over a suite, sorted by
// file, line and key. ReadFile and Parse return it (never an empty one) so
// that a user fixes several mistakes per run.
type ErrorList []*Error

// Error joins the errors, one per line.
func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap returns the errors, so that errors.As finds an *Error.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// Err returns l sorted and without duplicates, or nil when l is empty.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	out := slices.Clone(l)
	slices.SortStableFunc(out, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Key, b.Key))
	})
	out = slices.CompactFunc(out, func(a, b *Error) bool { return *a == *b })
	return out
}
