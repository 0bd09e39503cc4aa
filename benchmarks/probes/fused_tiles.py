"""Probe: which tile (rows per program, warps) makes the Triton fake quantizer (``fpqvar.quant.fused_kernel``)
fastest? GPU time (``triton.testing.do_bench``) of ``fused_fake_quantize_rows`` per tile against a clone, for
E2M1 and DFQ per group of 128 and E2M3 per token of 4096, bf16 and float32, 2**28 elements; the bits must not
depend on the tile; ``compiled_fake_quantize_vs_copy`` is the default tile through the public call.

    PYTHONPATH=src python benchmarks/probes/fused_tiles.py

Run on an H200 (2026-12-02, torch 2.11, Triton 3.6), three times while the kernel changed; the last run's
output (the kernel as committed, its default tile: 64 bytes per thread, 32 for a dual format) is
``results/probes/fused_tiles_cuda.json``, the basis of ``fused_kernel._BYTES_PER_THREAD``.
"""

import datetime
import json

import torch
import triton

from fpqvar.formats import get_format
from fpqvar.quant import PerGroup, PerToken, compiled_fake_quantize, fused_kernel
from fpqvar.quant.granularity import as_groups

ELEMENTS = 2**28


def main() -> None:
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
           "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "cases": {}}
    for dtype in (torch.bfloat16, torch.float32):
        x = torch.randn(ELEMENTS // 4096, 4096, device="cuda").to(dtype)
        copy = triton.testing.do_bench(lambda x=x: x.clone())
        for name, granularity in (("fp4_e2m1", PerGroup(128)), ("dfq_e1m2neg_e2m1pos", PerGroup(128)),
                                  ("fp6_e2m3", PerToken())):
            fmt, rows = get_format(name), as_groups(x, granularity)
            reference = fused_kernel.fused_fake_quantize_rows(rows, fmt, "even")
            by_tile = {}
            for block_rows in (1, 2) if rows.shape[1] > 128 else (8, 16, 32):
                for warps in (4, 8) if rows.shape[1] > 128 else (2, 4, 8):
                    def run(rows=rows, fmt=fmt, block_rows=block_rows, warps=warps):
                        return fused_kernel.fused_fake_quantize_rows(rows, fmt, "even", block_rows=block_rows,
                                                                     num_warps=warps)
                    assert torch.equal(run(), reference)
                    by_tile[f"rows={block_rows},warps={warps}"] = round(copy / triton.testing.do_bench(run), 3)
            public = copy / triton.testing.do_bench(lambda x=x, name=name, g=granularity: compiled_fake_quantize(x, name, g))
            out["cases"][f"{name}/{str(dtype)[6:]}"] = {"vs_copy_by_tile": by_tile, "best": max(by_tile, key=by_tile.get),
                                                        "compiled_fake_quantize_vs_copy": round(public, 3)}
            print(name, dtype, max(by_tile.values()), round(public, 3), flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
