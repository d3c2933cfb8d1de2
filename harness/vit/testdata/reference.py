"""Reference logits for vitbench's ViT from an implementation nobody here wrote.

usage: reference.py OUTDIR

Writes, for a few small configurations, a checkpoint (torch.save of the
state dict), an input batch and the eval-mode logits as .npy files, plus
cases.json describing them. torchvision's VisionTransformer is the
reference for torchvision naming; for timm naming, a plain PyTorch module
written to timm's definition (vision_transformer.py), with DeiT's
distillation token and head averaging.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.vision_transformer import VisionTransformer


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        # Indexed rather than unpacked, so that torch.fx can trace it
        # (scripts/bench_torch.py --precision int8 quantizes with FX).
        B, N, C = x.shape[0], x.shape[1], x.shape[2]
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, img, patch, chans, dim):
        super().__init__()
        self.proj = nn.Conv2d(chans, dim, patch, patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class TimmViT(nn.Module):
    def __init__(self, img, patch, chans, classes, dim, depth, heads, mlp_ratio, distilled):
        super().__init__()
        self.patch_embed = PatchEmbed(img, patch, chans, dim)
        n = (img // patch) ** 2
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.distilled = distilled
        if distilled:
            self.dist_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, n + (2 if distilled else 1), dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)
        if distilled:
            self.head_dist = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x)
        toks = [self.cls_token.expand(x.shape[0], -1, -1)]
        if self.distilled:
            toks.append(self.dist_token.expand(x.shape[0], -1, -1))
        x = torch.cat(toks + [x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        if self.distilled:
            return (self.head(x[:, 0]) + self.head_dist(x[:, 1])) / 2
        return self.head(x[:, 0])


def randomize(model):
    # Non-trivial values everywhere, LayerNorm and biases included.
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.1)


def main(out):
    torch.manual_seed(0)
    cases = []
    tv = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4,
                           hidden_dim=64, mlp_dim=128, num_classes=10)
    timm = TimmViT(32, 8, 3, 10, 64, 2, 4, 4.0, False)
    deit = TimmViT(32, 8, 3, 7, 48, 3, 3, 2.0, True)
    for name, model, cfg in [
        ("torchvision", tv, dict(img_size=32, patch_size=8, in_chans=3, num_classes=10, embed_dim=64, depth=2, num_heads=4, mlp_ratio=2.0, distilled=False)),
        ("timm", timm, dict(img_size=32, patch_size=8, in_chans=3, num_classes=10, embed_dim=64, depth=2, num_heads=4, mlp_ratio=4.0, distilled=False)),
        ("deit_distilled", deit, dict(img_size=32, patch_size=8, in_chans=3, num_classes=7, embed_dim=48, depth=3, num_heads=3, mlp_ratio=2.0, distilled=True)),
    ]:
        randomize(model)
        model.eval()
        x = torch.randn(4, 3, 32, 32)
        with torch.no_grad():
            y = model(x)
        ckpt = os.path.join(out, name + ".pth")
        torch.save(model.state_dict(), ckpt)
        np.save(os.path.join(out, name + "-input.npy"), x.numpy())
        np.save(os.path.join(out, name + "-logits.npy"), y.numpy())
        cases.append(dict(name=name, checkpoint=ckpt, config=cfg,
                          input=os.path.join(out, name + "-input.npy"),
                          logits=os.path.join(out, name + "-logits.npy"),
                          params=sum(p.numel() for p in model.parameters())))
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
