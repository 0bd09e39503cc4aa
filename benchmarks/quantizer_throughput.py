"""Quantizer throughput (GB/s moved: input read + output written) against plain tensor copies, in one run.

    python benchmarks/quantizer_throughput.py [--device cuda] [--elements 268435456] [--dtype bfloat16]

Eager PyTorch runs each elementwise step as its own kernel; `compiled_fake_quantize` (what the quantized
layers call on CUDA, "compiled" below) runs the whole quantize-dequantize as one kernel: the hand-written Triton
kernel of `fpqvar.quant.fused_kernel` for grid formats per row, torch.compile's for INT formats and per tensor.
Both are reported, for every tie mode of the FP4 case (the exact ties of issue 12 must not cost speed). The quantizer
returns a new tensor, so two baselines: `copy_` into a preallocated tensor, and `clone`, which allocates
its output as the quantizer does (on CPU, touching fresh pages costs as much as the copy itself).
"""

from __future__ import annotations

import argparse

import torch
from _report import median_seconds, write_result

from fpqvar.quant import PerGroup, PerToken, compiled_fake_quantize, fake_quantize

CASES = {  # label: format, granularity, tie
    "fp4_e2m1 per-group-128": ("fp4_e2m1", PerGroup(128), "even"),
    "fp4_e2m1 per-group-128 tie up": ("fp4_e2m1", PerGroup(128), "up"),
    "fp4_e2m1 per-group-128 tie down": ("fp4_e2m1", PerGroup(128), "down"),
    "dfq fp4 per-group-128": ("dfq_e1m2neg_e2m1pos", PerGroup(128), "even"),
    "fp6_e2m3 per-token": ("fp6_e2m3", PerToken(), "even"),
    "int8_asym per-token": ("int8_asym", PerToken(), "even"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--elements", type=int, default=None, help="default: 2**28 on GPU, 2**24 on CPU")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled variants (CUDA only)")
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    elements = args.elements or (2**28 if device.type == "cuda" else 2**24)
    x = torch.randn(elements // 4096, 4096, device=device, dtype=dtype)
    out = torch.empty_like(x)
    moved = 2 * x.numel() * x.element_size()  # bytes read + bytes written

    def gbps(seconds: float) -> float:
        return moved / seconds / 1e9

    copy = gbps(median_seconds(lambda: out.copy_(x), device))
    clone = gbps(median_seconds(lambda: x.clone(), device))
    rows = [
        {"case": "copy_ (preallocated)", "mode": "-", "GB/s": round(copy, 1), "vs copy": 1.0, "vs clone": round(copy / clone, 3)},
        {"case": "clone (allocating)", "mode": "-", "GB/s": round(clone, 1), "vs copy": round(clone / copy, 3), "vs clone": 1.0},
    ]
    for label, (fmt, granularity, tie) in CASES.items():
        variants = {"eager": fake_quantize}
        if not args.no_compile and device.type == "cuda":  # elsewhere compiled_fake_quantize is the eager one
            variants["compiled"] = compiled_fake_quantize
        for mode, fn in variants.items():
            speed = gbps(median_seconds(lambda fn=fn, fmt=fmt, g=granularity, tie=tie: fn(x, fmt, g, tie), device))
            rows.append({
                "case": label, "mode": mode, "GB/s": round(speed, 1),
                "vs copy": round(speed / copy, 3), "vs clone": round(speed / clone, 3),
            })

    for row in rows:
        print(f"{row['case']:<32} {row['mode']:<9} {row['GB/s']:>8.1f} GB/s  {row['vs copy']:.3f}x copy_  {row['vs clone']:.3f}x clone")
    path = write_result(
        f"quantizer_throughput_{args.dtype}", device, {"dtype": args.dtype, "elements": x.numel(), "shape": list(x.shape), "rows": rows}
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
