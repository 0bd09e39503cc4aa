"""The FP4 GEMM unit's model (fpqvar.hw.fp4_gemm) against exact arithmetic and the software quantized matmul."""

from fractions import Fraction

import pytest
import torch

from fpqvar.formats import DFQ_FP4, FP4_E2M1
from fpqvar.hw import contribution_width, gemm, gemm_report, output_unit, weight_scale_fixed_point
from fpqvar.quant import PerGroup, fake_quantize, quantize

SMALL = {"group": 8, "scale_width": 12, "weight_scale_width": 8}  # the widths the edge-case tests build


def _operands(seed, rows=3, cols=4, groups=3, group=8):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randint(0, 16, (rows, groups * group), generator=g),
        torch.randint(0, 2**12, (rows, groups), generator=g),
        torch.randint(0, 2**12, (rows, groups), generator=g),
        torch.randint(0, 16, (cols, groups * group), generator=g),
        torch.randint(0, 2**8, (cols, groups), generator=g),
    )


@pytest.mark.parametrize("dual", [False, True])
def test_result_is_the_exact_product_of_the_dequantized_operands(dual):
    group = 8
    act, act_max, act_max_negative, weight, weight_scale = _operands(0)
    result = gemm(act, act_max, weight, weight_scale, dual=dual, group=group, act_max_negative=act_max_negative,
                  scale_width=12, weight_scale_width=8, out_width=48)
    act_values = (DFQ_FP4 if dual else FP4_E2M1).values_by_code
    for r in range(act.shape[0]):
        for c in range(weight.shape[0]):
            exact = Fraction(0)
            for k in range(act.shape[1]):
                a, g = int(act[r, k]), k // group
                # E2M1 codes stand for value * m / 6, DFQ's E1M2 negatives for value * m- / 3.5
                scale = Fraction(int(act_max_negative[r, g]) * 2, 7) if dual and a >= 8 else Fraction(int(act_max[r, g]), 6)
                w = Fraction(FP4_E2M1.values_by_code[int(weight[c, k])].item()) * int(weight_scale[c, g])
                exact += Fraction(act_values[a].item()) * scale * w
            assert result[r][c] * output_unit(dual=dual) == exact


@pytest.mark.parametrize("dual", [False, True])
def test_software_codes_and_exact_scales_reproduce_the_software_matmul(dual):
    """Fed the software quantizer's own codes and scales (weights built so their scales are integers), the unit
    returns the software's dequantized matmul: all it adds is exact arithmetic. (fake_quantize dequantizes in
    float32, hence the tolerance.)"""
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(4, 256, generator=g) * 1000).round()
    if dual:
        x = torch.nn.functional.gelu(x / 1000).mul(1000).round()
    fmt = DFQ_FP4 if dual else FP4_E2M1
    qx = quantize(x.double(), fmt, PerGroup(128))
    w_codes = torch.randint(0, 16, (5, 256), generator=g)
    w_codes[:, ::128] = 0b0111  # a 6.0 in every group: the group scale is its integer multiplier exactly
    w_scale = torch.randint(1, 200, (5, 2), generator=g)
    w = FP4_E2M1.decode(w_codes) * w_scale.repeat_interleave(128, dim=1)
    assert torch.equal(quantize(w, FP4_E2M1, PerGroup(128)).scale, w_scale.double())
    act_max = (qx.scale * 6).round().long()
    act_max_negative = (qx.negative_scale * 3.5).round().long() if dual else None
    result = gemm(qx.codes.long(), act_max, w_codes, w_scale, dual=dual, group=128, act_max_negative=act_max_negative,
                  scale_width=16, weight_scale_width=8, out_width=56)
    hardware = torch.tensor([[float(v * output_unit(dual=dual)) for v in row] for row in result], dtype=torch.float64)
    xq, wq = fake_quantize(x.double(), fmt, PerGroup(128)), fake_quantize(w, FP4_E2M1, PerGroup(128))
    # each dequantized operand carries one float32 rounding (relative 2**-24): bound the sum term by term
    tolerance = 2.0**-22 * (xq.abs() @ wq.abs().T)
    assert bool(((hardware - xq @ wq.T).abs() <= tolerance).all())


@pytest.mark.parametrize("dual", [False, True])
def test_hardware_path_error_against_software(dual):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(16, 512, generator=g)
    if dual:
        x = torch.nn.functional.gelu(x)
    x = (x * 3000).round().long()
    w = torch.randn(8, 512, generator=g)
    report = gemm_report(x, w, dual=dual)
    # the hardware differs from the software only through the quantizer's codes (one grid step, a few per cent)
    # and the 16-bit weight scales; its error against the unquantized product stays close to the software's
    assert 0 < report["activation_code_mismatch_rate"] < 0.1
    assert 0 < report["relative_error_vs_software"] < 0.25
    assert report["relative_error_vs_unquantized"] < 1.15 * report["software_relative_error_vs_unquantized"]


def test_weight_scales_in_fixed_point():
    scale = torch.tensor([3.0e-3, 1.7e-2, 2.5e-5])
    ints, unit = weight_scale_fixed_point(scale, 16)
    assert int(ints.max()) < 2**16 and int(ints.max()) >= 2**15  # the largest scale uses the top bit
    assert float(((ints * unit - scale).abs() / scale)[1]) < 2**-16


def test_width_and_overflow_are_checked():
    act, act_max, act_max_negative, weight, weight_scale = _operands(3)
    width = contribution_width(8, 12, 8)
    with pytest.raises(ValueError, match="narrower"):
        gemm(act, act_max, weight, weight_scale, dual=False, **SMALL, out_width=width - 1)
    full = torch.full_like(act, 0b0111)
    top = torch.full_like(act_max, 2**12 - 1)
    with pytest.raises(OverflowError):  # 3 groups of the largest contribution need 2 bits of headroom
        gemm(full, top, torch.full_like(weight, 0b0111), torch.full_like(weight_scale, 255), dual=False, **SMALL, out_width=width)
    gemm(full, top, torch.full_like(weight, 0b0111), torch.full_like(weight_scale, 255), dual=False, **SMALL, out_width=width + 2)


def test_bad_operands_are_refused():
    act, act_max, act_max_negative, weight, weight_scale = _operands(4)
    with pytest.raises(ValueError, match="multiple of the group size"):
        gemm(act[:, :12], act_max, weight[:, :12], weight_scale, dual=False, **SMALL, out_width=48)
    with pytest.raises(ValueError, match="act_max must lie"):
        gemm(act, act_max + 2**12, weight, weight_scale, dual=False, **SMALL, out_width=48)
    with pytest.raises(ValueError, match="act_max_negative"):
        gemm(act, act_max, weight, weight_scale, dual=True, **SMALL, out_width=48)
