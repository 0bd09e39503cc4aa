"""Quantizer throughput (GB/s moved: input read + output written) against plain tensor copies, in one run.

    python benchmarks/quantizer_throughput.py [--device cuda] [--elements 268435456] [--dtype bfloat16]

Eager PyTorch runs each elementwise step as its own kernel; `compiled_fake_quantize` (what the quantized
layers call on CUDA, "compiled" below) runs the whole quantize-dequantize as one kernel: the hand-written Triton
kernels of `fpqvar.quant.fused_kernel` for every format per row, torch.compile's per tensor.
Both are reported, for every tie mode of the FP4 case (the exact ties of issue 12 must not cost speed). The quantizer
returns a new tensor, so two baselines: `copy_` into a preallocated tensor, and `clone`, which allocates
its output as the quantizer does (on CPU, touching fresh pages costs as much as the copy itself).

Two clocks on CUDA: GPU time (CUDA events around back-to-back calls: the kernel's speed, what "memory speed"
means) and the per-call wall time, synchronised around each call (the Python side included). ``us/call`` is the
host time of one call on a (64, 128) input, where the GPU waits for the host.
"""

from __future__ import annotations

import argparse

import torch
from _report import device_seconds, host_seconds_per_call, median_seconds, write_result

from fpqvar.quant import PerGroup, PerToken, compiled_fake_quantize, fake_quantize

CASES = {  # label: format, granularity, tie
    "fp4_e2m1 per-group-128": ("fp4_e2m1", PerGroup(128), "even"),
    "fp4_e2m1 per-group-128 tie up": ("fp4_e2m1", PerGroup(128), "up"),
    "fp4_e2m1 per-group-128 tie down": ("fp4_e2m1", PerGroup(128), "down"),
    "dfq fp4 per-group-128": ("dfq_e1m2neg_e2m1pos", PerGroup(128), "even"),
    "fp6_e2m3 per-token": ("fp6_e2m3", PerToken(), "even"),
    "int8 per-token": ("int8", PerToken(), "even"),
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

    small = x[:64, :128].contiguous()

    def measure(fn) -> dict:
        """GB/s by GPU time and by synchronised wall time per call, and the host microseconds of a small call."""
        return {"GB/s": gbps(device_seconds(lambda: fn(x), device)), "GB/s per call": gbps(median_seconds(lambda: fn(x), device)),
                "us/call": host_seconds_per_call(lambda: fn(small), device) * 1e6}

    baselines = {"copy_ (preallocated)": measure(lambda t: out[: t.shape[0], : t.shape[1]].copy_(t)),
                 "clone (allocating)": measure(lambda t: t.clone())}
    copy, clone = baselines["copy_ (preallocated)"], baselines["clone (allocating)"]
    rows = []

    def add(case: str, mode: str, speed: dict) -> None:
        rows.append({"case": case, "mode": mode, "GB/s": round(speed["GB/s"], 1), "vs copy": round(speed["GB/s"] / copy["GB/s"], 3),
                     "vs clone": round(speed["GB/s"] / clone["GB/s"], 3), "GB/s per call": round(speed["GB/s per call"], 1),
                     "vs copy per call": round(speed["GB/s per call"] / copy["GB/s per call"], 3),
                     "us/call": round(speed["us/call"], 1)})

    for case, speed in baselines.items():
        add(case, "-", speed)
    for label, (fmt, granularity, tie) in CASES.items():
        variants = {"eager": fake_quantize}
        if not args.no_compile and device.type == "cuda":  # elsewhere compiled_fake_quantize is the eager one
            variants["compiled"] = compiled_fake_quantize
        for mode, fn in variants.items():
            add(label, mode, measure(lambda t, fn=fn, fmt=fmt, g=granularity, tie=tie: fn(t, fmt, g, tie)))

    clock = "GPU time" if device.type == "cuda" else "wall time"
    print(f"{'case':<32} {'mode':<9} {clock:>13} {'':>13} {'':>13} {'per call':>20} {'small call':>10}")
    for row in rows:
        print(f"{row['case']:<32} {row['mode']:<9} {row['GB/s']:>8.1f} GB/s  {row['vs copy']:.3f}x copy_  "
              f"{row['vs clone']:.3f}x clone  {row['GB/s per call']:>8.1f} GB/s {row['vs copy per call']:.3f}x  {row['us/call']:>7.1f} us")
    path = write_result(
        f"quantizer_throughput_{args.dtype}", device, {"dtype": args.dtype, "elements": x.numel(), "shape": list(x.shape), "rows": rows}
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
