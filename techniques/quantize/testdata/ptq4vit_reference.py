"""PTQ4ViT reference for techniques/quantize's ptq4vit_test.go.

The search is PTQSLBatchingQuantLinear / PostGeluPTQSLBatchingQuantLinear
from the authors' code (github.com/hahnyuan/PTQ4ViT,
quant_layers/linear.py: _initialize_intervals, _search_best_w_interval,
_search_best_a_interval, calibration_step2, _get_similarity with
metric="hessian"), with n_H = n_a = 1, init_layerwise = False, one
calibration batch (calib_batch_size = all images) and parallel_eq_n = 1,
in float32 on the CPU (.cuda() dropped).

Run by ptq4vit_test.go with Debian's /usr/bin/python3 (python3-torch 1.13):
    ptq4vit_reference.py IN.json OUT.json
IN has x [b*n*in], w [out*in], bias [out] or null, grad [b*n*out], b, n,
in, out, w_bit, a_bit, n_V, postgelu, eq_alpha, eq_beta, eq_n,
search_round. OUT gets w_interval [n_V] and a_interval (the positive one
for post-GELU).
"""
import json
import sys

import torch
import torch.nn.functional as F


def similarity(raw, sim, grad):
    # _get_similarity, metric "hessian": mean over the last dim.
    return torch.mean(-(grad.reshape_as(raw) * (raw - sim)) ** 2, dim=-1)


def main(inp, outp):
    c = json.load(open(inp))
    b, n, ic, oc = c["b"], c["n"], c["in"], c["out"]
    x = torch.tensor(c["x"], dtype=torch.float32).view(b, n, ic)
    w = torch.tensor(c["w"], dtype=torch.float32).view(oc, ic)
    bias = None if c["bias"] is None else torch.tensor(c["bias"], dtype=torch.float32)
    grad = torch.tensor(c["grad"], dtype=torch.float32).view(b, n, oc)
    w_qmax, a_qmax = 2 ** (c["w_bit"] - 1), 2 ** (c["a_bit"] - 1)
    n_V, postgelu = c["n_V"], c["postgelu"]
    crb_rows = oc // n_V
    alpha, beta, eq_n = c["eq_alpha"], c["eq_beta"], c["eq_n"]
    raw_out = F.linear(x, w, bias)
    a_neg = 0.16997124254703522 / a_qmax

    # _initialize_intervals
    w_interval = w.view(n_V, crb_rows, 1, ic).abs().amax([1, 3], keepdim=True) / (w_qmax - 0.5)
    if postgelu:
        a_interval = (x.amax() / (a_qmax - 0.5)).view(1, 1)
    else:
        a_interval = (x.abs().amax() / (a_qmax - 0.5)).view(1, 1)
    factors = torch.tensor([alpha + i * (beta - alpha) / eq_n for i in range(eq_n + 1)])
    w_cands = factors.view(-1, 1, 1, 1, 1) * w_interval.unsqueeze(0)
    a_cands = factors.view(1, 1, -1) * a_interval.unsqueeze(-1)

    def quant_input(x, a):
        if postgelu:
            pos = (x / a).round_().clamp_(0, a_qmax - 1).mul_(a)
            neg = (x / a_neg).round_().clamp_(-a_qmax, 0).mul_(a_neg)
            return pos + neg
        return (x / a).round_().clamp_(-a_qmax, a_qmax - 1).mul_(a)

    def quant_weight(wi):
        return (w.view(n_V, crb_rows, 1, ic) / wi).round_().clamp_(-w_qmax, w_qmax - 1).mul_(wi).view(oc, ic)

    for _ in range(c["search_round"]):
        # _search_best_w_interval
        sims = []
        x_sim = quant_input(x, a_interval[0, 0])
        for p in range(eq_n):
            out_sim = F.linear(x_sim, quant_weight(w_cands[p, :, :, 0:1, :].view(n_V, 1, 1, 1)), bias)
            s = similarity(raw_out.view(b, n, n_V, crb_rows), out_sim.view(b, n, n_V, crb_rows),
                           grad.view(b, n, n_V, crb_rows))  # b, n, n_V
            s = s.mean(dim=1).sum(dim=0)  # n_V
            sims.append(s)
        sims = torch.stack(sims)  # eq_n, n_V
        best = sims.argmax(dim=0)
        w_interval = torch.stack([w_cands[best[v], v, 0, 0, 0] for v in range(n_V)]).view(n_V, 1, 1, 1)
        # _search_best_a_interval
        sims = []
        w_sim = quant_weight(w_interval)
        for p in range(eq_n):
            out_sim = F.linear(quant_input(x, a_cands[0, 0, p]), w_sim, bias)
            s = similarity(raw_out, out_sim, grad).mean(dim=1).sum(dim=0)
            sims.append(s)
        best = torch.stack(sims).argmax()
        a_interval = a_cands[0, 0, best].view(1, 1)
    json.dump({"w_interval": w_interval.flatten().tolist(), "a_interval": float(a_interval)}, open(outp, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
