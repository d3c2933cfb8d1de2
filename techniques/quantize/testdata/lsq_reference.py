"""LSQ reference for techniques/quantize's lsq_test.go.

Learned Step Size Quantization (Esser et al., ICLR 2020), eq. 1-3 and
the gradient scale of section 2.2, written out elementwise in float64:

    v_bar = round(clip(v/s, -Qn, Qp))                       (eq. 1)
    v_hat = v_bar * s                                        (eq. 2)
    d v_hat / d s = -v/s + round(v/s)  if -Qn < v/s < Qp     (eq. 3)
                    -Qn                if v/s <= -Qn
                    Qp                 if v/s >= Qp
    d v_hat / d v = 1 inside (-Qn, Qp), 0 outside (straight-through round)
    the step's gradient is multiplied by g = 1/sqrt(N * Qp_levels)

Here -Qn = qmin - zp and Qp = qmax - zp (the affine grid of the Go code,
zero point fixed), Qp_levels = qmax if symmetric else qmax - qmin, and N
is given by the test (a weight's elements, an activation's features per
image). A step is per tensor (axis = -1) or per channel along axis.

Run with Debian's /usr/bin/python3 (python3-torch 1.13):
    lsq_reference.py IN.json OUT.json
IN: a list of cases, each x (flat), shape, axis, scale, zero_point, qmin, qmax, symmetric, n,
dy (the loss's gradient w.r.t. v_hat, flat). OUT: a list, for each case
y, dx (flat), ds (one per step), and torch_ds: the step gradient of libtorch's
_fake_quantize_learnable_per_*_affine with grad_factor g, for comparison.
"""
import json
import math
import sys

import torch


def reference(p):
    shape = p["shape"]
    x = torch.tensor(p["x"], dtype=torch.float64).reshape(shape)
    dy = torch.tensor(p["dy"], dtype=torch.float64).reshape(shape)
    axis = p["axis"]
    bshape = [1] * len(shape)
    if axis >= 0:
        bshape[axis] = len(p["scale"])
    s = torch.tensor(p["scale"], dtype=torch.float64).reshape(bshape)
    zp = torch.tensor(p["zero_point"], dtype=torch.float64).reshape(bshape)
    qn = p["qmin"] - zp  # -Qn in the paper's notation
    qp = p["qmax"] - zp
    levels = p["qmax"] if p["symmetric"] else p["qmax"] - p["qmin"]
    g = 1.0 / math.sqrt(p["n"] * levels)

    v = x / s
    y = torch.round(torch.maximum(torch.minimum(v, qp), qn)) * s
    below = v <= qn
    above = v >= qp
    inside = ~(below | above)
    dyds = torch.where(inside, torch.round(v) - v, torch.where(below, qn, qp))
    dx = dy * inside.double()
    prod = dy * dyds
    if axis >= 0:
        dims = [d for d in range(len(shape)) if d != axis]
        ds = prod.sum(dim=dims) * g
    else:
        ds = prod.sum().reshape(1) * g

    # libtorch's learnable fake quantization, float32 as it runs.
    xt = x.float().clone().requires_grad_(True)
    st = torch.tensor(p["scale"], dtype=torch.float32, requires_grad=True)
    zt = torch.tensor(p["zero_point"], dtype=torch.float32)
    if axis >= 0:
        yt = torch._fake_quantize_learnable_per_channel_affine(xt, st, zt, axis, p["qmin"], p["qmax"], g)
    else:
        yt = torch._fake_quantize_learnable_per_tensor_affine(xt, st, zt, p["qmin"], p["qmax"], g)
    (yt * dy.float()).sum().backward()

    return {
        "y": y.flatten().tolist(),
        "dx": dx.flatten().tolist(),
        "ds": ds.flatten().tolist(),
        "torch_ds": st.grad.double().flatten().tolist(),
    }


def main():
    cases = json.load(open(sys.argv[1]))
    json.dump([reference(p) for p in cases], open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
