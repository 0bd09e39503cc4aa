"""The fixed-point FP4 quantizer model (scale pass + encode pass) against the software quantizer."""

import pytest
import torch

from fpqvar.formats import DFQ_FP4, FP4_E2M1
from fpqvar.hw import (
    dequantize_group,
    mismatch_report,
    quantize_group,
    reciprocal_error_bound,
    reciprocal_fraction_bits,
    reciprocal_table,
    scale_pass,
    scale_to_table,
)
from fpqvar.quant import PerGroup, fake_quantize, quantize


def _groups(seed=0, dual=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 128, generator=g) * 3000
    if dual:
        x = torch.nn.functional.gelu(x / 3000) * 3000
    return x.round().long()


@pytest.mark.parametrize("dual", [False, True])
@pytest.mark.parametrize("tie", ["even", "up"])
def test_hardware_differs_from_round_to_nearest_only_at_ties(dual, tie):
    x = _groups(dual=dual)
    report = mismatch_report(x, dual=dual, tie=tie)
    assert report["mismatches"] > 0 and report["max_grid_steps_apart"] == 1
    fmt = DFQ_FP4 if dual else FP4_E2M1
    codes, maxima = quantize_group(x, dual=dual, tie=tie)
    hardware = fmt.decode(codes)
    software = fmt.decode(quantize(x.double(), fmt, PerGroup(128), tie).codes.long())
    differ = hardware != software
    # r = R x / m in the table's units (R = 12 for E2M1, 7 for DFQ's E1M2 negatives)
    if dual:
        r = torch.where(x > 0, 12 * x.double() / maxima[1], 7 * x.double() / maxima[0])
        bound = torch.where(x > 0, reciprocal_error_bound(12), reciprocal_error_bound(7))
    else:
        r = 12 * x.double() / maxima[0]
        bound = torch.full_like(r, reciprocal_error_bound(12))
    # Source 1: the table sees the integer t = round(r); t = 5, 7, 10 (2.5, 3.5, 5.0 in E2M1) take the table's
    # tie entry although r was nearer one side (E1M2 negatives are exact integers: no such case).
    table_tie = torch.isin(r.round().abs(), torch.tensor([5.0, 7.0, 10.0], dtype=torch.float64))
    if dual:
        table_tie &= x > 0
    # Source 2: r within the table reciprocal's error of a half: the hardware's t can land on either side, and
    # at an exact half it rounds up where the software breaks the tie by code parity or direction.
    near_half = ((r.abs() - r.abs().floor()) - 0.5).abs() <= bound
    assert bool((table_tie | near_half)[differ].all())
    # and the reciprocal's share is small: without source 1 almost nothing is left
    assert int((differ & ~table_tie).sum()) < 0.02 * x.numel()


@pytest.mark.parametrize("range_", [12, 7])
def test_reciprocal_table_is_within_its_error_bound_for_every_16_bit_maximum(range_):
    m = torch.arange(1, 2**16 + 1)[:, None]
    # R = 12: the E2M1 (absmax) side; R = 7: the DFQ negative side, for groups of negatives
    sign, side, dual = (1, "positive", False) if range_ == 12 else (-1, "negative", True)
    scale = scale_pass(sign * m, dual=dual)[side]
    shift = reciprocal_fraction_bits() + scale.exponent
    for x in (m, m // 3, m // 2 + 1):  # |x| <= m: the extremes and values in between
        exact = range_ * x.double() / m.double()
        scaled = x.double() * scale.reciprocal.double() / 2.0 ** shift.double()
        assert float((scaled - exact).abs().max()) <= reciprocal_error_bound(range_)
    # the maximum always lands on the top of the table: t = R exactly
    assert bool((scale_to_table(sign * m, dual=dual) == sign * range_).all())


def test_reciprocal_table_entries():
    table = reciprocal_table(12)
    assert len(table) == 2**8 + 1
    assert table[0] == 12 * 2**reciprocal_fraction_bits() and table[-1] == 6 * 2**reciprocal_fraction_bits()
    assert list(table) == sorted(table, reverse=True)


def test_scale_pass_maxima_are_the_software_scales():
    x = _groups(seed=2)
    m = scale_pass(x)["positive"].max
    # the software's scale is max / max_value, computed the same way from the hardware's exact maximum
    assert torch.equal(quantize(x.double(), FP4_E2M1, PerGroup(128)).scale, m.double() / 6)
    y = _groups(seed=3, dual=True)
    scales = scale_pass(y, dual=True)
    q = quantize(y.double(), DFQ_FP4, PerGroup(128))
    assert torch.equal(q.scale, scales["positive"].max.double() / 6)
    assert torch.equal(q.negative_scale, scales["negative"].max.double() / 3.5)


def test_all_zero_group_quantizes_to_zero():
    codes, (m,) = quantize_group(torch.zeros(2, 8, dtype=torch.int64))
    assert not codes.any() and not m.any()
    assert not scale_pass(torch.zeros(1, 8, dtype=torch.int64))["positive"].reciprocal.any()


@pytest.mark.parametrize("index_bits", [1, 11])
def test_unsupported_table_sizes_are_refused(index_bits):
    with pytest.raises(ValueError, match="index_bits"):
        reciprocal_table(12, index_bits)


def test_dequantized_group_is_within_one_step_of_software_fake_quantization():
    x = _groups(seed=1)
    codes, (m,) = quantize_group(x)
    hardware = dequantize_group(codes, (m,))
    software = fake_quantize(x.double(), FP4_E2M1, PerGroup(128))
    assert torch.equal(x.abs().amax(-1, keepdim=True), m)
    # the widest E2M1 step is 2 (4 -> 6), in units of m / 6
    assert bool(((hardware - software).abs() <= 2 * m.double() / 6 * (1 + 1e-9)).all())  # float64 rounding of m / 6
