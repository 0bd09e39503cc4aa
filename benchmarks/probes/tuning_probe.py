"""Probe: does inductor's tile tuning lift the compiled quantizer on bf16 input? The same arithmetic compiled
with other options; GPU time by CUDA events against a clone, and bits against the default options' kernel.

    PYTHONPATH=src python benchmarks/probes/tuning_probe.py

Run once on an H200 (2026-12-02, torch 2.11; the script was tidied for lint afterwards, with the same
variants, checks and timings); its output is ``results/probes/tuning_probe_cuda.txt``.
"""

import json
import sys
import time

import torch
import triton

import fpqvar.quant.quantize  # noqa: F401 - the module, not the function the package exports under that name
from fpqvar.quant import PerGroup, PerToken, compiled_fake_quantize

Q = sys.modules["fpqvar.quant.quantize"]
base_options = Q._compile_options
VARIANTS = {"default": {}, "coordinate_descent": {"coordinate_descent_tuning": True},
            "max_autotune_pointwise": {"max_autotune_pointwise": True},
            "both": {"coordinate_descent_tuning": True, "max_autotune_pointwise": True}}
CASES = [("fp4_e2m1", PerGroup(128), torch.bfloat16), ("dfq_e1m2neg_e2m1pos", PerGroup(128), torch.bfloat16),
         ("fp6_e2m3", PerToken(), torch.bfloat16), ("fp4_e2m1", PerGroup(128), torch.float32)]
N = 1 << 28
xs = {d: torch.randn(N // 1024, 1024, device="cuda").to(d) for d in (torch.bfloat16, torch.float32)}
copy = {str(d): triton.testing.do_bench(lambda x=x: x.clone()) for d, x in xs.items()}
reference = {}
out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(), "copy_ms": copy, "variants": {}}
for variant, extra in VARIANTS.items():
    Q._compile_options = lambda extra=extra: base_options() | extra
    Q._compiled_fake_quantize.cache_clear()
    torch._dynamo.reset()
    rows = {}
    for fmt, granularity, dtype in CASES:
        start = time.time()
        y = compiled_fake_quantize(xs[dtype], fmt, granularity)
        compile_seconds = time.time() - start
        key = f"{fmt}/{granularity}/{str(dtype)[6:]}"
        if variant == "default":
            reference[key] = y
        integer = torch.int16 if dtype == torch.bfloat16 else torch.int32
        same = torch.equal(y.view(integer), reference[key].view(integer))
        ms = triton.testing.do_bench(lambda fmt=fmt, granularity=granularity, dtype=dtype: compiled_fake_quantize(xs[dtype], fmt, granularity))
        rows[key] = {"ms": round(ms, 4), "vs_copy": round(copy[str(dtype)] / ms, 3), "same_bits_as_default": same,
                     "compile_s": round(compile_seconds, 1)}
    out["variants"][variant] = rows
    print(variant, json.dumps(rows), flush=True)
print(json.dumps(out))
