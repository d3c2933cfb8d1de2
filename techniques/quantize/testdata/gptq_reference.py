"""GPTQ reference for techniques/quantize's gptq_test.go.

The loop is fasterquant from the authors' reference code
(github.com/IST-DASLab/gptq, gptq.py: GPTQ.add_batch and
GPTQ.fasterquant with blocksize=128, percdamp=.01, groupsize=-1,
actorder=False), in float64, on a weight W, inputs X and a fixed grid
given by the Go test. The grid is the test's (a scale and zero point per
output row or one for all, and an integer range [qmin, qmax]): the
reference's quantize() clamps to [0, maxq], which is the qmin = 0 case.

Run by gptq_test.go with Debian's /usr/bin/python3 (python3-torch 1.13):
    gptq_reference.py IN.json OUT.json
IN has w [out*in], x [batches*seq*in] (batches of sequences), out, in,
batches, seq, scale, zero_point, qmin, qmax. OUT gets the rounded weight's
integer codes q [out*in] (round(W/scale) + zero_point) and its values w.
"""
import json
import math
import sys

import torch


def quantize(x, scale, zero, qmin, qmax):
    q = torch.clamp(torch.round(x / scale) + zero, qmin, qmax)
    return scale * (q - zero)


class GPTQ:
    def __init__(self, columns):
        self.columns = columns
        self.H = torch.zeros((columns, columns), dtype=torch.float64)
        self.nsamples = 0

    def add_batch(self, inp):
        # inp: [batch, seq, in], as a Linear layer's input.
        tmp = inp.shape[0]
        inp = inp.reshape((-1, inp.shape[-1])).t()
        self.H *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        inp = math.sqrt(2 / self.nsamples) * inp
        self.H += inp.matmul(inp.t())

    def fasterquant(self, W, scale, zero, qmin, qmax, blocksize=128, percdamp=.01):
        W = W.clone()
        H = self.H
        dead = torch.diag(H) == 0
        H[dead, dead] = 1
        W[:, dead] = 0

        Q = torch.zeros_like(W)
        damp = percdamp * torch.mean(torch.diag(H))
        diag = torch.arange(self.columns)
        H[diag, diag] += damp
        H = torch.linalg.cholesky(H)
        H = torch.cholesky_inverse(H)
        H = torch.linalg.cholesky(H, upper=True)
        Hinv = H

        for i1 in range(0, self.columns, blocksize):
            i2 = min(i1 + blocksize, self.columns)
            count = i2 - i1

            W1 = W[:, i1:i2].clone()
            Q1 = torch.zeros_like(W1)
            Err1 = torch.zeros_like(W1)
            Hinv1 = Hinv[i1:i2, i1:i2]

            for i in range(count):
                w = W1[:, i]
                d = Hinv1[i, i]
                q = quantize(w.unsqueeze(1), scale, zero, qmin, qmax).flatten()
                Q1[:, i] = q
                err1 = (w - q) / d
                W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
                Err1[:, i] = err1

            Q[:, i1:i2] = Q1
            W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
        return Q


def main(inp, outp):
    with open(inp) as f:
        d = json.load(f)
    out, cols = d["out"], d["in"]
    W = torch.tensor(d["w"], dtype=torch.float64).reshape(out, cols)
    X = torch.tensor(d["x"], dtype=torch.float64).reshape(d["batches"], d["seq"], cols)
    scale = torch.tensor(d["scale"], dtype=torch.float64).reshape(-1, 1)
    zero = torch.tensor(d["zero_point"], dtype=torch.float64).reshape(-1, 1)
    g = GPTQ(cols)
    for b in range(X.shape[0]):
        g.add_batch(X[b:b + 1])
    Q = g.fasterquant(W, scale, zero, d["qmin"], d["qmax"])
    codes = torch.round(Q / scale) + zero
    with open(outp, "w") as f:
        json.dump({"q": [int(v) for v in codes.flatten().tolist()], "w": Q.flatten().tolist()}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
