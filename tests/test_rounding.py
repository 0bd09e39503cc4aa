"""Closed-form rounding against brute-force nearest-grid search, over every fp16 value."""

import pytest
import torch
from nearest_grid_reference import round_reference

from fpqvar.formats import (
    AFPQ_FP4,
    DFQ_FP4,
    DFQ_FP6,
    FP4_E1M2,
    FP4_E2M1,
    FP4_E3M0,
    FP6_E2M3,
    FP6_E3M2,
    FP8_E4M3,
    FP8_E5M2,
    INT4,
    INT6_ASYM,
    INT8,
    DualFormat,
)
from fpqvar.quant import TIES, round_to_format

ALL_FP16 = torch.arange(2**16, dtype=torch.int32).to(torch.int16).view(torch.float16)

# Alg. 2 searches every pair of FP4 formats for the two DFQ halves, mantissa-less E3M0 included.
E3M0_HALVES = [DualFormat("e3m0neg_e2m1pos", FP4_E3M0, FP4_E2M1), DualFormat("e1m2neg_e3m0pos", FP4_E1M2, FP4_E3M0)]
EXHAUSTIVE = [FP4_E1M2, FP4_E2M1, FP4_E3M0, FP6_E2M3, FP6_E3M2, DFQ_FP4, DFQ_FP6, AFPQ_FP4, INT4, INT6_ASYM, *E3M0_HALVES]


@pytest.mark.parametrize("tie", TIES)
@pytest.mark.parametrize("fmt", EXHAUSTIVE, ids=lambda f: f.name)
def test_every_fp16_value(fmt, tie):
    ours = round_to_format(ALL_FP16, fmt, tie).to(torch.float64)
    reference = round_reference(ALL_FP16, fmt, tie)
    mismatch = ours != reference
    assert not bool(mismatch.any()), (
        f"{int(mismatch.sum())} mismatches, e.g. y={ALL_FP16[mismatch][:4].tolist()} "
        f"ours={ours[mismatch][:4].tolist()} reference={reference[mismatch][:4].tolist()}"
    )


@pytest.mark.parametrize("tie", TIES)
@pytest.mark.parametrize("fmt", [FP8_E4M3, FP8_E5M2, INT8], ids=lambda f: f.name)
def test_fp8_and_int8_on_midpoints_and_random_values(fmt, tie):
    grid = fmt.grid.to(torch.float32)
    midpoints = (grid[1:] + grid[:-1]) / 2  # exact in float32 for these grids
    scale = float(fmt.max_value)
    y = torch.cat([grid, midpoints, torch.randn(20_000) * scale / 4, torch.tensor([2 * scale, -3 * scale])])
    assert torch.equal(round_to_format(y, fmt, tie).double(), round_reference(y, fmt, tie))


def test_ties_of_the_released_kernel():
    # fpqvar-official-behaviour.md 2.1: E2M1 2.5 -> 3 but -2.5 -> -2; 0.25 -> 0.5 but -0.25 -> 0.
    y = torch.tensor([2.5, -2.5, 0.25, -0.25])
    assert round_to_format(y, FP4_E2M1, "up").tolist() == [3.0, -2.0, 0.5, 0.0]
    assert round_to_format(y, FP4_E2M1, "down").tolist() == [2.0, -3.0, 0.0, -0.5]
    assert round_to_format(y, FP4_E2M1, "even").tolist() == [2.0, -2.0, 0.0, 0.0]
    # FP6 INT-negative half: -0.5 -> 0 with ties up.
    assert round_to_format(torch.tensor([-0.5]), DFQ_FP6, "up").item() == 0.0


def test_no_mantissa_ties_go_to_the_even_code():
    # E3M0 0.75 lies between 0.5 (code 0010) and 1.0 (code 0011): the even code wins.
    assert round_to_format(torch.tensor([0.75, 12.0, 0.125]), FP4_E3M0, "even").tolist() == [0.5, 8.0, 0.0]


def test_non_finite_values_become_zero_and_large_values_saturate():
    y = torch.tensor([float("nan"), float("inf"), -float("inf"), 1e30, -1e30])
    assert round_to_format(y, FP4_E2M1).tolist() == [0.0, 0.0, 0.0, 6.0, -6.0]


def test_bad_tie_is_refused():
    with pytest.raises(ValueError, match="tie must be one of"):
        round_to_format(torch.zeros(1), FP4_E2M1, "nearest")
