"""PyTorch eager side of `make bench`: latency of a timm-semantics ViT.

usage: /usr/bin/python3 scripts/bench_torch.py --arch deit_tiny_patch16_224
           [--weights F.pth] [--batch B] [--threads T] [--warmup N] [--iters N]
           [--precision fp32|bf16|int8] [--json]
       /usr/bin/python3 scripts/bench_torch.py --arch deit_tiny_patch16_224 --save-weights F.pth

Measures what `bench latency` measures, the same way: random input of the
model's shape, torch.no_grad(), eval mode, --warmup untimed forward passes,
then --iters timed ones; p50/p90/p99 by linear interpolation between
closest ranks (numpy's default, as harness/measure.Percentile), throughput
= batch / p50. The model is the timm-named module of
harness/vit/testdata/reference.py (conv patch embedding, class and
distillation tokens, fused qkv, matmul + softmax attention, exact GELU),
imported by path so both sides run the same definition the logits tests
check. --save-weights writes a state dict initialised as timm does
(truncated normal, std 0.02, for linear weights and the position
embedding; zero biases), which both sides then load with --weights, so
that they compute on identical numbers. Run it with Debian's /usr/bin/python3 (python3-torch 1.13.1): it
uses the same libtorch_cpu shared library as the Go binary.

The --json object has the keys of `bench latency --json`, plus the
libtorch library this process mapped.
"""
import argparse
import importlib.util
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "..", "harness", "vit", "testdata", "reference.py")

# name: (img, patch, dim, depth, heads, mlp_ratio, distilled); the
# architectures of harness/vit/config.go that the comparison uses.
ARCHS = {}
for size, dim, depth, heads in [("tiny", 192, 12, 3), ("small", 384, 12, 6), ("base", 768, 12, 12)]:
    ARCHS["deit_%s_patch16_224" % size] = (224, 16, dim, depth, heads, 4.0, False)
    ARCHS["deit_%s_distilled_patch16_224" % size] = (224, 16, dim, depth, heads, 4.0, True)
    for p in (16, 32):
        for res in (224, 384):
            ARCHS["vit_%s_patch%d_%d" % (size, p, res)] = (res, p, dim, depth, heads, 4.0, False)


def load_reference():
    spec = importlib.util.spec_from_file_location("vitbench_reference", REFERENCE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def timm_init(model):
    """Initialise as timm's VisionTransformer.init_weights does."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.trunc_normal_(m.weight, std=0.02)
                torch.nn.init.zeros_(m.bias)
            elif isinstance(m, torch.nn.LayerNorm):
                torch.nn.init.ones_(m.weight)
                torch.nn.init.zeros_(m.bias)
        torch.nn.init.trunc_normal_(model.pos_embed, std=0.02)
        torch.nn.init.normal_(model.cls_token, std=1e-6)
        if model.distilled:
            torch.nn.init.trunc_normal_(model.dist_token, std=0.02)


def with_precision(model, x, precision):
    """The model and input as PyTorch itself runs them in precision."""
    if precision == "bf16":
        return model.to(torch.bfloat16), x.to(torch.bfloat16)
    if precision == "int8":
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
        torch.backends.quantized.engine = "onednn"
        prepared = prepare_fx(model, get_default_qconfig_mapping("onednn"), (x,))
        with torch.no_grad():
            prepared(torch.randn(8, *x.shape[1:]))
        return convert_fx(prepared), x
    return model, x


def mapped_libtorch():
    with open("/proc/self/maps") as f:
        for line in f:
            if "libtorch_cpu" in line:
                return os.path.realpath(line.split()[-1])
    return ""


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", required=True, choices=sorted(ARCHS))
    ap.add_argument("--weights", help="state dict to load (as written by --save-weights)")
    ap.add_argument("--save-weights", metavar="FILE", help="write a timm-initialised state dict and exit")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = all logical CPUs)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8"],
                    help="bf16: the model and input cast to bfloat16; int8: FX static quantization "
                         "(get_default_qconfig_mapping('onednn'), calibrated on random images)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.batch < 1 or a.iters < 1 or a.warmup < 0 or a.threads < 0:
        ap.error("want --batch, --iters >= 1, --warmup, --threads >= 0")

    threads = a.threads or os.cpu_count()
    torch.set_num_threads(threads)
    img, patch, dim, depth, heads, mlp_ratio, distilled = ARCHS[a.arch]
    ref = load_reference()
    torch.manual_seed(0)
    model = ref.TimmViT(img, patch, 3, 1000, dim, depth, heads, mlp_ratio, distilled).eval()
    if a.save_weights:
        timm_init(model)
        torch.save(model.state_dict(), a.save_weights)
        return
    if a.weights:
        model.load_state_dict(torch.load(a.weights))
    x = torch.randn(a.batch, 3, img, img)
    model, x = with_precision(model, x, a.precision)
    samples = []
    with torch.no_grad():
        for i in range(a.warmup + a.iters):
            start = time.perf_counter()
            y = model(x)
            elapsed = time.perf_counter() - start
            del y
            if i >= a.warmup:
                samples.append(elapsed)
    p50, p90, p99 = (float(np.percentile(samples, q)) for q in (50, 90, 99))
    res = dict(arch=a.arch, batch=a.batch, threads=torch.get_num_threads(), device="cpu",
               p50_ms=1e3 * p50, p90_ms=1e3 * p90, p99_ms=1e3 * p99,
               throughput_ips=a.batch / p50, warmup=a.warmup, iters=a.iters, executed=a.precision,
               torch=torch.__version__, libtorch=mapped_libtorch())
    if a.json:
        json.dump(res, sys.stdout, indent=2)
        print()
        return
    print("%s in %s on cpu (PyTorch %s eager), batch %d, %d threads: %d warm-up + %d timed passes, no-grad"
          % (a.arch, a.precision, torch.__version__, a.batch, res["threads"], a.warmup, a.iters))
    for k in ("p50", "p90", "p99"):
        print("%-10s  %10.2f ms" % (k, res[k + "_ms"]))
    print("throughput  %.1f images/s (batch / p50)" % res["throughput_ips"])


if __name__ == "__main__":
    main(sys.argv[1:])
