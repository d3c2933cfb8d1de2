"""PyTorch's quantized::linear (onednn engine) on the inputs a Go test
wrote, for TestMatchesPyTorchQuantizedLinear.

usage: quantized_linear.py IN.json OUT.json
IN: x [rows*in], rows, in, out, w (int8 grid values, [out*in]), wscale
[out], bias [out], act scale and zero_point (quint8), out_scale, out_zp.
OUT: y, the dequantized quint8 output [rows*out], and the engine used.
"""
import json
import sys

import torch

a = json.load(open(sys.argv[1]))
torch.backends.quantized.engine = "onednn"
rows, n_in, n_out = a["rows"], a["in"], a["out"]
x = torch.tensor(a["x"], dtype=torch.float32).reshape(rows, n_in)
w = torch.tensor(a["w"], dtype=torch.float32).reshape(n_out, n_in)
s = torch.tensor(a["wscale"], dtype=torch.float64)
qw = torch.quantize_per_channel(w * s.float().unsqueeze(1), s, torch.zeros(n_out, dtype=torch.long), 0, torch.qint8)
assert torch.equal(qw.int_repr().float(), w), "weights did not round-trip onto their grid"
qx = torch.quantize_per_tensor(x, a["scale"], a["zero_point"], torch.quint8)
packed = torch.ops.quantized.linear_prepack(qw, torch.tensor(a["bias"], dtype=torch.float32))
y = torch.ops.quantized.linear(qx, packed, a["out_scale"], a["out_zp"])
json.dump({"y": y.dequantize().flatten().tolist(), "engine": torch.backends.quantized.engine}, open(sys.argv[2], "w"))
