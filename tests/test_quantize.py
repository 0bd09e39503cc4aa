"""Quantizers: worked examples, granularity, real vs fake, properties and errors."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from nearest_grid_reference import fake_quantize_reference

from fpqvar.formats import (
    DFQ_FP4,
    DFQ_FP6,
    FORMATS,
    FP4_E1M2,
    FP4_E2M1,
    FP4_E3M0,
    FP6_E2M3,
    FP6_E3M2,
    FP8_E5M2,
    INT4,
    INT8,
    INT8_ASYM,
    DualFormat,
    IntFormat,
    get_format,
)
from fpqvar.quant import (
    TIES,
    Numerics,
    PerChannel,
    PerGroup,
    PerTensor,
    PerToken,
    dequantize,
    fake_quantize,
    fake_quantize_ste,
    quantize,
    scale_shape,
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
    """The fused kernels (Triton for every format per row, torch.compile per tensor; one kernel per format and
    row length, the row count dynamic): every shape, the non-contiguous and the non-finite included,
    and a row length that is not a power of two (1920), gives eager mode's bits."""
    from fpqvar.quant import compiled_fake_quantize

    torch.manual_seed(0)
    cases = [("dfq_e1m2neg_e2m1pos", PerGroup(128)), ("fp4_e2m1", PerGroup(128)), ("fp6_e2m3", PerToken()),
             ("int8_asym", PerToken()), ("int4", PerGroup(128)), ("fp6_e2m3", PerChannel()), ("fp4_e2m1", PerTensor())]
    for shape in [(2, 1, 256), (2, 4, 256), (3, 16, 256), (5, 512), (4, 8, 7, 256), (2, 3, 1920)]:
        x = (torch.randn(shape, device="cuda") * 3).to(dtype)
        x.view(-1)[:3] = torch.tensor([float("nan"), float("inf"), 0.0])
        for fmt, granularity in cases:
            for t in (x, x.transpose(0, -2) if x.dim() > 2 else x):
                assert _same_bits(compiled_fake_quantize(t, fmt, granularity), fake_quantize(t, fmt, granularity)), (shape, fmt)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the fused kernels are CUDA-only")
@pytest.mark.parametrize("tie", TIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_fused_asymmetric_int_on_rows_far_from_zero(dtype, tie):
    """The asymmetric INT kernel where its row statistics matter: rows offset far from 0 (zero points far from
    the grid's middle), all-positive rows in a row length that is not a power of two (the padding must not
    enter min and max), rows under the 1e-5 floor, rows of equal values (beyond the floor's overflow too) and
    non-finite elements: eager CUDA's bits and eager CPU's."""
    from fpqvar.quant import compiled_fake_quantize

    generator = torch.Generator().manual_seed(0)
    base = torch.randn(24, 1920, generator=generator) * torch.rand(24, 1, generator=generator)
    offset = torch.randn(24, 1, generator=generator) * 1000
    largest = torch.finfo(dtype).max
    equal = torch.tensor([0.0, 1e-7, -3.0, 0.01, 1e4, 1e30, -1e33, largest / 3, largest], dtype=torch.float64)
    equal = equal.clamp(-largest, largest)[:, None].expand(-1, 1920).clone()
    equal[::2, 7] *= 0.999  # every other row with a second value (equal to the rest where the dtype rounds it so)
    for x in (base * 1e-3 + offset, base.abs() + 5, base * 1e-9, equal):
        x = x.to(dtype)
        x.view(-1)[:3] = torch.tensor([float("nan"), float("inf"), -float("inf")], dtype=dtype)
        for granularity in (PerGroup(96), PerGroup(128), PerToken()):
            for fmt in (INT8_ASYM, "int4_asym"):
                fused = compiled_fake_quantize(x.cuda(), fmt, granularity, tie)
                assert _same_bits(fused, fake_quantize(x.cuda(), fmt, granularity, tie)), (fmt, granularity)
                assert _same_bits(fused.cpu(), fake_quantize(x, fmt, granularity, tie)), (fmt, granularity)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the fused kernels are CUDA-only")
@pytest.mark.parametrize("fmt", ["fp4_e2m1", "int8_asym"])
def test_fused_kernel_launched_again_on_other_pointers_and_row_counts(fmt):
    """After the first call, the compiled kernel is launched directly (``fused_kernel._COMPILED``), keyed by what
    Triton specializes on: a row count of 1, a multiple of 16 or neither, and an input that starts off the
    16-byte alignment (a slice) must each get a kernel compiled for them, and eager mode's bits."""
    from fpqvar.quant import fused_kernel

    if not fused_kernel.HAVE_TRITON:
        pytest.skip("needs Triton")
    torch.manual_seed(0)
    storage = torch.randn(40 * 128 + 1, device="cuda", dtype=torch.bfloat16)
    fmt = get_format(fmt)
    for _ in range(2):  # the second round runs the kernels kept by the first
        for count in (32, 1, 17, 16):
            for offset in (0, 1):  # 1: the rows start 2 bytes past an aligned address
                rows = storage[offset:offset + count * 128].view(count, 128)
                got = fused_kernel.fused_fake_quantize_rows(rows, fmt, "even")
                assert _same_bits(got, fake_quantize(rows, fmt, PerToken())), (count, offset)
    kept = {key[2:5] for key in fused_kernel._COMPILED if key[1] == storage.device}  # (aligned, 1, multiple of 16)
    assert kept >= {(True, False, True), (False, False, True), (True, True, False), (False, False, False)}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the fused kernels are CUDA-only")
def test_fused_quantizer_keeps_autograd_where_it_is_recorded():
    """With autograd recording, the call goes through torch.compile (the Triton kernel has no backward): the
    same bits, and eager mode's gradient (round's is zero; the scale's, through the group absmax, is not)
    rather than an output cut from the graph."""
    from fpqvar.quant import compiled_fake_quantize

    torch.manual_seed(0)
    x = torch.randn(4, 256, device="cuda", requires_grad=True)
    out = compiled_fake_quantize(x, "fp4_e2m1", PerGroup(128))
    assert out.requires_grad and _same_bits(out.detach(), fake_quantize(x.detach(), "fp4_e2m1", PerGroup(128)))
    out.sum().backward()
    eager = x.detach().clone().requires_grad_()
    fake_quantize(eager, "fp4_e2m1", PerGroup(128)).sum().backward()
    # sums of grid levels are exact; the one division by the format's maximum may be a reciprocal product
    # once compiled: 2 float32 ulps
    torch.testing.assert_close(x.grad, eager.grad, rtol=2 * FP32_EPS, atol=0)
    assert x.grad.abs().sum() > 0
    with torch.no_grad():
        assert not compiled_fake_quantize(x, "fp4_e2m1", PerGroup(128)).requires_grad


# Midpoint sweeps through the whole quantizer: rows of 64 whose first two elements fix the scale(s) to s exactly
# (max_value * s and min_value * s), the rest every grid midpoint and grid value times s with their 2 neighbours
# on either side in the input dtype; scales down to the input dtype's subnormals.
SWEEP_SCALES = {
    torch.float32: [1.0, 2.0**-60, 2.0**-130, 2.0**-140],  # the last two: subnormal float32 scales
    torch.bfloat16: [1.0, 2.0**-60, 2.0**-130],
    torch.float16: [1.0, 2.0**-10, 2.0**-20, 2.0**-24],  # float16 subnormal scales (normal in float32)
}
SWEEP_FORMATS = list(FORMATS.values())
SWEEP_WIDTH = 64


def _neighbours(values: torch.Tensor, count: int = 2) -> torch.Tensor:
    out = [values]
    for direction in (math.inf, -math.inf):
        step = values
        for _ in range(count):
            step = torch.nextafter(step, torch.full_like(step, direction))
            out.append(step)
    return torch.cat(out)


def _targets(fmt) -> torch.Tensor:
    halves = [fmt.negative_grid, fmt.positive_grid] if isinstance(fmt, DualFormat) else [fmt.grid]
    return torch.cat([fmt.grid, *[(g[1:] + g[:-1]) / 2 for g in halves]])


def midpoint_sweep(fmt, dtype: torch.dtype, scale: float) -> torch.Tensor:
    """(rows, 64) in ``dtype``: anchors then swept values; one scale (pair) per row, equal to ``scale``."""
    values = _neighbours((_targets(fmt) * scale).to(dtype))
    width = SWEEP_WIDTH - 2
    values = torch.cat([values, values.new_zeros(-values.numel() % width)]).reshape(-1, width)
    anchors = torch.tensor([fmt.max_value * scale, fmt.min_value * scale], dtype=torch.float64).to(dtype)
    return torch.cat([anchors.expand(values.shape[0], 2), values], dim=1)


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    integer = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    return a.dtype == b.dtype and torch.equal(a.view(integer), b.view(integer))


@pytest.mark.parametrize("tie", TIES)
@pytest.mark.parametrize("dtype", list(SWEEP_SCALES), ids=str)
@pytest.mark.parametrize("fmt", SWEEP_FORMATS, ids=lambda f: f.name)
def test_midpoint_sweep_through_the_quantizer(fmt, dtype, tie):
    """Bit for bit the exact reference, per group / token / channel and per tensor, at every scale."""
    for scale in SWEEP_SCALES[dtype]:
        x = midpoint_sweep(fmt, dtype, scale)
        expected = fake_quantize_reference(x, fmt, tie, torch.float32)
        for granularity in (PerGroup(SWEEP_WIDTH), PerToken(), PerChannel()):
            out = fake_quantize(x, fmt, granularity, tie)
            assert _same_bits(out, expected), (fmt.name, scale, granularity, (out != expected).sum())
        one_scale = x[:1]  # per tensor: a single row keeps the scale at s
        assert _same_bits(fake_quantize(one_scale, fmt, PerTensor(), tie), expected[:1]), (fmt.name, scale)


@pytest.mark.parametrize("tie", TIES)
@pytest.mark.parametrize("fmt", [FP4_E2M1, FP4_E1M2, DFQ_FP4, DFQ_FP6, FP6_E3M2, INT8, INT8_ASYM], ids=lambda f: f.name)
def test_midpoint_sweep_with_the_released_arithmetic(fmt, tie):
    """scale_dtype="input": the scale and x / s rounded to float16 (the released code's fp16 activations)."""
    numerics = Numerics(tie=tie, scale_dtype="input")
    for scale in SWEEP_SCALES[torch.float16]:
        x = midpoint_sweep(fmt, torch.float16, scale)
        assert _same_bits(fake_quantize(x, fmt, PerToken(), numerics), fake_quantize_reference(x, fmt, tie, torch.float16))


def test_float16_scales_no_longer_underflow():
    """fp16 input, FP8-E5M2, absmax 1e-3: the released float16 scale (1.7e-8) underflows to 0 and zeroes the group;
    ours is a float32 scale."""
    x = torch.full((1, 128), 1e-3, dtype=torch.float16)
    assert fake_quantize(x, FP8_E5M2, PerToken(), Numerics(scale_dtype="input")).abs().max() == 0
    torch.testing.assert_close(fake_quantize(x, FP8_E5M2, PerToken()), x)


def test_float32_scale_limits():
    """The documented limit: a float32 scale below 2**-149 is 0 and the group quantizes to 0; a subnormal scale
    keeps fewer bits but still quantizes (E2M1: 6 levels of a subnormal 2**-140 scale are exact)."""
    x = torch.tensor([[6 * 2.0**-150 * 0.9, 1.0 * 2.0**-150]])  # absmax / 6 < 2**-150: scale 0
    assert fake_quantize(x, FP4_E2M1, PerToken()).abs().max() == 0
    x = torch.tensor([[6 * 2.0**-140, 3 * 2.0**-140, -1.5 * 2.0**-140]])
    assert fake_quantize(x, FP4_E2M1, PerToken()).tolist() == x.tolist()


# Numerics at every dtype's extremes: nothing non-finite ever comes out.
EXTREME_DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def _extremes(dtype: torch.dtype) -> torch.Tensor:
    info = torch.finfo(dtype)
    specials = [info.max, -info.max, info.tiny, -info.tiny, info.smallest_normal * info.eps, 0.0, -0.0, 1.0]
    row = torch.tensor(specials + [math.nan, math.inf, -math.inf] + [info.max / 3] * 5, dtype=dtype)
    return torch.stack([row, row.flip(0), row.abs(), -row.abs(), row.nan_to_num(0.0, 0.0, 0.0)]).repeat(1, 4)


@pytest.mark.parametrize("tie", TIES)
@pytest.mark.parametrize("granularity", [PerGroup(16), PerToken(), PerTensor()], ids=str)
@pytest.mark.parametrize("dtype", EXTREME_DTYPES, ids=str)
@pytest.mark.parametrize("fmt", list(FORMATS.values()) + [FP4_E3M0], ids=lambda f: f.name)
def test_no_inf_or_nan_at_the_dtype_extremes(fmt, dtype, granularity, tie):
    x = _extremes(dtype)
    for numerics in (Numerics(tie=tie), Numerics(tie=tie, scale_dtype="input", int_absmax_floor=1e-5)):
        out = fake_quantize(x, fmt, granularity, numerics)
        assert bool(torch.isfinite(out).all()), (fmt.name, dtype, granularity, out[~torch.isfinite(out)])
        assert torch.equal(dequantize(quantize(x, fmt, granularity, numerics)), out)
    q = quantize(x, fmt, granularity, tie)
    assert bool(torch.isfinite(q.scale).all())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the fused kernels are CUDA-only")
@pytest.mark.parametrize("dtype", EXTREME_DTYPES, ids=str)
def test_fused_kernels_at_the_dtype_extremes(dtype):
    """The dtype's largest values (saturation to its range), smallest normals and subnormals, signed zeros and
    non-finite values through the fused kernel of every format, per group: eager mode's bits."""
    from fpqvar.quant import compiled_fake_quantize

    x = _extremes(dtype).cuda()
    for fmt in list(FORMATS.values()) + [FP4_E3M0]:
        assert _same_bits(compiled_fake_quantize(x, fmt, PerGroup(16)), fake_quantize(x, fmt, PerGroup(16))), fmt.name


@pytest.mark.parametrize("dtype", EXTREME_DTYPES, ids=str)
def test_the_largest_value_saturates_instead_of_overflowing(dtype):
    # fp16: s = 65504 / 6 rounds to 10920 in fp16 arithmetic and 6 x 10920 = 65520 overflowed to +Inf.
    largest = torch.finfo(dtype).max
    x = torch.tensor([[largest, -largest, 1.0, 0.0]], dtype=dtype)
    for fmt in ("fp4_e2m1", "fp6_e2m3", "int4", "dfq_e1m2neg_e2m1pos"):  # int8_asym: next test
        for numerics in (Numerics(), Numerics(scale_dtype="input")):
            out = fake_quantize(x, fmt, PerToken(), numerics)
            assert out[0, 0] == largest and out[0, 1] == -largest, (fmt, numerics, out)


@pytest.mark.parametrize("dtype", EXTREME_DTYPES, ids=str)
def test_asymmetric_range_that_overflows(dtype):
    largest = torch.finfo(dtype).max
    x = torch.tensor([[largest, -largest, largest / 2, 0.0]], dtype=dtype)
    out = fake_quantize(x, INT8_ASYM, PerToken())
    assert bool(torch.isfinite(out).all())
    torch.testing.assert_close(out.double(), x.double(), rtol=0, atol=largest / 127)  # within a step


@pytest.mark.parametrize("value, dtype, numerics", [
    (1e33, torch.bfloat16, Numerics()), (-1e33, torch.bfloat16, Numerics()), (1e35, torch.float32, Numerics()),
    (torch.finfo(torch.float32).max, torch.float32, Numerics()),
    (0.01, torch.float16, Numerics(scale_dtype="input")), (-2.0, torch.float16, Numerics(scale_dtype="input")),
], ids=str)
def test_asymmetric_row_of_equal_values_beyond_the_floor(value, dtype, numerics):
    """The 1e-5 floor on max - min makes s = 1e-5 / 255 for a row of equal values, and x / s overflows beyond
    ~1.3e31 (float32 work) or ~0.004 (fp16 work, where s is fp16's smallest subnormal): NaN by the released
    rule. The scale is then max|x| / 255 and the row comes back within a step."""
    x = torch.full((2, 16), value, dtype=dtype)
    x[1, 3] = math.nan  # a non-finite element enters the range as 0: the ordinary rule applies to that row
    out = fake_quantize(x, INT8_ASYM, PerToken(), numerics)
    assert bool(torch.isfinite(out).all()), out
    step = abs(value) / 255
    assert (out[0].double() - x[0].double()).abs().max() <= step
    assert out[1, 3] == 0 and (out[1].double() - x[1].double()).nan_to_num().abs().max() <= 2 * step
    assert torch.equal(dequantize(quantize(x, INT8_ASYM, PerToken(), numerics)), out)


def test_straight_through_with_non_finite_inputs():
    x = torch.tensor([[math.inf, -math.inf, math.nan, 1.0, -2.0, 0.5]], requires_grad=True)
    y = fake_quantize_ste(x, FP4_E2M1, PerToken())
    assert torch.equal(y, fake_quantize(x.detach(), FP4_E2M1, PerToken()))
    assert y[0, :3].tolist() == [0.0, 0.0, 0.0]
    (y * torch.arange(6.0)).sum().backward()
    assert torch.equal(x.grad, torch.arange(6.0)[None])


@pytest.mark.parametrize("granularity, shape", [
    (PerGroup(128), (0, 128)), (PerGroup(128), (4, 0)), (PerToken(), (4, 0)), (PerToken(), (0, 8)),
    (PerChannel(), (3, 0, 5)), (PerTensor(), (0,)), (PerTensor(), (2, 0)),
], ids=str)
@pytest.mark.parametrize("fmt", ["fp4_e2m1", "int8_asym", "dfq_e1m2neg_e2m1pos"])
def test_empty_tensors_give_empty_results(fmt, granularity, shape):
    x = torch.empty(shape, dtype=torch.bfloat16)
    out = fake_quantize(x, fmt, granularity)
    assert out.shape == x.shape and out.dtype == x.dtype
    q = quantize(x, fmt, granularity)
    assert q.codes.shape == x.shape and q.scale.shape == scale_shape(x.shape, granularity)
    assert dequantize(q).shape == x.shape and dequantize(q).dtype == x.dtype
    assert fake_quantize_ste(x, fmt, granularity).shape == x.shape


@pytest.mark.parametrize("tie", TIES)
@pytest.mark.parametrize("fmt", ["fp4_e2m1", "dfq_e1m2neg_e2m1pos", "dfq_int6neg_e2m3pos", "int4", "int8_asym"])
def test_fake_quantization_is_real_quantization_bit_for_bit_zeros_included(fmt, tie):
    """Every zero is +0.0, as the zero code decodes (hardware golden models compare bits)."""
    x = torch.randn(8, 128) * torch.rand(8, 1)
    x[:, :8] = torch.tensor([0.0, -0.0, -1e-30, 1e-30, -0.01, 0.01, math.nan, -math.inf])
    out = fake_quantize(x, fmt, PerGroup(128), tie)
    assert _same_bits(out, dequantize(quantize(x, fmt, PerGroup(128), tie)))
    assert bool((out[out == 0].view(torch.int32) == 0).all())


def test_tie_per_format_family():
    """The released code: INT ties to even (torch.round), grid formats' ties up (its CUDA kernel)."""
    released = Numerics(tie="up", int_tie="even")
    ints = torch.tensor([[7.0, 0.5, 1.5, 2.5, -0.5, -2.5]])  # scale 1 for INT4
    assert fake_quantize(ints, INT4, PerToken(), released).tolist() == [[7.0, 0.0, 2.0, 2.0, -0.0, -2.0]]
    fp = torch.tensor([[6.0, 2.5, -2.5, 0.25]])  # scale 1 for E2M1
    assert fake_quantize(fp, FP4_E2M1, PerToken(), released).tolist() == [[6.0, 3.0, -2.0, 0.5]]
    assert Numerics(tie="up").tie_for(INT4) == "up" and released.tie_for("int8_asym") == "even"
    assert released.tie_for(DFQ_FP6) == "up"  # a dual format is a grid format, even with an INT half


def test_released_int_absmax_floor():
    """Symmetric INT: the released code floors absmax at 1e-5; groups with a smaller absmax quantize coarser."""
    x = torch.tensor([[2e-6, 1e-6, -5e-7, 0.0]])
    ours = fake_quantize(x, INT8, PerToken())
    floored = fake_quantize(x, INT8, PerToken(), Numerics(int_absmax_floor=1e-5))
    step = 1e-5 / 127
    assert floored[0].tolist() == pytest.approx([round(v / step) * step for v in x[0].tolist()], abs=1e-12)
    assert (ours - x).abs().max() < (floored - x).abs().max()
    assert torch.equal(fake_quantize(x * 1e5, INT8, PerToken(), Numerics(int_absmax_floor=1e-5)),
                       fake_quantize(x * 1e5, INT8, PerToken()))  # above the floor nothing changes
    with pytest.raises(ValueError, match="int_absmax_floor"):
        Numerics(int_absmax_floor=-1.0)


# The fused CUDA kernels on the midpoint sweeps: every format in float32, bfloat16 and float16, per row (the
# hand-written Triton kernels) and per tensor (torch.compile), ours and the released arithmetic. Each (format, tie,
# dtype, granularity) compiles once.
CUDA_SWEEP = [(fmt, dtype) for fmt in SWEEP_FORMATS for dtype in (torch.float32, torch.bfloat16, torch.float16)]


# The Triton kernel takes its fast path (one reciprocal per row) for scales in fused_kernel.FAST_SCALES, 2**-60
# included, and its exact path (an IEEE division per element) below: normal float32 scales just below and far
# below the bound, on top of SWEEP_SCALES (1 and 2**-60 fast, the subnormal ones exact).
FUSED_EXACT_PATH_SCALES = {torch.float32: [2.0**-61, 2.0**-90], torch.bfloat16: [2.0**-61, 2.0**-90], torch.float16: []}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the fused kernels are CUDA-only")
@pytest.mark.parametrize("tie", TIES)
@pytest.mark.parametrize("fmt, dtype", CUDA_SWEEP, ids=lambda v: getattr(v, "name", str(v)))
def test_fused_kernels_on_the_midpoint_sweeps(fmt, dtype, tie):
    """Bit for bit eager CUDA and the exact reference (hence eager CPU), subnormal scales included. Every format
    per row runs a Triton kernel (``fused_kernel``); per tensor, the released symmetric INT absmax floor and the
    released fp16 arithmetic take the other routes of ``compiled_fake_quantize``."""
    from fpqvar.quant import compiled_fake_quantize, fused_kernel

    assert fused_kernel.supported(fmt, SWEEP_WIDTH, dtype, torch.float32) == fused_kernel.HAVE_TRITON
    if isinstance(fmt, IntFormat):  # the released absmax floor of symmetric INT keeps torch.compile's kernel
        floored = fused_kernel.supported(fmt, SWEEP_WIDTH, dtype, torch.float32, int_absmax_floor=1e-5)
        assert floored == (not fmt.symmetric and fused_kernel.HAVE_TRITON)
    cases = [(PerGroup(SWEEP_WIDTH), Numerics(tie=tie), torch.float32)]
    if fmt in (FP4_E2M1, DFQ_FP4) and dtype == torch.float32:
        cases.append((PerTensor(), Numerics(tie=tie), torch.float32))
    if fmt in (FP4_E2M1, DFQ_FP4) and dtype == torch.float16:
        cases.append((PerGroup(SWEEP_WIDTH), Numerics(tie=tie, scale_dtype="input"), torch.float16))
    for scale in SWEEP_SCALES[dtype] + FUSED_EXACT_PATH_SCALES[dtype]:
        x = midpoint_sweep(fmt, dtype, scale)
        for granularity, numerics, work in cases:
            rows = x[:1] if isinstance(granularity, PerTensor) else x
            expected = fake_quantize_reference(rows, fmt, tie, work)
            fused = compiled_fake_quantize(rows.cuda(), fmt, granularity, numerics)
            assert _same_bits(fused, fake_quantize(rows.cuda(), fmt, granularity, numerics)), (scale, granularity, numerics)
            assert _same_bits(fused.cpu(), expected), (scale, granularity, numerics)


if torch.cuda.is_available():
    from fpqvar.quant import fused_kernel

    if fused_kernel.HAVE_TRITON:
        import triton
        import triton.language as tl

        @triton.jit
        def _quotient_mismatch_kernel(scales_ptr, counts_ptr, BLOCK: tl.constexpr, MAX_QUOTIENT: tl.constexpr):
            """For one divisor s and BLOCK float32 bit patterns: how many quotients that matter the fast path gets
            wrong, and how many of the rest it makes 2**-40 or larger. What matters: 2**-41 <= |x / s| <=
            FAST_MAX_QUOTIENT (x / s on a grid, or before an asymmetric INT grid's zero point), and for s >= 1
            also FAST_SCALES' 2**-60 <= |x / s| <= 2**126 (a row's scale: its absmax over the format's largest
            value, at least 1.75)."""
            s = tl.load(scales_ptr + tl.program_id(1))
            patterns = (tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)).to(tl.int32)
            x = patterns.to(tl.float32, bitcast=True)
            want = tl.math.div_rn(x, s)
            got = fused_kernel._quotient(x, -s, tl.math.div_rn(1.0, s))
            finite = tl.abs(x) < float("inf")
            on_grid = (tl.abs(want) >= 2.0**-41) & (tl.abs(want) <= MAX_QUOTIENT)
            as_scale = (s >= 1.0) & (tl.abs(want) >= 2.0**-60) & (tl.abs(want) <= 2.0**126)
            matters = finite & (on_grid | as_scale)
            wrong = matters & (got.to(tl.int32, bitcast=True) != want.to(tl.int32, bitcast=True))
            too_large = finite & ~matters & (tl.abs(want) < 2.0**-41) & (tl.abs(got) >= 2.0**-40)
            tl.atomic_add(counts_ptr + 2 * tl.program_id(1), tl.sum(wrong.to(tl.int32), axis=0))
            tl.atomic_add(counts_ptr + 2 * tl.program_id(1) + 1, tl.sum(too_large.to(tl.int32), axis=0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the fused kernels are CUDA-only")
def test_fast_path_quotient_is_the_ieee_quotient_at_every_float32():
    """The Triton kernel's fast path divides by a product with the row's reciprocal and two corrections
    (``fused_kernel._quotient``), and so do the scales (the row absmax over the format's largest value).
    Exhaustively over all 2**32 float32 bit patterns, for divisors at both ends of FAST_SCALES, with all-ones
    mantissas, every format's largest magnitudes and 24 random ones: every quotient a grid can see
    (2**-41 <= |x / s|; the smallest midpoint of every grid is 2**-17) up to FAST_MAX_QUOTIENT (2**40, the
    asymmetric INT kernel's bound on the fast path; a grid format's quotients end at 57344), and for divisors
    of at least 1 every scale the fast path accepts (2**-60 to 2**126), has the IEEE quotient's bits; every
    smaller quotient stays below 2**-40 (it rounds to zero on every grid, as the IEEE one does)."""
    if not fused_kernel.HAVE_TRITON:
        pytest.skip("needs Triton")
    low, high = fused_kernel.FAST_SCALES
    generator = torch.Generator().manual_seed(0)
    exponents = torch.randint(-60, 126, (24,), generator=generator).double()
    random_scales = ((1 + torch.rand(24, generator=generator, dtype=torch.float64)) * 2.0**exponents).tolist()
    # every format's largest magnitudes: the kernel divides the row absmax by them the same way
    largest = sorted({abs(v) for f in [*FORMATS.values(), FP4_E3M0] for v in (f.max_value, f.min_value)})
    scales = [low, high, 1 / 3, (2 - 2**-23) * low, (2 - 2**-23) * 2.0**125, 1.5 * low] + largest + random_scales
    scales = torch.tensor(scales, dtype=torch.float32, device="cuda").clamp(low, high)
    counts = torch.zeros(len(scales), 2, dtype=torch.int32, device="cuda")
    block = 4096
    _quotient_mismatch_kernel[(2**32 // block, len(scales))](
        scales, counts, BLOCK=block, MAX_QUOTIENT=fused_kernel.FAST_MAX_QUOTIENT, enable_fp_fusion=False,
        enable_reflect_ftz=False)
    assert counts.sum().item() == 0, {s: c for s, c in zip(scales.tolist(), counts.tolist(), strict=True) if sum(c)}
