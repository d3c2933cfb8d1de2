"""FQ-ViT's Power-of-Two Factor and Log-Int-Softmax on fixed tensors.

Reproduces megvii-research/FQ-ViT: models/ptq/observer/ptf.py
(PtfObserver: update over the batches, get_quantization_params on the
last), the uniform quantizer of models/ptq/quantizer/uniform.py, and
models/ptq/layers.py QIntSoftmax (int_softmax, log_round, forward with
log_i_softmax). Usage: fqvit_reference.py in.json out.json
"""
import json
import sys

import torch


def lp_loss(pred, tgt, p=2.0):
    return (pred - tgt).abs().pow(p).mean()


def ptf(batches, qmin, qmax):
    eps = torch.finfo(torch.float32).eps
    max_val = min_val = None
    for v in batches:
        r = v.reshape(-1, v.shape[-1]).transpose(0, 1)
        cur_max, cur_min = r.max(axis=1).values, r.min(axis=1).values
        max_val = cur_max if max_val is None else torch.max(cur_max, max_val)
        min_val = cur_min if min_val is None else torch.min(cur_min, min_val)
    inputs = batches[-1]
    max_val_t, min_val_t = max_val.max(), min_val.min()
    scale8 = (max_val_t - min_val_t) / float(qmax - qmin)
    scale8.clamp_(eps)
    scale4 = scale8 / 2
    scale2 = scale4 / 2
    scale1 = scale2 / 2
    zero_point = qmin - torch.round(min_val_t / scale8)
    zero_point.clamp_(qmin, qmax)
    scale_mask = torch.ones_like(max_val)
    for j in range(inputs.shape[2]):
        data = inputs[..., j].unsqueeze(-1)
        scores = []
        for s in (scale1, scale2, scale4, scale8):
            dq = ((data / s + zero_point).round().clamp(qmin, qmax) - zero_point) * s
            scores.append(lp_loss(data, dq))
        scale_mask[j] *= 2**scores.index(min(scores))
    scale = scale1 * scale_mask
    # UniformQuantizer.forward: quant then dequant, scale on the last axis.
    s, z = scale.reshape(1, 1, -1), zero_point.reshape(1, 1, -1)
    out = ((inputs / s + z).round().clamp(qmin, qmax) - z) * s
    return scale, zero_point, out


def log_round(x):
    x_log_floor = x.log2().floor()
    big = x_log_floor
    extra_mask = (x - 2**big) >= 2**(big - 1)
    big[extra_mask] = big[extra_mask] + 1
    return big


def int_softmax(x, scaling_factor):
    def int_polynomial(x_int, scaling_factor):
        coef = [0.35815147, 0.96963238, 1.]
        coef[1] /= coef[0]
        coef[2] /= coef[0]
        b_int = torch.floor(coef[1] / scaling_factor)
        c_int = torch.floor(coef[2] / scaling_factor**2)
        z = x_int + b_int
        z = x_int * z
        z = z + c_int
        scaling_factor = coef[0] * scaling_factor**2
        return z, scaling_factor

    def int_exp(x_int, scaling_factor):
        x0 = -0.6931
        n = 30
        x0_int = torch.floor(x0 / scaling_factor)
        x_int = torch.max(x_int, n * x0_int)
        q = torch.floor(x_int / x0_int)
        r = x_int - x0_int * q
        exp_int, exp_scaling_factor = int_polynomial(r, scaling_factor)
        exp_int = torch.clamp(torch.floor(exp_int * 2**(n - q)), min=0)
        scaling_factor = exp_scaling_factor / 2**n
        return exp_int, scaling_factor

    x_int = x / scaling_factor
    x_int_max, _ = x_int.max(dim=-1, keepdim=True)
    x_int = x_int - x_int_max
    exp_int, exp_scaling_factor = int_exp(x_int, scaling_factor)
    exp_int_sum = exp_int.sum(dim=-1, keepdim=True)
    return exp_int, exp_int_sum


def log_int_softmax(x, scale, bits):
    exp_int, exp_int_sum = int_softmax(x, scale)
    softmax_out = torch.round(exp_int_sum / exp_int)
    rounds = log_round(softmax_out)
    mask = rounds >= 2**bits
    qlog = torch.clamp(rounds, 0, 2**bits - 1)
    deq_softmax = 2**(-qlog)
    deq_softmax[mask] = 0
    return deq_softmax


def main():
    with open(sys.argv[1]) as f:
        a = json.load(f)
    shape = a["ptf_shape"]
    batches = [torch.tensor(b, dtype=torch.float32).reshape(shape) for b in a["ptf_batches"]]
    scale, zp, out = ptf(batches, a["qmin"], a["qmax"])
    lis = []
    for c in a["lis"]:
        x = torch.tensor(c["x"], dtype=torch.float32).reshape(c["shape"])
        s = torch.tensor(c["scale"], dtype=torch.float32)
        lis.append(log_int_softmax(x, s, c["bits"]).flatten().tolist())
    with open(sys.argv[2], "w") as f:
        json.dump({"scale": scale.tolist(), "zero_point": zp.item(), "ptf_out": out.flatten().tolist(), "lis": lis}, f)


if __name__ == "__main__":
    main()
