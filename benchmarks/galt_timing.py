"""GALT (paper Alg. 3) wall time at VAR-d30 scale with random weights and activations, one GPU.

    python benchmarks/galt_timing.py [--blocks 30] [--epochs 50] [--samples 100]

30 blocks x (mat_qkv 5760x1920, fc1 7680x1920), 10 steps of calibration tensors (2 * samples, L_k, 1920) with
a few outlier channels, FP4-E2M1 per group of 128 on both operands, GHT, AdamW lr 0.01. The paper reports 50
minutes for d30 on one GPU; target: under 10 minutes on one H100/H200.
"""

from __future__ import annotations

import argparse
import time

import torch
from _report import write_result

from fpqvar.methods.galt import learn_lambda
from fpqvar.methods.layers import OperandQuant
from fpqvar.model.config import PATCH_NUMS_256
from fpqvar.quant import PerGroup
from fpqvar.rotation import orthogonal_hadamard


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    device, C = torch.device("cuda"), 1920
    torch.backends.cuda.matmul.allow_tf32 = True
    g = torch.Generator(device=device).manual_seed(0)
    channel_scale = torch.ones(C, device=device)
    channel_scale[torch.randperm(C, device=device, generator=g)[:20]] = 20.0
    steps = [torch.randn(2 * args.samples, pn * pn, C, device=device, generator=g) * channel_scale for pn in PATCH_NUMS_256]
    rotation = orthogonal_hadamard(128).to(device)
    fp4 = OperandQuant("fp4_e2m1", PerGroup(128))
    curves, start = {}, time.perf_counter()
    for block in range(args.blocks):
        for kind, rows in (("attn.mat_qkv", 3 * C), ("ffn.fc1", 4 * C)):
            weight = torch.randn(rows, C, device=device, generator=g) * C**-0.5
            _, curve = learn_lambda(steps, weight, rotation, fp4, fp4, epochs=args.epochs, lr=0.01)
            curves[f"blocks.{block}.{kind}"] = [round(v, 8) for v in curve]
        print(f"block {block}: {time.perf_counter() - start:.1f} s so far", flush=True)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(f"GALT for {args.blocks} blocks x 2 layers x {len(steps)} steps x {args.epochs} epochs: {seconds / 60:.2f} min")
    first = curves["blocks.0.attn.mat_qkv"]
    print(f"block 0 mat_qkv loss {first[0]:.3e} -> {first[-1]:.3e} ({first[0] / first[-1]:.2f}x)")
    path = write_result("galt_timing", device, {
        "blocks": args.blocks, "epochs": args.epochs, "samples": args.samples, "minutes": round(seconds / 60, 3),
        "target_minutes": 10, "paper_minutes": 50, "loss_curves": {k: v for k, v in curves.items() if k.startswith("blocks.0.")},
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
