package torchrt

import (
	"slices"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// TestFloat64s: values come out in row-major order for a transposed view
// of a float64 tensor, where a copy of the storage would not.
func TestFloat64s(t *testing.T) {
	tests := []struct {
		name  string
		dtype gotch.DType
	}{
		{"float32", gotch.Float},
		{"float64", gotch.Double},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := ts.MustArange(ts.IntScalar(6), tt.dtype, gotch.CPU).MustReshape([]int64{2, 3}, true)
			defer x.MustDrop()
			xt := x.MustT(false) // [3, 2]: 0 3 / 1 4 / 2 5
			defer xt.MustDrop()
			if got, want := Float64s(xt), []float64{0, 3, 1, 4, 2, 5}; !slices.Equal(got, want) {
				t.Errorf("Float64s of the transpose = %v, want %v", got, want)
			}
		})
	}
}
