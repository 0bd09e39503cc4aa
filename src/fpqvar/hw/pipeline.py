"""The two-level pipeline of the paper's Sec. IV-D (Fig. 8): bit-exact models of ght and linear_tile, and the
cycle counts of every unit as the RTL has them (each one checked against simulation by the cocotb tests).

Cycle conventions: *latency* is the number of clock edges from the one that takes a beat (counted as 1) to the
one after which its result is valid, with the output always ready; a *tile* of B input beats, offered back to
back, takes B + latency edges from the one taking its first beat to the one handing its result over.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .fht import fht
from .gemm import gemm
from .quantizer import RECIPROCAL_INDEX_BITS, quantize_group

LATENCY = {
    "fp4_lut_multiplier": 1,
    "fp4_encoder": 1,
    "fp4_scale_pass": 2,  # maxima; exponent and reciprocal look-up
    "fp4_quantizer": 4,  # scale pass 2, scaling multiply 1, encoder 1
    "fp4_gemm": 5,  # products and lane sums, group sum, x activation scale, x weight scale, accumulate
}


def fht_latency(log2n: int) -> int:
    return log2n  # one registered butterfly stage per bit


def linear_tile_latency(log2n: int) -> int:
    """ght, then the quantizer, then the GEMM unit: latencies add, every hand-over being registered."""
    return fht_latency(log2n) + LATENCY["fp4_quantizer"] + LATENCY["fp4_gemm"]


def linear_tile_cycles(groups: int, log2n: int, sequential: bool = False) -> int:
    """One tile of ``groups`` beats. Pipelined: groups + latency. Sequential: each of the three steps takes all
    ``groups`` beats before the next starts (two store-and-forward FIFOs, each adding one registered read)."""
    if groups < 1:
        raise ValueError(f"a tile has at least one group, got {groups}")
    if sequential:
        return 3 * groups + linear_tile_latency(log2n) + 2
    return groups + linear_tile_latency(log2n)


def gemm_job_cycles(beats: int) -> int:
    """One fp4_gemm job (tile) of ``beats`` activation beats."""
    return beats + LATENCY["fp4_gemm"]


@dataclass(frozen=True)
class Block:
    """One block's jobs on the FMU: FC2 on the DFQ unit, the next block's ada_lin on the FP4 unit (beats each)."""

    fc2_beats: int
    ada_lin_beats: int


def overlap_cycles(blocks: list[Block], overlap: bool) -> int:
    """Edges from the first beat of the first block to the last result of the last, as fmu_overlap_controller
    orders them. Sequential: ada_lin's first beat goes one edge after FC2's result leaves. Overlapped: both
    at once. The next block starts one edge after this block's last result."""
    total = 0
    for block in blocks:
        fc2, ada_lin = gemm_job_cycles(block.fc2_beats), gemm_job_cycles(block.ada_lin_beats)
        total += max(fc2, ada_lin) if overlap else fc2 + ada_lin
    return total


def ght(x: torch.Tensor, log2n: int) -> torch.Tensor:
    """What the ght unit outputs for integer tokens x (..., C): the FHT of every group of 2**log2n channels."""
    x = torch.as_tensor(x).to(torch.int64)
    n = 1 << log2n
    if x.shape[-1] % n:
        raise ValueError(f"the channel count {x.shape[-1]} is not a multiple of the GHT group size {n}")
    return fht(x.reshape(*x.shape[:-1], -1, n)).reshape(x.shape)


def linear_tile(
    x: torch.Tensor,
    weight_codes: torch.Tensor,
    weight_scale: torch.Tensor,
    log2n: int,
    width: int,
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
    codes, (maxima,) = quantize_group(transformed, False, tie, index_bits)
    return gemm(codes.reshape(x.shape), maxima.squeeze(-1), weight_codes, weight_scale, False, n, None,
                width + log2n, weight_scale_width, out_width)
