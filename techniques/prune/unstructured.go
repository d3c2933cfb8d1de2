package prune

import (
	"fmt"
	"math"
	"slices"

	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// UnstructuredOptions steer Unstructured.
type UnstructuredOptions struct {
	// Amount is the fraction of the selected weights set to zero.
	Amount float64
	// Global ranks the weights of all selected layers together; otherwise
	// every layer loses Amount of its own weights.
	Global bool
	// Groups are the layer groups pruned (vit.GroupedLinear.Group); nil
	// means qkv, proj, fc1 and fc2.
	Groups []string
}

// Unstructured zeroes the smallest-magnitude weights of the selected dense
// linear layers: exactly round(Amount x n) of the n weights considered
// (globally, or per layer), those with the smallest |w|. Weights already zero count among the smallest, so pruning
// again to a higher amount keeps the earlier zeros. Each layer's Mask is
// set to the new {0,1} mask, replacing an earlier one. Biases are not
// pruned. It returns the achieved sparsity: the fraction of zeros among
// the selected weights.
func Unstructured(m *vit.Model, o UnstructuredOptions) (float64, error) {
	if o.Amount < 0 || o.Amount > 1 {
		return 0, fmt.Errorf("prune: amount %g outside [0, 1]", o.Amount)
	}
	groups := o.Groups
	if groups == nil {
		groups = []string{"qkv", "proj", "fc1", "fc2"}
	}
	var layers []*vit.Linear
	for _, l := range m.Linears() {
		if slices.Contains(groups, l.Group) && l.Weight != nil {
			layers = append(layers, l.Linear)
		}
	}
	if len(layers) == 0 {
		return 0, fmt.Errorf("prune: no dense linear layer in groups %v", groups)
	}
	var zeros, total int64
	torchrt.NoGrad(func() {
		var masks []*ts.Tensor
		if o.Global {
			flat := make([]*ts.Tensor, len(layers))
			for i, l := range layers {
				flat[i] = l.Weight.MustAbs(false).MustFlatten(0, -1, true)
			}
			all := ts.MustCat(flat, 0)
			for _, f := range flat {
				f.MustDrop()
			}
			mask := smallestMask(all, o.Amount)
			all.MustDrop()
			off := int64(0)
			for _, l := range layers {
				n := l.Weight.Numel()
				masks = append(masks, mask.MustNarrow(0, off, int64(n), false).MustReshape(l.Weight.MustSize(), true).MustContiguous(true))
				off += int64(n)
			}
			mask.MustDrop()
		} else {
			for _, l := range layers {
				a := l.Weight.MustAbs(false).MustFlatten(0, -1, true)
				masks = append(masks, smallestMask(a, o.Amount).MustReshape(l.Weight.MustSize(), true))
				a.MustDrop()
			}
		}
		for i, l := range layers {
			l.Weight.MustMul_(masks[i])
			if l.Mask != nil {
				l.Mask.MustDrop()
			}
			l.Mask = masks[i]
			n := int64(l.Weight.Numel())
			zeros += n - countNonZero(l.Weight)
			total += n
		}
	})
	return float64(zeros) / float64(total), nil
}

// smallestMask returns a float mask shaped like the 1-D v with zeros at
// the round(amount x len) smallest entries.
func smallestMask(v *ts.Tensor, amount float64) *ts.Tensor {
	n := int64(v.Numel())
	k := int64(math.Round(amount * float64(n)))
	mask := ts.MustOnes([]int64{n}, v.DType(), v.MustDevice())
	if k == 0 {
		return mask
	}
	order := v.MustArgsort(0, false, false)
	idx := order.MustNarrow(0, 0, k, true)
	mask.MustIndexFill_(0, idx, ts.FloatScalar(0))
	idx.MustDrop()
	return mask
}

func countNonZero(t *ts.Tensor) int64 {
	nz := t.MustCountNonzero([]int64{}, false)
	defer nz.MustDrop()
	return nz.Int64Values()[0]
}
