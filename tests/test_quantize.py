"""Quantizers: worked examples, granularity, real vs fake, properties and errors."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fpqvar.formats import DFQ_FP4, DFQ_FP6, FP4_E2M1, FP6_E2M3, FP6_E3M2, INT4, INT8_ASYM, get_format
from fpqvar.quant import (
    PerChannel,
    PerGroup,
    PerTensor,
    PerToken,
    dequantize,
    fake_quantize,
    fake_quantize_ste,
    quantize,
)

FP32_EPS = torch.finfo(torch.float32).eps


# Worked examples of fpqvar-official-behaviour.md section 2.6 (released CUDA semantics: ties up).
def test_worked_example_e2m1():
    x = torch.tensor([3.0, 1.25, -1.25, 0.1, -0.2, 2.2, -3.0, 0.0])
    out = fake_quantize(x, "fp_e2", PerTensor(), tie="up")
    assert out.tolist() == [3.0, 1.5, -1.0, 0.0, -0.25, 2.0, -3.0, 0.0]


def test_worked_example_dfq_fp4():
    x = torch.tensor([-0.17, -0.085, -0.02, 0.0, 0.05, 0.6, 1.8, -0.1])
    q = quantize(x, "fp_e1m2_neg_e2m1_pos", PerTensor(), tie="up")
    # Table I's E1M2 is the released grid doubled, so the negative levels are doubled too.
    assert (DFQ_FP4.decode(q.codes) / torch.tensor([2, 2, 2, 1, 1, 1, 1, 2])).tolist() == [
        -1.75, -0.75, -0.25, 0, 0, 2, 6, -1.0
    ]
    expected = torch.tensor([-0.17, -0.0728571, -0.0242857, 0, 0, 0.6, 1.8, -0.0971429])
    torch.testing.assert_close(q.dequantize(), expected, atol=1e-6, rtol=0)


def test_worked_example_dfq_fp6():
    x = torch.tensor([-0.17, -0.085, -0.02, 0.0, 0.05, 0.6, 1.8, -0.1])
    out = fake_quantize(x, "fp6_int_neg_e2m3_pos", PerTensor(), tie="up")
    expected = torch.tensor([-0.17, -0.085, -0.02125, 0, 0.06, 0.6, 1.8, -0.10094])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "granularity, shape",
    [(PerTensor(), (1,)), (PerChannel(), (6, 1)), (PerToken(), (6, 1)), (PerGroup(128), (6, 3)), (PerGroup(64), (6, 6))],
)
def test_scale_shapes(granularity, shape):
    q = quantize(torch.randn(6, 384), FP4_E2M1, granularity)
    assert q.scale.shape == shape and q.codes.shape == (6, 384) and q.codes.dtype == torch.uint8


def test_per_group_scales_are_group_absmax():
    x = torch.randn(3, 4, 256)
    q = quantize(x, FP4_E2M1, PerGroup(128))
    expected = x.reshape(3, 4, 2, 128).abs().amax(-1) / 6.0
    assert torch.equal(q.scale, expected)


@pytest.mark.parametrize("fmt", ["fp4_e2m1", "fp4_e1m2", "fp4_e3m0", "fp6_e2m3", "fp6_e3m2", "int4", "int8_asym",
                                 "dfq_e1m2neg_e2m1pos", "dfq_int6neg_e2m3pos"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_real_quantization_dequantizes_to_fake_quantization(fmt, dtype):
    x = (torch.randn(8, 256) * 3).to(dtype)
    q = quantize(x, fmt, PerGroup(128))
    assert torch.equal(dequantize(q), fake_quantize(x, fmt, PerGroup(128)))
    assert dequantize(q).dtype == dtype


@pytest.mark.parametrize("fmt", [FP4_E2M1, FP6_E2M3, FP6_E3M2, INT4, DFQ_FP4, DFQ_FP6])
def test_values_lie_on_grid_times_scale(fmt):
    x = torch.randn(16, 256).double().float()
    q = quantize(x, fmt, PerGroup(128))
    levels = fmt.decode(q.codes).reshape(16, 2, 128)
    assert bool(torch.isin(levels, fmt.grid).all())
    out = fake_quantize(x, fmt, PerGroup(128)).reshape(16, 2, 128)
    if fmt in (DFQ_FP4, DFQ_FP6):
        scale = torch.where(levels > 0, q.scale[..., None], q.negative_scale[..., None])
    else:
        scale = q.scale[..., None]
    assert torch.equal(out, (levels.float() * scale))


def test_dfq_uses_both_scales():
    x = torch.cat([-torch.rand(64) * 0.17, torch.rand(64) * 5.0])
    q = quantize(x, DFQ_FP4, PerTensor())
    assert q.negative_scale.item() == pytest.approx(x.min().abs().item() / 3.5)
    assert q.scale.item() == pytest.approx(x.max().item() / 6.0)
    negative = x <= 0
    single = (fake_quantize(x, FP4_E2M1, PerTensor()) - x)[negative].pow(2).mean()
    dual = (fake_quantize(x, DFQ_FP4, PerTensor()) - x)[negative].pow(2).mean()
    assert dual < single / 100  # the negative half gets its own scale, 0.17/3.5 instead of 5/6


def test_all_zero_groups_nan_and_inf_give_no_nan():
    x = torch.zeros(2, 128)
    x[1, :3] = torch.tensor([float("nan"), float("inf"), 1.0])
    for fmt in (FP4_E2M1, DFQ_FP4, INT4, INT8_ASYM):
        out = fake_quantize(x, fmt, PerGroup(128))
        assert bool(torch.isfinite(out).all()), fmt
        assert out[0].abs().sum() == 0
        assert out[1, :2].tolist() == [0.0, 0.0]  # non-finite inputs quantize to 0
        assert out[1, 2].item() == pytest.approx(1.0, abs=1e-5)  # and do not enter the scale


def test_asymmetric_int_matches_the_released_formula():
    x = torch.tensor([[-0.3, 0.1, 0.7, 1.2, 0.0, 0.45]])
    scale = (1.2 + 0.3) / 255
    zero_point = round(-128 - (-0.3) / scale)
    q = torch.clamp(torch.round(x / scale) + zero_point, -128, 127)
    torch.testing.assert_close(fake_quantize(x, INT8_ASYM, PerToken()), (q - zero_point) * scale)


def test_straight_through_gradient_is_identity():
    x = torch.randn(4, 128, requires_grad=True)
    y = fake_quantize_ste(x, FP4_E2M1)
    assert torch.equal(y, fake_quantize(x.detach(), FP4_E2M1))
    (y * torch.arange(128.0)).sum().backward()
    assert torch.equal(x.grad, torch.arange(128.0).expand(4, 128))


def test_clear_errors():
    with pytest.raises(ValueError, match=r"last dimension \(100\) is not divisible by the group size \(128\)"):
        fake_quantize(torch.randn(4, 100), FP4_E2M1, PerGroup(128))
    with pytest.raises(ValueError, match="unknown number format"):
        fake_quantize(torch.randn(4, 128), "fp4_e4m0")
    with pytest.raises(TypeError, match="floating-point"):
        fake_quantize(torch.ones(4, 128, dtype=torch.int32), FP4_E2M1)
    with pytest.raises(ValueError, match="positive integer"):
        PerGroup(0)


# Property tests. Tensors come from a seed so that hypothesis explores shapes, scales and formats.
formats = st.sampled_from(["fp4_e2m1", "fp4_e1m2", "fp4_e3m0", "fp6_e2m3", "fp6_e3m2", "int4", "int8",
                           "dfq_e1m2neg_e2m1pos", "dfq_int6neg_e2m3pos"])
ties = st.sampled_from(["even", "up", "down"])


def _tensor(seed: int, rows: int, heavy_tail: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 256, generator=g)
    return x / torch.rand(rows, 256, generator=g).clamp(min=0.05) if heavy_tail else x


@settings(max_examples=60, deadline=None, derandomize=True)
@given(fmt=formats, tie=ties, seed=st.integers(0, 2**31), rows=st.integers(1, 4), heavy=st.booleans(),
       power=st.integers(-20, 20))
def test_power_of_two_scale_invariance(fmt, tie, seed, rows, heavy, power):
    x = _tensor(seed, rows, heavy)
    c = 2.0**power  # a power of two rescales every float32 exactly
    assert torch.equal(fake_quantize(x * c, fmt, PerGroup(128), tie), fake_quantize(x, fmt, PerGroup(128), tie) * c)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(fmt=formats, tie=ties, seed=st.integers(0, 2**31), rows=st.integers(1, 4), heavy=st.booleans())
def test_idempotence(fmt, tie, seed, rows, heavy):
    once = fake_quantize(_tensor(seed, rows, heavy), fmt, PerGroup(128), tie)
    twice = fake_quantize(once, fmt, PerGroup(128), tie)
    # The re-derived scale max(q * s) / max can differ from s in its last bit, so the output
    # may move by a few float32 ulps; it never moves to another grid level.
    torch.testing.assert_close(twice, once, rtol=4 * FP32_EPS, atol=0)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(fmt=formats, tie=ties, seed=st.integers(0, 2**31), rows=st.integers(1, 4), heavy=st.booleans())
def test_error_is_at_most_half_the_widest_gap(fmt, tie, seed, rows, heavy):
    fmt = get_format(fmt)
    x = _tensor(seed, rows, heavy)
    q = quantize(x, fmt, PerGroup(128), tie)
    error = (dequantize(q) - x).abs().reshape(rows, 2, 128)
    grid = fmt.grid
    if fmt in (DFQ_FP4, DFQ_FP6):
        neg_gap = (fmt.negative_grid.diff().max() / 2).item()
        pos_gap = (fmt.positive_grid.diff().max() / 2).item()
        bound = torch.where(x.reshape(rows, 2, 128) > 0, pos_gap * q.scale[..., None], neg_gap * q.negative_scale[..., None])
    else:
        bound = (grid.diff().max() / 2).item() * q.scale[..., None]
    assert bool((error <= bound * (1 + 8 * FP32_EPS) + 1e-30).all())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the fused kernels are CUDA-only")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_kernels_equal_eager_quantization(dtype):
    """One compiled kernel per format and row length, the row count dynamic: every shape, the non-contiguous
    and the non-finite included, gives eager mode's bits."""
    from fpqvar.quant import fused_fake_quantize

    torch.manual_seed(0)
    cases = [("dfq_e1m2neg_e2m1pos", PerGroup(128)), ("fp4_e2m1", PerGroup(128)), ("fp6_e2m3", PerToken()),
             ("int8_asym", PerToken()), ("fp6_e2m3", PerChannel()), ("fp4_e2m1", PerTensor())]
    for shape in [(2, 1, 256), (2, 4, 256), (3, 16, 256), (5, 512), (4, 8, 7, 256)]:
        x = (torch.randn(shape, device="cuda") * 3).to(dtype)
        x.view(-1)[:3] = torch.tensor([float("nan"), float("inf"), 0.0])
        for fmt, granularity in cases:
            for t in (x, x.transpose(0, -2) if x.dim() > 2 else x):
                assert torch.equal(fused_fake_quantize(t, fmt, granularity), fake_quantize(t, fmt, granularity)), (shape, fmt)
