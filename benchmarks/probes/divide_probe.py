"""Probe: does the compiled quantizer run faster when x / s is Triton's IEEE float32 division instead of the
float64 product of ``fpqvar.quant.quantize._divide``? Variants of ``_divide`` under torch.compile; bits against
eager on the midpoint sweeps of ``tests/test_quantize.py`` and on random groups, then GPU time by CUDA events.

    PYTHONPATH=src:tests python benchmarks/probes/divide_probe.py

Run once on an H200 (2026-12-02, torch 2.11; the script was tidied for lint afterwards, with the same
variants, checks and timings); its output is ``results/probes/divide_probe_cuda.txt`` (the run
was stopped by its time limit in the third variant; the first two are complete).
"""

import inspect
import json
import sys
import time

import torch
import torch._inductor.config as inductor_config
import torch._inductor.lowering as lowering
import triton
from test_quantize import SWEEP_SCALES, midpoint_sweep
from torch._inductor.utils import run_and_get_code

import fpqvar.quant.quantize  # noqa: F401 - the module, not the function the package exports under that name
from fpqvar.formats import get_format
from fpqvar.quant import Numerics, PerGroup, PerToken, compiled_fake_quantize, fake_quantize

Q = sys.modules["fpqvar.quant.quantize"]
names = inductor_config.get_config_copy()
out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(),
       "has_eager_numerics_division_rounding": "eager_numerics.division_rounding" in names,
       "has_emulate_divison_rounding": "emulate_divison_rounding" in names,
       "has_disable_ftz": "eager_numerics.disable_ftz" in names,
       "addcdiv_lowering_uses_div_rn": hasattr(lowering, "addcdiv") and "div_rn" in inspect.getsource(lowering.addcdiv)}
print(out, flush=True)

original_divide, original_options = Q._divide, Q._compile_options


def divide_plain(numerator, denominator, dtype):
    """x / s as written for a tensor s (a constant divisor keeps the float64 path: inductor makes it a product)."""
    if torch.compiler.is_compiling() and dtype != torch.float64 and isinstance(denominator, torch.Tensor):
        return numerator.to(dtype) / denominator.to(dtype)
    return original_divide(numerator, denominator, dtype)


def options_with_division_rounding():
    options = original_options()
    for name in ("eager_numerics.division_rounding", "emulate_divison_rounding"):
        if name in names:
            options[name] = True
    return options


VARIANTS = {"f64": (original_divide, original_options), "plain_with_flag": (divide_plain, options_with_division_rounding),
            "plain_no_flag": (divide_plain, original_options)}


def use(variant):
    Q._divide, Q._compile_options = VARIANTS[variant]
    Q._compiled_fake_quantize.cache_clear()
    torch._dynamo.reset()


def differing(a, b):
    integer = {2: torch.int16, 4: torch.int32}[a.element_size()]
    return int((a.view(integer) != b.view(integer)).sum())


results = {}
N = 1 << 28
for variant in VARIANTS:
    use(variant)
    record = {"mismatches": {}, "ms": {}}
    start = time.time()
    for name in ("fp4_e2m1", "dfq_e1m2neg_e2m1pos", "fp6_e2m3", "fp4_e3m0", "int8_asym"):
        fmt = get_format(name)
        for dtype in (torch.float32, torch.bfloat16):
            for tie in ("even", "up", "down"):
                numerics, bad = Numerics(tie=tie), 0
                for scale in SWEEP_SCALES[dtype]:
                    x = midpoint_sweep(fmt, dtype, scale).cuda()
                    bad += differing(compiled_fake_quantize(x, fmt, PerGroup(64), numerics), fake_quantize(x, fmt, PerGroup(64), numerics))
                g = torch.Generator(device="cuda").manual_seed(0)
                x = (torch.randn(4096, 1024, device="cuda", generator=g) * torch.rand(4096, 1, device="cuda", generator=g) * 100).to(dtype)
                bad += differing(compiled_fake_quantize(x, fmt, PerGroup(128), numerics), fake_quantize(x, fmt, PerGroup(128), numerics))
                record["mismatches"][f"{name}/{str(dtype)[6:]}/{tie}"] = bad
    record["check_seconds"] = round(time.time() - start, 1)
    for dtype in (torch.bfloat16, torch.float32):
        x = torch.randn(N // 1024, 1024, device="cuda").to(dtype)
        copy = triton.testing.do_bench(lambda x=x: x.clone())
        for name, granularity in (("fp4_e2m1", PerGroup(128)), ("dfq_e1m2neg_e2m1pos", PerGroup(128)), ("fp6_e2m3", PerToken())):
            ms = triton.testing.do_bench(lambda x=x, name=name, granularity=granularity: compiled_fake_quantize(x, name, granularity))
            record["ms"][f"{name}/{str(dtype)[6:]}"] = {"ms": round(ms, 4), "vs_copy": round(copy / ms, 3)}
        del x
    if variant == "plain_with_flag":  # the generated kernel really divides with div_rn
        x = torch.randn(256, 1024, device="cuda").to(torch.bfloat16)
        use(variant)
        _, codes = run_and_get_code(lambda x=x: compiled_fake_quantize(x, "fp4_e2m1", PerGroup(128)))
        code = "\n".join(codes)
        record["generated"] = {"div_rn": code.count("div_rn"), "float64": code.count("float64"), "chars": len(code)}
    results[variant] = record
    print(variant, json.dumps(record), flush=True)
out["variants"] = results
print(json.dumps(out))
