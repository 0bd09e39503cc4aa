"""Triton kernels of the low-bit backend (CUDA; optional: ``HAVE_TRITON`` says whether they can run).

* :func:`quantize_activation`: one pass over a (M, K) activation: optional GHT (a 128 x 128 matmul per group),
  per-group absmax scale, rounding to an FP4 grid (round-half-to-even, as ``fpqvar.quant``), written as FP8 E4M3
  codes (every FP4 value is exact in E4M3) and float32 scales. The scale and x / s are IEEE float32 divisions
  (``div_rn``), as the fake quantizer's default numerics compute them, and rounding is ``rint`` plus the
  quantizer's tie rule: codes and scales equal the fake quantizer's bit for bit. A dual (DFQ) format writes a
  doubled K: per group its non-positive part then its positive part, each a group of its own with its own scale.
* :func:`group_scaled_gemm`: C = sum over K-groups of (A_g B_g^T) * sa_g * sb_g, FP8 tensor-core dots with
  float32 accumulation, optionally reading B as packed E2M1 nibbles (two per byte) decoded to E4M3 in registers.
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from ..formats import DualFormat, FloatFormat, get_format

try:  # Triton is optional: CPU-only installs import this module and report why the backend cannot run
    import triton
    import triton.language as tl
    from triton.language.extra import libdevice

    HAVE_TRITON = True
except ImportError:  # pragma: no cover - depends on the installation
    HAVE_TRITON = False

GROUP = 128
_FP32_BIAS = 127


@dataclasses.dataclass(frozen=True)
class GridParams:
    """What the kernel's rounding needs of one FP4 grid (see fpqvar.quant.rounding._Binades)."""

    min_field: int
    max_field: int
    mantissa_bits: int
    bias: int
    low: float
    high: float


def grid_params(fmt: FloatFormat, *, low: float | None = None, high: float | None = None) -> GridParams:
    return GridParams(fmt.min_exponent + _FP32_BIAS, fmt.max_exponent + _FP32_BIAS, fmt.mantissa_bits, fmt.bias,
                      fmt.min_value if low is None else low, fmt.max_value if high is None else high)


def supported_activation_format(fmt) -> bool:
    """FP4 float formats, and dual formats of two FP4 float formats (DFQ)."""
    fmt = get_format(fmt)
    parts = (fmt.negative, fmt.positive) if isinstance(fmt, DualFormat) else (fmt,)
    return all(isinstance(p, FloatFormat) and p.bits == 4 for p in parts)


def require_triton() -> None:
    if not HAVE_TRITON:
        raise ValueError("the low-bit backend needs Triton and a CUDA GPU (pip install triton); use backend='fake'")


if HAVE_TRITON:

    @triton.jit
    def _round_to_grid(y, MIN_FIELD: tl.constexpr, MAX_FIELD: tl.constexpr, MBITS: tl.constexpr, BIAS: tl.constexpr,
                       LOW: tl.constexpr, HIGH: tl.constexpr):
        """Nearest grid value (ties to the even code) of float32 y; NaN/Inf -> 0; saturating."""
        y = tl.where(tl.abs(y) < float("inf"), y, 0.0)
        field = (y.to(tl.int32, bitcast=True) >> 23) & 0xFF
        field = tl.minimum(tl.maximum(field, MIN_FIELD), MAX_FIELD)
        spacing = ((field - MBITS) << 23).to(tl.float32, bitcast=True)  # a power of two
        inverse = ((254 - (field - MBITS)) << 23).to(tl.float32, bitcast=True)  # its exact reciprocal
        steps = y * inverse  # exact: a product with a power of two
        # rint is IEEE round-half-even and exact (floor(steps + 0.5) is not: fpqvar.quant.rounding says why)
        rounded = libdevice.rint(steps)
        if MBITS == 0:
            # a tie at 1.5 steps lies between 2**e and 2**(e+1): the even code is the one with the even field
            field_even = ((field - 127 + BIAS) % 2) == 0
            one = tl.where(steps > 0, 1.0, -1.0)
            rounded = tl.where((tl.abs(steps) == 1.5) & field_even, one, rounded)
        return tl.minimum(tl.maximum(rounded * spacing, LOW), HIGH)

    @triton.jit
    def _activation_kernel(
        x_ptr, r_ptr, codes_ptr, scales_ptr, M, M_PAD, K, stride_xm, stride_cm,
        HAS_ROTATION: tl.constexpr, DUAL: tl.constexpr, ROUND_BF16: tl.constexpr, BLOCK_M: tl.constexpr,
        MAX_POS: tl.constexpr, MAX_NEG: tl.constexpr,
        P_MIN: tl.constexpr, P_MAX: tl.constexpr, P_M: tl.constexpr, P_BIAS: tl.constexpr, P_LOW: tl.constexpr, P_HIGH: tl.constexpr,
        N_MIN: tl.constexpr, N_MAX: tl.constexpr, N_M: tl.constexpr, N_BIAS: tl.constexpr, N_LOW: tl.constexpr, N_HIGH: tl.constexpr,
    ):
        pid_m, g = tl.program_id(0), tl.program_id(1)
        rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = tl.arange(0, 128)
        in_rows = rows < M
        x = tl.load(x_ptr + rows[:, None] * stride_xm + (g * 128 + cols)[None, :], mask=in_rows[:, None], other=0.0)
        if HAS_ROTATION:
            r = tl.load(r_ptr + tl.arange(0, 128)[:, None] * 128 + cols[None, :])
            # bf16 operands, float32 accumulation, bf16 result: what the fake path's autocast matmul computes
            x = tl.dot(x.to(tl.bfloat16, fp_downcast_rounding="rtne"), r).to(tl.bfloat16, fp_downcast_rounding="rtne")
        if ROUND_BF16:
            x = x.to(tl.bfloat16, fp_downcast_rounding="rtne")
        x = x.to(tl.float32)
        magnitude = tl.abs(x)
        finite = magnitude < float("inf")
        if DUAL:
            s_pos = tl.math.div_rn(tl.max(tl.where(finite & (x > 0), magnitude, 0.0), axis=1), MAX_POS)
            s_neg = tl.math.div_rn(tl.max(tl.where(finite & (x < 0), magnitude, 0.0), axis=1), MAX_NEG)
            positive = x > 0
            y = tl.math.div_rn(x, tl.where(positive, s_pos[:, None], s_neg[:, None]))
            # rounding decides the side by y (> 0: positive grid), as fpqvar.quant does
            up = _round_to_grid(y, P_MIN, P_MAX, P_M, P_BIAS, 0.0, P_HIGH)
            down = _round_to_grid(y, N_MIN, N_MAX, N_M, N_BIAS, N_LOW, 0.0)
            y_pos = y > 0
            neg_codes = tl.where(y_pos, 0.0, down)
            pos_codes = tl.where(y_pos, up, 0.0)
            base = codes_ptr + rows[:, None] * stride_cm + (g * 256 + cols)[None, :]
            tl.store(base, neg_codes.to(tl.float8e4nv), mask=(rows < M_PAD)[:, None])
            tl.store(base + 128, pos_codes.to(tl.float8e4nv), mask=(rows < M_PAD)[:, None])
            tl.store(scales_ptr + (2 * g) * M_PAD + rows, s_neg, mask=rows < M_PAD)
            tl.store(scales_ptr + (2 * g + 1) * M_PAD + rows, s_pos, mask=rows < M_PAD)
        else:
            s = tl.math.div_rn(tl.max(tl.where(finite, magnitude, 0.0), axis=1), MAX_POS)
            y = tl.math.div_rn(x, s[:, None])
            q = _round_to_grid(y, P_MIN, P_MAX, P_M, P_BIAS, P_LOW, P_HIGH)
            tl.store(codes_ptr + rows[:, None] * stride_cm + (g * 128 + cols)[None, :], q.to(tl.float8e4nv),
                     mask=(rows < M_PAD)[:, None])
            tl.store(scales_ptr + g * M_PAD + rows, s, mask=rows < M_PAD)

    @triton.jit
    def _e2m1_to_e4m3(nibble):
        """E2M1 code (s|ee|m) -> E4M3 byte of the same value (uint8)."""
        e = (nibble >> 1) & 3
        m = nibble & 1
        magnitude = tl.where(e == 0, tl.where(m == 1, 0x30, 0x00), ((e + 6) << 3) | (m << 2))
        return (magnitude | ((nibble & 8) << 4)).to(tl.uint8)

    @triton.jit
    def _gemm_kernel(
        a_ptr, b_ptr, sa_ptr, sb_ptr, bias_ptr, c_ptr, M, N, K, M_PAD, stride_am, stride_bn, stride_cm,
        HAS_BIAS: tl.constexpr, PACKED_B: tl.constexpr, DUAL_A: tl.constexpr, BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr,
    ):
        pid = tl.program_id(0)
        num_m, num_n = tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N)
        # grouped launch order: neighbouring programs share B tiles in L2
        width = GROUP_M * num_n
        first_m = (pid // width) * GROUP_M
        size_m = tl.minimum(num_m - first_m, GROUP_M)
        pid_m = first_m + (pid % width) % size_m
        pid_n = (pid % width) // size_m
        rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        rk = tl.arange(0, 128)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for g in range(0, K // 128):
            if PACKED_B:
                half = tl.arange(0, 64)
                packed = tl.load(b_ptr + rn[:, None] * stride_bn + (g * 64 + half)[None, :], mask=(rn < N)[:, None], other=0)
                codes = tl.join(_e2m1_to_e4m3(packed & 15), _e2m1_to_e4m3(packed >> 4)).reshape(BLOCK_N, 128)
                b = codes.to(tl.float8e4nv, bitcast=True)
            else:
                b = tl.load(b_ptr + rn[:, None] * stride_bn + (g * 128 + rk)[None, :], mask=(rn < N)[:, None], other=0.0)
            sb = tl.load(sb_ptr + g * N + rn, mask=rn < N, other=0.0)
            if DUAL_A:  # A holds per group its non-positive then its positive part: one B tile serves both
                a_ptrs = a_ptr + rm[:, None] * stride_am + (g * 256 + rk)[None, :]
                a_neg = tl.load(a_ptrs, mask=(rm < M)[:, None], other=0.0)
                a_pos = tl.load(a_ptrs + 128, mask=(rm < M)[:, None], other=0.0)
                s_neg = tl.load(sa_ptr + (2 * g) * M_PAD + rm, mask=rm < M, other=0.0)
                s_pos = tl.load(sa_ptr + (2 * g + 1) * M_PAD + rm, mask=rm < M, other=0.0)
                bt = tl.trans(b)
                part = tl.dot(a_neg, bt) * s_neg[:, None] + tl.dot(a_pos, bt) * s_pos[:, None]
            else:
                a = tl.load(a_ptr + rm[:, None] * stride_am + (g * 128 + rk)[None, :], mask=(rm < M)[:, None], other=0.0)
                sa = tl.load(sa_ptr + g * M_PAD + rm, mask=rm < M, other=0.0)
                part = tl.dot(a, tl.trans(b)) * sa[:, None]
            acc += part * sb[None, :]
        if HAS_BIAS:
            acc += tl.load(bias_ptr + rn, mask=rn < N, other=0.0).to(tl.float32)[None, :]
        tl.store(c_ptr + rm[:, None] * stride_cm + rn[None, :], acc.to(c_ptr.dtype.element_ty),
                 mask=(rm < M)[:, None] & (rn < N)[None, :])


@functools.cache
def _format_constants(fmt_name: str) -> dict:
    fmt = get_format(fmt_name)
    if isinstance(fmt, DualFormat):
        positive, negative = grid_params(fmt.positive, low=0.0), grid_params(fmt.negative, high=0.0)
        max_pos, max_neg = fmt.max_value, -fmt.min_value
    else:
        positive = negative = grid_params(fmt)
        max_pos = max_neg = fmt.max_value
    names = ("MIN", "MAX", "M", "BIAS", "LOW", "HIGH")
    constants = {f"P_{n}": v for n, v in zip(names, dataclasses.astuple(positive), strict=True)}
    constants |= {f"N_{n}": v for n, v in zip(names, dataclasses.astuple(negative), strict=True)}
    return constants | {"MAX_POS": max_pos, "MAX_NEG": max_neg, "DUAL": isinstance(fmt, DualFormat)}


def padded_rows(m: int) -> int:
    """Rows padded to a multiple of 16 (FP8 GEMMs need it); the kernel writes zero codes into the padding."""
    return max(16, -(-m // 16) * 16)


def quantize_activation(x: torch.Tensor, fmt: str, rotation: torch.Tensor | None = None, *, block_m: int = 16,
                        num_warps: int | None = None):
    """(M, K) activation -> (codes (M_pad, K') float8_e4m3fn, scales (M_pad, K' / 128) float32 column-major),
    K' = K, or 2K for a dual format. Rows M..M_pad-1 are zero codes. ``rotation``: the GHT block (128 x 128,
    bf16) applied to each group first; x (or the rotation's output) is rounded to bf16 when x or the rotation is bf16,
    as autocast rounds a matmul's output, and the scales and x / s are float32 as the fake quantizer's. The default
    tile (16 rows, 4 warps; 8 for dual formats) was the fastest of the benchmark's sweep at the FC2 shape."""
    require_triton()
    if x.ndim != 2 or x.shape[1] % GROUP:
        raise ValueError(f"expected a (M, K) activation with K divisible by {GROUP}, got {tuple(x.shape)}")
    constants = _format_constants(get_format(fmt).name)
    x = x.contiguous()
    M, K = x.shape
    M_pad = padded_rows(M)
    width = 2 * K if constants["DUAL"] else K
    codes = torch.empty((M_pad, width), dtype=torch.float8_e4m3fn, device=x.device)
    scales = torch.empty((width // GROUP, M_pad), dtype=torch.float32, device=x.device)
    if rotation is not None and (rotation.shape != (GROUP, GROUP) or rotation.dtype != torch.bfloat16):
        raise ValueError(f"the fused rotation must be a bf16 {GROUP} x {GROUP} block, got {tuple(rotation.shape)} {rotation.dtype}")
    grid = (triton.cdiv(M_pad, block_m), K // GROUP)
    _activation_kernel[grid](
        x, x if rotation is None else rotation.contiguous(), codes, scales, M, M_pad, K, x.stride(0), codes.stride(0),
        HAS_ROTATION=rotation is not None, ROUND_BF16=x.dtype == torch.bfloat16 or rotation is not None,
        BLOCK_M=block_m, num_warps=num_warps or (8 if constants["DUAL"] else 4), **constants,
    )
    return codes, scales.t()


def gemm_config(m: int, dual: bool) -> tuple[int, int, int, int]:
    """(BLOCK_M, BLOCK_N, num_warps, num_stages): the fastest of benchmarks/lowbit_sampling.py's sweep at d30
    shapes on an H200 (results/lowbit_kernels_cuda.json)."""
    if m <= 64:
        return (16, 64, 4, 4)
    return (128, 128, 8, 3) if dual else (128, 64, 4, 4)


def group_scaled_gemm(a: torch.Tensor, a_scales: torch.Tensor, b: torch.Tensor, b_scales: torch.Tensor, m: int,
                      bias: torch.Tensor | None = None, *, packed_b: bool = False, out_dtype=torch.bfloat16,
                      config: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """(m, N) = sum_g (A_g * sa_g)(B_g * sb_g)^T + bias, with A (M_pad, K) FP8 and its scales from
    :func:`quantize_activation`, B (N, K) FP8 (or (N, K/2) packed E2M1 nibbles) and ``b_scales`` (K/128, N).
    An A of width 2K (a dual format's two parts per group) multiplies the same B twice, once per part."""
    require_triton()
    M_pad, width = a.shape
    N = b.shape[0]
    K = b.shape[1] * (2 if packed_b else 1)
    if width not in (K, 2 * K) or b_scales.shape != (K // GROUP, N):
        raise ValueError(f"shapes do not fit: A {tuple(a.shape)}, B {tuple(b.shape)} (packed={packed_b}), "
                         f"B scales {tuple(b_scales.shape)}")
    out = torch.empty((m, N), dtype=out_dtype, device=a.device)
    block_m, block_n, num_warps, num_stages = config or gemm_config(m, width == 2 * K)
    grid = (triton.cdiv(m, block_m) * triton.cdiv(N, block_n),)
    _gemm_kernel[grid](
        a, b, a_scales.t(), b_scales, a if bias is None else bias, out, m, N, K, M_pad, a.stride(0), b.stride(0),
        out.stride(0), HAS_BIAS=bias is not None, PACKED_B=packed_b, DUAL_A=width == 2 * K, BLOCK_M=block_m, BLOCK_N=block_n, GROUP_M=8,
        num_warps=num_warps, num_stages=num_stages,
    )
    return out


def blockwise_scaled_mm(a: torch.Tensor, a_scales: torch.Tensor, b: torch.Tensor, b_scales: torch.Tensor, m: int,
                        bias: torch.Tensor | None = None, *, out_dtype=torch.bfloat16) -> torch.Tensor:
    """The same product through PyTorch's FP8 GEMM with 1x128 block scales on both operands (SM90, CUDA >= 12.9):
    A (M_pad, K) FP8 with scales (M_pad, K / 128) column-major, as :func:`quantize_activation` returns them;
    B (N, K) FP8 row-major with scales (K / 128, N). A dual format's A (width 2K) needs B with each group
    repeated ([W_g, W_g]) and its scales likewise (:func:`repeat_groups`).

    With a bf16/fp16 output the bias is added in the GEMM's epilogue, before the one rounding to ``out_dtype``
    (as ``F.linear`` under autocast does): one pass over the output less, 0.43 ms of 1.59 ms at d30's FC1 with
    M = 32768 on an H200 (benchmarks/README.md). cuBLAS refuses a bias with float32 output: added after there."""
    if bias is not None and out_dtype != torch.float32:
        return torch._scaled_mm(a, b.t(), scale_a=a_scales, scale_b=b_scales, bias=bias.to(out_dtype),
                                out_dtype=out_dtype)[:m]
    out = torch._scaled_mm(a, b.t(), scale_a=a_scales, scale_b=b_scales, out_dtype=out_dtype)[:m]
    return out if bias is None else out + bias


def repeat_groups(weight: torch.Tensor, scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) weight and (K / 128, N) scales -> (N, 2K) and (2K / 128, N) with every group twice in a row, the
    layout that meets a dual-format activation's [non-positive part, positive part] per group."""
    N, K = weight.shape
    doubled = weight.reshape(N, K // GROUP, 1, GROUP).expand(N, K // GROUP, 2, GROUP).reshape(N, 2 * K)
    return doubled.contiguous(), scales.repeat_interleave(2, dim=0).contiguous()
