"""FP4 encoders (paper Fig. 7a/7g, rtl/src/fp4_encoder.v): a scaled integer in, a 4-bit code out, by table.

The quantizer's scale pass maps each value to t = round(12 x / max|x|) in [-12, 12] (E2M1 values times 2 are
integers: {0, 1, 2, 3, 4, 6, 8, 12}). The table then maps t to the code of the nearest E2M1 value t / 2; the
integers 5, 7, 10 (and negatives) lie halfway between two values and follow the tie rule. For DFQ, negatives
are scaled to t in [-7, 0] (Table I's E1M2, bias 0: values 0.5 * code, every integer exact) and positives to
[0, 12] (E2M1).
"""

from __future__ import annotations

import functools

import torch

from ..formats import DFQ_FP4, FP4_E2M1
from ..quant import round_to_format

E2M1_RANGE = 12  # max of E2M1 (6) times 2
E1M2_RANGE = 7  # max of Table I's E1M2 (3.5) times 2
LATENCY = 1  # edges from t to the code (registered output)


@functools.cache
def _table(dual: bool, tie: str) -> tuple[int, ...]:
    low = -E1M2_RANGE if dual else -E2M1_RANGE
    fmt = DFQ_FP4 if dual else FP4_E2M1
    t = torch.arange(low, E2M1_RANGE + 1, dtype=torch.float32)
    return tuple(fmt.encode(round_to_format(t / 2, fmt, tie)).tolist())


def e2m1_encoder_table(tie: str = "even") -> list[int]:
    """Code for every address t + 12, t in -12..12 (25 entries)."""
    return list(_table(False, tie))


def dfq_encoder_table(tie: str = "even") -> list[int]:
    """Code for every address t + 7, t in -7..12: E1M2 below zero, E2M1 above (20 entries)."""
    return list(_table(True, tie))


def encode_scaled(t: int, *, dual: bool = False, tie: str = "even") -> int:
    """What the encoder outputs for one scaled integer; out-of-range inputs saturate to the table's ends."""
    low = -E1M2_RANGE if dual else -E2M1_RANGE
    return _table(dual, tie)[min(max(t, low), E2M1_RANGE) - low]
