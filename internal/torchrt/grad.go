package torchrt

import (
	"fmt"

	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// Grad returns the gradients of the scalar y with respect to xs, as
// torch.autograd.grad(y, xs, retain_graph=True, create_graph=create)
// does; the caller drops them. With create the gradients carry their
// own graph, so that they can be differentiated again (Hessian-vector
// products). gotch's ts.RunBackward cannot serve: it hands libtorch
// separately allocated pointers where libtorch expects arrays, which
// corrupts memory for more than one input.
func Grad(y *ts.Tensor, xs []*ts.Tensor, create bool) ([]*ts.Tensor, error) {
	if len(xs) == 0 {
		return nil, nil
	}
	roots := []lib.Ctensor{lib.Ctensor(y.Ctensor())}
	ins := make([]lib.Ctensor, len(xs))
	for i, x := range xs {
		ins[i] = lib.Ctensor(x.Ctensor())
	}
	outs := make([]lib.Ctensor, len(xs))
	flag := 0
	if create {
		flag = 1
	}
	lib.AtRunBackward(&roots[0], 1, &ins[0], len(ins), &outs[0], 1, flag)
	if err := ts.TorchErr(); err != nil {
		return nil, fmt.Errorf("gradient: %w", err)
	}
	grads := make([]*ts.Tensor, len(xs))
	for i, o := range outs {
		grads[i] = ts.New(o)
	}
	return grads, nil
}
