"""Reference cases for techniques/quantize: PyTorch's observers and
fake-quantization ops on fixed tensors. Run by calib_test.go with Debian's
/usr/bin/python3 (python3-torch 1.13); writes cases.json to argv[1]."""
import json
import os
import sys

import torch
from torch.ao.quantization import (MinMaxObserver, MovingAverageMinMaxObserver,
                                   MovingAveragePerChannelMinMaxObserver,
                                   PerChannelMinMaxObserver)

torch.manual_seed(0)


def grid(bits, symmetric):
    if symmetric:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1


def tensor_with_outliers(shape):
    x = torch.randn(*shape)
    x.view(-1)[3] = 9.0
    x.view(-1)[17] = -4.5
    return x


cases = []
for bits in (8, 6, 4, 2):
    for symmetric in (True, False):
        qmin, qmax = grid(bits, symmetric)
        dtype = torch.qint8 if symmetric else torch.quint8
        # per tensor
        x = tensor_with_outliers((6, 10))
        obs = MinMaxObserver(dtype=dtype, quant_min=qmin, quant_max=qmax,
                             qscheme=torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine)
        obs(x)
        s, z = obs.calculate_qparams()
        y = torch.fake_quantize_per_tensor_affine(x, float(s), int(z), qmin, qmax)
        cases.append(dict(name=f"per-tensor-w{bits}-{'sym' if symmetric else 'affine'}", axis=-1,
                          bits=bits, symmetric=symmetric, shape=list(x.shape), x=x.flatten().tolist(),
                          scale=s.flatten().tolist(), zero_point=[int(v) for v in z.flatten()],
                          y=y.flatten().tolist()))
        # per channel, along axis 0 and axis 1 of a 3-D tensor
        for axis in (0, 1):
            x = tensor_with_outliers((5, 4, 3))
            obs = PerChannelMinMaxObserver(ch_axis=axis, dtype=dtype, quant_min=qmin, quant_max=qmax,
                                           qscheme=torch.per_channel_symmetric if symmetric else torch.per_channel_affine)
            obs(x)
            s, z = obs.calculate_qparams()
            y = torch.fake_quantize_per_channel_affine(x, s, z.to(torch.int32), axis, qmin, qmax)
            cases.append(dict(name=f"per-channel{axis}-w{bits}-{'sym' if symmetric else 'affine'}", axis=axis,
                              bits=bits, symmetric=symmetric, shape=list(x.shape), x=x.flatten().tolist(),
                              scale=s.tolist(), zero_point=[int(v) for v in z],
                              y=y.flatten().tolist()))

# Moving-average observers over three batches (per tensor and per channel).
ema = []
for per_channel in (False, True):
    c = 0.25
    if per_channel:
        obs = MovingAveragePerChannelMinMaxObserver(averaging_constant=c, ch_axis=0, dtype=torch.quint8,
                                                    qscheme=torch.per_channel_affine)
    else:
        obs = MovingAverageMinMaxObserver(averaging_constant=c, dtype=torch.quint8)
    batches = [torch.randn(3, 8) * (i + 1) for i in range(3)]
    for b in batches:
        obs(b)
    s, z = obs.calculate_qparams()
    ema.append(dict(name="ema-per-channel" if per_channel else "ema-per-tensor", constant=c,
                    per_channel=per_channel, shape=[3, 8], batches=[b.flatten().tolist() for b in batches],
                    min=obs.min_val.flatten().tolist(), max=obs.max_val.flatten().tolist(),
                    scale=s.flatten().tolist(), zero_point=[int(v) for v in z.flatten()]))

out = sys.argv[1]
with open(os.path.join(out, "cases.json"), "w") as f:
    json.dump(dict(fake_quant=cases, ema=ema), f)
