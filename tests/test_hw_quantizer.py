"""The fixed-point FP4 quantizer model (scale pass + encode pass) against the software quantizer."""

import pytest
import torch

from fpqvar.formats import DFQ_FP4, FP4_E2M1
from fpqvar.hw import dequantize_group, mismatch_report, quantize_group
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
    codes, maxima = quantize_group(x, dual, tie)
    hardware = fmt.decode(codes)
    software = fmt.decode(quantize(x.double(), fmt, PerGroup(128), tie).codes.long())
    differ = hardware != software
    # r = R x / m in the table's units (R = 12 for E2M1, 7 for DFQ's E1M2 negatives)
    if dual:
        r = torch.where(x > 0, 12 * x.double() / maxima[1], 7 * x.double() / maxima[0])
    else:
        r = 12 * x.double() / maxima[0]
    # Source 1: the table sees the integer t = round(r); t = 5, 7, 10 (2.5, 3.5, 5.0 in E2M1) take the table's
    # tie entry although r was nearer one side (E1M2 negatives are exact integers: no such case).
    table_tie = torch.isin(r.round().abs(), torch.tensor([5.0, 7.0, 10.0], dtype=torch.float64))
    if dual:
        table_tie &= x > 0
    # Source 2: r itself at (or within the truncated reciprocal's error of) a half: the hardware rounds it
    # half up, the software breaks the tie by code parity or direction.
    near_half = ((r.abs() - r.abs().floor()) - 0.5).abs() < 1e-5
    assert bool((table_tie | near_half)[differ].all())


def test_dequantized_group_is_within_one_step_of_software_fake_quantization():
    x = _groups(seed=1)
    codes, (m,) = quantize_group(x)
    hardware = dequantize_group(codes, (m,))
    software = fake_quantize(x.double(), FP4_E2M1, PerGroup(128))
    assert torch.equal(x.abs().amax(-1, keepdim=True), m)
    # the widest E2M1 step is 2 (4 -> 6), in units of m / 6
    assert bool(((hardware - software).abs() <= 2 * m.double() / 6 * (1 + 1e-9)).all())  # float64 rounding of m / 6
