package sysinfo

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// TestStubbedOps calls, through gotch, op wrappers that the project's
// set-up (internal/gotchprep) replaces by stubs when the installed
// libtorch lacks the op: libtorch 1.13 has none of these 2.x ops. Against
// libtorch 1.x each call must fail with an error naming the op and the
// libtorch version; against 2.x the real op must run.
func TestStubbedOps(t *testing.T) {
	info, err := Collect(context.Background(), Options{SkipSgemm: true, GitDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	major, minor, ok := majorMinor(info.Libtorch)
	if !ok {
		t.Fatalf("cannot tell the libtorch version (%q from %q)", info.Libtorch, info.LibtorchSource)
	}
	stubbed := major < 2

	float := func(shape ...int64) *ts.Tensor { return ts.MustOnes(shape, gotch.Float, gotch.CPU) }
	tests := []struct {
		op   string // libtorch's name, which the error must contain
		call func() (*ts.Tensor, error)
	}{
		{"scaled_dot_product_attention", func() (*ts.Tensor, error) {
			q, k, v, mask := float(1, 1, 2, 4), float(1, 1, 2, 4), float(1, 1, 2, 4), ts.MustZeros([]int64{2, 2}, gotch.Float, gotch.CPU)
			defer q.MustDrop()
			defer k.MustDrop()
			defer v.MustDrop()
			defer mask.MustDrop()
			return ts.ScaledDotProductAttention(q, k, v, mask, 0, false, nil)
		}},
		{"squeeze", func() (*ts.Tensor, error) {
			x := float(1, 3, 1)
			defer x.MustDrop()
			return x.SqueezeDims([]int64{0, 2}, false)
		}},
		{"std", func() (*ts.Tensor, error) {
			x := float(2, 3)
			defer x.MustDrop()
			c := ts.IntScalar(1)
			defer c.MustDrop()
			return x.StdCorrection([]int64{1}, c, false, false)
		}},
		{"to_sparse_csr", func() (*ts.Tensor, error) {
			x := float(2, 3)
			defer x.MustDrop()
			return x.ToSparseCsr(nil, false)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			got, err := tt.call()
			if !stubbed {
				if err != nil {
					t.Fatalf("libtorch %s has %s, but the call failed: %v", info.Libtorch, tt.op, err)
				}
				got.MustDrop()
				return
			}
			if err == nil {
				got.MustDrop()
				t.Fatalf("libtorch %s lacks %s, but the call succeeded", info.Libtorch, tt.op)
			}
			msg := err.Error()
			for _, want := range []string{"op " + tt.op + " ", fmt.Sprintf("libtorch %d.%d", major, minor), "needs a newer libtorch"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", firstLine(msg), want)
				}
			}
		})
	}
}

// majorMinor parses the start of a version like "1.13.1" or "2.1.0+cpu".
func majorMinor(v string) (major, minor int, ok bool) {
	f := strings.SplitN(v, ".", 3)
	if len(f) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(f[0])
	minor, err2 := strconv.Atoi(strings.TrimRightFunc(f[1], func(r rune) bool { return r < '0' || r > '9' }))
	return major, minor, err1 == nil && err2 == nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
