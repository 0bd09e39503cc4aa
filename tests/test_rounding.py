"""Closed-form rounding against exact references: every fp16 and bf16 value, float32 values on and around every
grid midpoint of every format, signed zeros as bit patterns."""

import math

import pytest
import torch
from nearest_grid_reference import round_exact, round_reference

from fpqvar.formats import (
    AFPQ_FP4,
    DFQ_FP4,
    DFQ_FP6,
    FORMATS,
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
    dual_format,
)
from fpqvar.quant import TIES, round_to_format, round_to_integer

ALL_FP16 = torch.arange(2**16, dtype=torch.int32).to(torch.int16).view(torch.float16)
ALL_BF16 = torch.arange(2**16, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)

# Alg. 2 searches every pair of FP4 formats for the two DFQ halves, mantissa-less E3M0 included.
E3M0_HALVES = [dual_format(FP4_E3M0, FP4_E2M1), dual_format(FP4_E1M2, FP4_E3M0)]
EXHAUSTIVE = [FP4_E1M2, FP4_E2M1, FP4_E3M0, FP6_E2M3, FP6_E3M2, DFQ_FP4, DFQ_FP6, AFPQ_FP4, INT4, INT6_ASYM, *E3M0_HALVES]
EVERY_FORMAT = [*FORMATS.values(), *E3M0_HALVES]


def _bits(values: torch.Tensor) -> torch.Tensor:
    """float32 bit patterns (so -0.0 and +0.0 differ)."""
    return values.to(torch.float32).view(torch.int32)


def _assert_same_bits(y, ours, reference):
    mismatch = _bits(ours) != _bits(reference)
    assert not bool(mismatch.any()), (
        f"{int(mismatch.sum())} mismatches, e.g. y={y.reshape(-1)[mismatch][:4].tolist()} "
        f"ours={ours[mismatch][:4].tolist()} reference={reference[mismatch][:4].tolist()}"
    )


@pytest.mark.parametrize("tie", TIES)
@pytest.mark.parametrize("fmt", EXHAUSTIVE, ids=lambda f: f.name)
def test_every_fp16_value(fmt, tie):
    """Against brute-force search over the grid (the definition), zeros +0.0."""
    reference = round_reference(ALL_FP16, fmt, tie) + 0.0
    _assert_same_bits(ALL_FP16, round_to_format(ALL_FP16, fmt, tie), reference)
    # the midpoint reference used below agrees with the brute-force definition
    _assert_same_bits(ALL_FP16, round_exact(ALL_FP16, fmt, tie), reference)


@pytest.mark.parametrize("tie", TIES)
@pytest.mark.parametrize("fmt", EVERY_FORMAT, ids=lambda f: f.name)
def test_every_bf16_value(fmt, tie):
    _assert_same_bits(ALL_BF16, round_to_format(ALL_BF16, fmt, tie), round_exact(ALL_BF16, fmt, tie))


def _float32_neighbours(points: torch.Tensor, count: int = 3) -> torch.Tensor:
    """Each point (rounded to float32) and its ``count`` float32 neighbours on either side (nextafter)."""
    values = [points.to(torch.float32)]
    for direction in (math.inf, -math.inf):
        step = values[0]
        for _ in range(count):
            step = torch.nextafter(step, torch.full_like(step, direction))
            values.append(step)
    return torch.cat(values)


def _midpoints(fmt) -> torch.Tensor:
    halves = [fmt.negative_grid, fmt.positive_grid] if isinstance(fmt, DualFormat) else [fmt.grid]
    return torch.cat([(g[1:] + g[:-1]) / 2 for g in halves])


@pytest.mark.parametrize("tie", TIES)
@pytest.mark.parametrize("fmt", EVERY_FORMAT, ids=lambda f: f.name)
def test_float32_values_on_and_around_every_midpoint(fmt, tie):
    """Every midpoint (exact in float32), its 3 float32 neighbours on either side, and the same around every grid
    value, the grid ends beyond, 0 and the smallest subnormals: y = 1/2 - 2**-25 grid steps sat here."""
    grid = fmt.grid
    tiny = torch.tensor([0.0, 2.0**-149, -(2.0**-149), 2.0**-126, -(2.0**-126)])
    y = _float32_neighbours(torch.cat([_midpoints(fmt), grid, grid[[0, -1]] * 2, tiny]))
    _assert_same_bits(y, round_to_format(y, fmt, tie), round_exact(y, fmt, tie))


def test_the_sum_that_used_to_round():
    # E2M1 between 0 and 0.5: the float32 just below 0.25 is 0.5 - 2**-25 steps of 0.5: 0, never 0.5.
    y = torch.nextafter(torch.tensor([0.25, -0.25]), torch.tensor([0.0, 0.0]))
    for tie in TIES:
        assert round_to_format(y, FP4_E2M1, tie).tolist() == [0.0, 0.0]
    assert round_to_integer(torch.tensor([0.5 - 2**-25, -(0.5 - 2**-25)]), "up").tolist() == [0.0, 0.0]
    assert round_to_integer(torch.tensor([0.5 - 2**-25, -(0.5 - 2**-25)]), "down").tolist() == [0.0, 0.0]


@pytest.mark.parametrize("tie", TIES)
@pytest.mark.parametrize("fmt", [FP4_E2M1, DFQ_FP4, DFQ_FP6, INT4, FP8_E5M2], ids=lambda f: f.name)
def test_every_zero_is_positive_zero(fmt, tie):
    """Whatever the tie mode and sign: -0.0, tiny values of either sign, ties at the first midpoint, NaN, +-Inf."""
    first = float(fmt.grid[fmt.grid > 0].min()) / 2
    y = torch.tensor([0.0, -0.0, 1e-30, -1e-30, first / 2, -first / 2, first, -first, math.nan, math.inf, -math.inf])
    out = round_to_format(y, fmt, tie)
    zeros = out == 0
    assert bool(zeros[:4].all()) and bool(zeros[-3:].all())
    assert bool((_bits(out[zeros]) == 0).all()), out.tolist()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_output_dtype(dtype):
    assert round_to_format(torch.ones(3, dtype=dtype), FP4_E2M1).dtype == (torch.float64 if dtype == torch.float64 else torch.float32)


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
