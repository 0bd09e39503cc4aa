"""The first-level pipeline (paper Fig. 8b-c; rtl/src/linear_tile.v): one linear-layer tile through the GHT unit,
the fixed-point quantizer and the FP4 GEMM unit, group by group (or each step whole before the next).

Cycle conventions: *latency* is the number of clock edges from the one that takes a beat (counted as 1) to the
one after which its result is valid, with the output always ready; a *tile* of B input beats, offered back to
back, takes B + latency edges from the one taking its first beat to the one handing its result over.
"""

from __future__ import annotations

import torch

from . import fp4_gemm, fp4_quantizer
from .fp4_gemm import gemm
from .fp4_quantizer import quantize_group
from .fp4_scale_pass import RECIPROCAL_INDEX_BITS
from .ght import ght, ght_latency


def linear_tile_latency(log2n: int) -> int:
    """ght, then the quantizer, then the GEMM unit: latencies add, every hand-over being registered."""
    return ght_latency(log2n) + fp4_quantizer.LATENCY + fp4_gemm.LATENCY


def linear_tile_cycles(groups: int, log2n: int, *, sequential: bool = False) -> int:
    """One tile of ``groups`` beats. Pipelined: groups + latency. Sequential: each of the three steps takes all
    ``groups`` beats before the next starts (two store-and-forward FIFOs, each adding one registered read)."""
    if groups < 1:
        raise ValueError(f"a tile has at least one group, got {groups}")
    if sequential:
        return 3 * groups + linear_tile_latency(log2n) + 2
    return groups + linear_tile_latency(log2n)


def linear_tile(
    x: torch.Tensor,
    weight_codes: torch.Tensor,
    weight_scale: torch.Tensor,
    log2n: int,
    width: int,
    *,
    tie: str = "even",
    index_bits: int = RECIPROCAL_INDEX_BITS,
    weight_scale_width: int = 16,
    out_width: int = 64,
) -> list[list[int]]:
    """What linear_tile outputs for tokens x (rows, C) of signed ``width``-bit integers, E2M1 weight codes
    (cols, C) and weight scales (cols, C / 2**log2n): GHT, the fixed-point quantizer per group, fp4_gemm."""
    x = torch.as_tensor(x).to(torch.int64)
    if x.dim() != 2:
        raise ValueError(f"x must be (rows, channels), got shape {tuple(x.shape)}")
    if x.numel() and (int(x.min()) < -(2 ** (width - 1)) or int(x.max()) >= 2 ** (width - 1)):
        raise ValueError(f"x must be signed {width}-bit integers")
    n = 1 << log2n
    transformed = ght(x, log2n).reshape(x.shape[0], -1, n)
    codes, (maxima,) = quantize_group(transformed, dual=False, tie=tie, index_bits=index_bits)
    return gemm(codes.reshape(x.shape), maxima.squeeze(-1), weight_codes, weight_scale, dual=False, group=n,
                scale_width=width + log2n, weight_scale_width=weight_scale_width, out_width=out_width)
