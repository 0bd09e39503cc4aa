"""FP4 LUT multiplier (paper Sec. IV-D, Fig. 7): two 4-bit codes form an 8-bit address into a product table.

The paper stores products as FP8 and converts them to INT32 for accumulation. Every product here is
a multiple of 1/4 (E2M1 and Table I's E1M2 values are multiples of 1/2), but not every one is exact in
FP8 E4M3 (e.g. 3.5 x 3 = 10.5 needs 4 mantissa bits). So the table holds the exact product as a
signed fixed-point integer with PRODUCT_FRACTION_BITS = 2 fraction bits: product * 4, at most
6 * 6 * 4 = 144 in magnitude (E2M1's largest value is 6; E1M2's, 3.5, gives at most 84), 9 bits signed.
Accumulation in INT32 is then exact.

Weights are always E2M1. Activations are E2M1 (standard GEMM) or, with ``dual=True``, the DFQ format:
codes with the sign bit set are E1M2 (Table I, bias 0), the others E2M1.
"""

from __future__ import annotations

import torch

from ..formats import DFQ_FP4, FP4_E2M1

PRODUCT_FRACTION_BITS = 2
LATENCY = 1  # edges from the codes to the product (registered output)


def lut_multiplier_table(*, dual: bool = False) -> torch.Tensor:
    """The 256-entry table: entry ``(activation_code << 4) | weight_code`` is product * 4 (int64)."""
    activation = (DFQ_FP4 if dual else FP4_E2M1).values_by_code
    weight = FP4_E2M1.values_by_code
    products = activation[:, None] * weight[None, :] * 2**PRODUCT_FRACTION_BITS
    exact = products.round()
    assert torch.equal(exact, products), "every FP4 x FP4 product is a multiple of 1/4"
    return exact.to(torch.int64).reshape(256)


def lut_product(activation_code: int, weight_code: int, *, dual: bool = False) -> int:
    """What the multiplier outputs for one pair of codes: the product times 4."""
    return int(lut_multiplier_table(dual=dual)[(activation_code << 4) | weight_code])
