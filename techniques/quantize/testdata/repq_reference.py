"""RepQ-ViT reference for techniques/quantize's repq_test.go.

Reproduces, in float32 PyTorch, the calibration and forward pass of the
two quantizers of the authors' code (github.com/zkkli/RepQ-ViT,
classification/quant/quantizer.py):

  UniformQuantizer.init_quantization_scale: per tensor, for pct in
  0.999, 0.9999, 0.99999 the range [quantile(1 - pct), quantile(pct)]
  (min and max paired), delta = (max - min) / (2^bits - 1),
  zero_point = round(-min / delta), scored by the mean squared error of
  quantizing x on the grid [0, 2^bits - 1]; the first strictly best wins.
  channel_wise: the same search per row of a 2-D tensor or per last-axis
  channel of a 3-D one ([batch, tokens, channels]).
  forward: (clamp(round(x / delta) + zp, 0, 2^bits - 1) - zp) * delta.

  LogSqrt2Quantizer.init_quantization_scale: delta = quantile(pct) for
  the same pcts, scored the same way; quantize: q = round(-2 log2(x /
  delta)), codes >= 2^bits give 0, else with q clamped to [0, 2^bits - 1]
  x^ = 2^-ceil(q/2) * (sqrt(2) if q odd else 1) * delta.

Run by repq_test.go with Debian's /usr/bin/python3 (python3-torch 1.13):
    repq_reference.py IN.json OUT.json
IN has "cases": [{kind: "uniform" | "uniform-channel" | "log-sqrt2",
bits, shape, x (flat, row-major)}]. OUT has "cases": [{delta, zero_point
(uniform only), out (the quantized x, flat)}].
"""
import json
import math
import sys

import torch

PCTS = [0.999, 0.9999, 0.99999]


def mse(x, xq):
    # lp_loss(x, xq, p=2, reduction='all')
    return (x - xq).abs().pow(2.0).mean()


def uniform_quantize(x, hi, lo, bits):
    delta = (hi - lo) / (2 ** bits - 1)
    zp = (-lo / delta).round()
    q = torch.clamp(torch.round(x / delta) + zp, 0, 2 ** bits - 1)
    return (q - zp) * delta


def uniform_search(x, bits):
    best, delta, zp = 1e10, None, None
    flat = x.reshape(-1)
    for pct in PCTS:
        hi = torch.quantile(flat, pct)
        lo = torch.quantile(flat, 1.0 - pct)
        score = mse(x, uniform_quantize(x, hi, lo, bits))
        if score < best:
            best = score
            delta = (hi - lo) / (2 ** bits - 1)
            zp = (-lo / delta).round()
    return delta, zp


def uniform_channels(x, bits):
    if x.dim() == 2:
        chans = [x[c] for c in range(x.shape[0])]
    elif x.dim() == 3:
        chans = [x[:, :, c] for c in range(x.shape[2])]
    else:
        raise ValueError("channel-wise case needs 2 or 3 dimensions")
    ds, zs = zip(*(uniform_search(c, bits) for c in chans))
    delta, zp = torch.stack(ds), torch.stack(zs)
    view = (-1, 1) if x.dim() == 2 else (1, 1, -1)
    return delta, zp, delta.view(*view), zp.view(*view)


def uniform_forward(x, delta, zp, bits):
    q = torch.clamp(torch.round(x / delta) + zp, 0, 2 ** bits - 1)
    return (q - zp) * delta


def log_quantize(x, delta, bits):
    levels = 2 ** bits
    q = torch.round(-1 * (x / delta).log2() * 2)
    drop = q >= levels
    q = torch.clamp(q, 0, levels - 1)
    odd = (q % 2) * (math.sqrt(2) - 1) + 1
    out = 2 ** (-1 * torch.ceil(q / 2)) * odd * delta
    out[drop] = 0
    return out


def log_search(x, bits):
    best, delta = 1e10, x.max()
    for pct in PCTS:
        d = torch.quantile(x.reshape(-1), pct)
        score = mse(x, log_quantize(x, d, bits))
        if score < best:
            best, delta = score, d
    return delta


def run(case):
    x = torch.tensor(case["x"], dtype=torch.float32).reshape(case["shape"])
    bits = case["bits"]
    kind = case["kind"]
    if kind == "log-sqrt2":
        delta = log_search(x, bits)
        return {"delta": [delta.item()], "out": log_quantize(x, delta, bits).reshape(-1).tolist()}
    if kind == "uniform":
        delta, zp = uniform_search(x, bits)
        out = uniform_forward(x, delta, zp, bits)
        return {"delta": [delta.item()], "zero_point": [zp.item()], "out": out.reshape(-1).tolist()}
    if kind == "uniform-channel":
        delta, zp, dv, zv = uniform_channels(x, bits)
        out = uniform_forward(x, dv, zv, bits)
        return {"delta": delta.tolist(), "zero_point": zp.tolist(), "out": out.reshape(-1).tolist()}
    raise ValueError("unknown case kind " + kind)


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)["cases"]
    with torch.no_grad():
        out = {"cases": [run(c) for c in cases]}
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
