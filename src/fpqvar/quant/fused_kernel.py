"""A hand-written Triton kernel for fake quantization on grid formats (CUDA; used by ``compiled_fake_quantize``).

Why not only torch.compile: the inductor kernel of ``fake_quantize`` is bound by its arithmetic, at the same
elements per second for float32 and bf16 input, so bf16 ran at about half a copy's bandwidth
(``benchmarks/README.md``, quantizer throughput). This kernel reads each row once, forms the absmax scale(s),
divides, rounds, dequantizes and writes once, in two ways chosen per program (a tile of rows):

* fast path, when every scale of the tile lies in ``FAST_SCALES`` (all but extreme rows): x / s is the product
  with the row's reciprocal plus two exact-residual corrections (``_quotient``: the IEEE quotient, Markstein's
  theorem), and the rounding is one addition (``_round_fast``: (y + C) - C with C = 2**(e + 23 - m) rounds to
  the grid, ties to even; ties up and down correct the exact ties): 12 instructions per element for division,
  rounding and product (SASS for sm_90, E2M1), where the IEEE division alone takes 10. bf16 E2M1 runs at 0.89x
  of a copy by GPU time (torch.compile's kernel: 0.53x);
* exact path, for the other tiles (subnormal or huge scales, float32 rows near its largest value): IEEE
  ``div_rn`` per element and the step-by-step rounding of ``rounding.round_to_format`` (``_round_exact``).

Bits: the same as ``fake_quantize`` in float32 work on both paths. Products with powers of two are exact; FMA
contraction and the flushing of subnormals in libdevice are turned off at launch. ``tests/test_quantize.py``
checks the kernel against eager CUDA and the CPU reference on the float32 midpoint sweeps at scales on both
paths (1, 2**-60 fast; 2**-61, 2**-90 and subnormal ones exact), and ``_quotient`` against IEEE division at every
float32 for 43 divisors.

Covers FloatFormat and DualFormat grids (a dual format's halves may be integer grids) and symmetric IntFormat
grids (without the released absmax floor) in that kernel, and asymmetric IntFormat grids (scale and zero point
from the row's min and max) in a second one (``_fake_quantize_asymmetric_rows_kernel``: the same fast quotient,
``rint`` for the rounding); both with one scale (pair) per row of at most ``MAX_ROW`` elements, in float32 work
(not float64, not the released fp16/bf16 arithmetic). Everything else (per tensor, the released symmetric INT
absmax floor) stays with the compiled quantizer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from ..formats import DualFormat, FloatFormat, Format, IntFormat
from .numerics import ASYMMETRIC_MIN_RANGE
from .rounding import TIES, Tie, _Binades, _binades

try:  # Triton is optional: CPU-only installs use the compiled (or eager) quantizer
    import triton
    import triton.language as tl
    from triton.compiler import CompiledKernel
    from triton.language.extra import libdevice

    HAVE_TRITON = True
except ImportError:  # pragma: no cover - depends on the installation
    HAVE_TRITON = False

MAX_ROW = 16384  # one row per program up to this length; longer rows (per tensor) stay compiled
# The default tile: 64 bytes of input per thread (32 bf16 / 16 float32 elements) and at least 64 threads per
# program; within 0.01x of a copy of the fastest tile timed on the H200 for E2M1 per group of 128 and E2M3 per
# token of 4096 (benchmarks/probes/fused_tiles.py).
_BYTES_PER_THREAD = 64
_FP32_BIAS = 127
_OUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# The fast path's largest row absmax: a dequantized value is at most absmax * (1 + 2**-23), which a float32
# output could round up to Inf near its largest value; bf16 and fp16 round it back to their largest value.
_FAST_ABSMAX = {torch.float32: 2.0**127, torch.bfloat16: float("inf"), torch.float16: float("inf")}


def supported(fmt: Format, row_length: int, dtype: torch.dtype, work: torch.dtype, *, int_absmax_floor: float = 0.0) -> bool:
    """Whether :func:`fused_fake_quantize_rows` computes this case (else the caller compiles ``fake_quantize``):
    FP and dual grids, symmetric INT grids (spacing 1, one binade) without the released absmax floor, and
    asymmetric INT grids (which have no absmax floor)."""
    grid = isinstance(fmt, (FloatFormat, DualFormat)) or (
        isinstance(fmt, IntFormat) and not (fmt.symmetric and int_absmax_floor))
    return HAVE_TRITON and grid and dtype in _OUT_DTYPES and work == torch.float32 and 0 < row_length <= MAX_ROW


def _half_constants(b: _Binades, tie: Tie, prefix: str) -> dict:
    """One grid half's rounding constants. Exact path: clamp range of the exponent field, mantissa bits, whether
    a tie at 1.5 steps goes by the parity of the format's exponent field (no mantissa bits, ties to even), that
    bias. Fast path: 2**min_exponent, 2**(23 - mantissa bits) (a step's float32 magnitude constant ``C`` is
    2**(e + 23 - m)), and ``C`` itself where the grid has one binade."""
    return {f"{prefix}_MIN_FIELD": b.min_exponent + _FP32_BIAS, f"{prefix}_MAX_FIELD": b.max_exponent + _FP32_BIAS,
            f"{prefix}_MBITS": b.mantissa_bits,
            f"{prefix}_EVEN_FIELD": tie == "even" and b.exponent_coded_bias is not None,
            f"{prefix}_CODED_BIAS": b.exponent_coded_bias or 0,
            f"{prefix}_MIN_POWER": 2.0**b.min_exponent, f"{prefix}_SHIFT": 2.0 ** (23 - b.mantissa_bits),
            f"{prefix}_ONE_BINADE": 2.0 ** (b.min_exponent + 23 - b.mantissa_bits)
            if b.min_exponent == b.max_exponent else 0.0}


@functools.cache  # built once per (format, tie): the quantizer is called per layer and step while sampling
def _constants(fmt: Format, tie: Tie) -> dict:
    if isinstance(fmt, IntFormat) and not fmt.symmetric:
        return {"TIE": TIES.index(tie), "INT_MIN": fmt.min_value, "INT_MAX": fmt.max_value,
                "LEVELS": fmt.max_value - fmt.min_value, "MIN_RANGE": ASYMMETRIC_MIN_RANGE,
                "FAST_MAX_QUOTIENT": FAST_MAX_QUOTIENT}
    if isinstance(fmt, DualFormat):
        negative, positive = _binades(fmt.negative, high=0.0), _binades(fmt.positive, low=0.0)
        max_pos, max_neg, low, high = fmt.max_value, -fmt.min_value, negative.low, positive.high
    else:
        negative = positive = _binades(fmt)
        max_pos = max_neg = fmt.max_value
        low, high = positive.low, positive.high
    halves = {**_half_constants(positive, tie, "P"), **_half_constants(negative, tie, "N")}
    return {"DUAL": isinstance(fmt, DualFormat), "TIE": TIES.index(tie), "MAX_POS": float(max_pos),
            "MAX_NEG": float(max_neg), "MAX_POS_RECIPROCAL": _float32_reciprocal(max_pos),
            "MAX_NEG_RECIPROCAL": _float32_reciprocal(max_neg), "LOW": float(low), "HIGH": float(high),
            "STEPS": _steps_rule(halves), **halves}


def _float32_reciprocal(value: float) -> float:
    """RN(1 / value) in float32 (an IEEE division on the CPU), as ``_quotient`` needs it."""
    return (torch.tensor(1.0) / torch.tensor(value, dtype=torch.float32)).item()


# How the fast path finds each element's constant C (``_round_fast``), cheapest first: one constant for all;
# from |y| (one grid, or a dual format's two halves with the same binades); from the signed y, where a dual
# format's negative half has one binade whose C is the positive half's lowest (DFQ's E1M2 / E2M1: max(y, 1)
# is 1 for every negative y); else each half's constants picked by x's sign.
STEPS_ONE, STEPS_MAGNITUDE, STEPS_SIGNED, STEPS_BY_SIGN = range(4)


def _steps_rule(c: dict) -> int:
    same = all(c[f"P_{k}"] == c[f"N_{k}"] for k in ("MIN_POWER", "SHIFT", "ONE_BINADE"))
    if same:
        return STEPS_ONE if c["P_ONE_BINADE"] else STEPS_MAGNITUDE
    if not c["P_ONE_BINADE"] and c["N_ONE_BINADE"] == c["P_MIN_POWER"] * c["P_SHIFT"]:
        return STEPS_SIGNED
    return STEPS_BY_SIGN


# The fast path's range of row scales (see _quotient): a normal float32 scale whose reciprocal is normal, and
# large enough that every quotient near a grid midpoint (|x / s| >= 2**-41, while the smallest midpoint of every
# grid is 2**-17, FP8 E5M2's) has an exact residual x - q * s (its last bit, 2**(-41 - 23 - 60 - 23) = 2**-147,
# is above float32's 2**-149).
FAST_SCALES = (2.0**-60, 2.0**126)
# The asymmetric INT kernel's fast path also bounds |x / s| (its rows may lie far from 0: a row of equal values
# with the 1e-5 floor has x / s up to ~1e38); at this bound x * r and the residuals are far from overflow.
FAST_MAX_QUOTIENT = 2.0**40


if HAVE_TRITON:

    @triton.jit
    def _quotient(x, minus_s, r):
        """RN(x / s) for the fast path, from r = RN(1 / s) of the row: a product and two exact-residual
        corrections (Markstein's theorem: q within an ulp of x / s, r within half an ulp of 1 / s, so
        fma(x - q * s, r, q) is the correctly rounded quotient). The first correction makes the product's
        quotient (up to 2 ulp away) faithful, the second rounds it correctly. Exact where FAST_SCALES says.
        (-s comes negated per row: Triton negates an element as 0 - q, an extra instruction.)"""
        q = x * r
        q = tl.fma(tl.fma(q, minus_s, x), r, q)
        return tl.fma(tl.fma(q, minus_s, x), r, q)

    @triton.jit
    def _by_sign(negative, on_positive, on_negative):
        """``on_negative`` where ``negative`` (x's sign bit spread over the word: x >> 31) is all ones, else
        ``on_positive``: a select on the bits, one instruction and no predicate register (with 16 or more
        elements per thread, predicates from x > 0 ran out of registers and were spilled)."""
        p = on_positive.to(tl.int32, bitcast=True)
        return (p ^ ((p ^ on_negative.to(tl.int32, bitcast=True)) & negative)).to(tl.float32, bitcast=True)

    @triton.jit
    def _binade(v):
        """2**floor(log2(v)) of a positive normal float32 (its exponent bits alone)."""
        return (v.to(tl.int32, bitcast=True) & 0x7F800000).to(tl.float32, bitcast=True)

    @triton.jit
    def _round_fast(y, negative, positive, TIE: tl.constexpr, DUAL: tl.constexpr, STEPS: tl.constexpr,
                    P_MIN_POWER: tl.constexpr, P_SHIFT: tl.constexpr, P_ONE_BINADE: tl.constexpr,
                    P_EVEN_FIELD: tl.constexpr, P_CODED_BIAS: tl.constexpr,
                    N_MIN_POWER: tl.constexpr, N_SHIFT: tl.constexpr, N_ONE_BINADE: tl.constexpr,
                    N_EVEN_FIELD: tl.constexpr, N_CODED_BIAS: tl.constexpr):
        """``round_to_format`` of a finite y with |y| at most the grid's end times (1 + 2**-22), as the fast
        path's quotients are: then the rounding never passes the grid's end, so no clamp is needed.

        Ties to even by one rounding addition: with C = 2**(e + 23 - m) of y's sign (e: y's binade, at least
        the grid's lowest), y + C lies in C's binade, whose float32 spacing is the grid's 2**(e - m), so
        (y + C) - C is y rounded to the grid, ties to the even step count, +0 for a zero (x + (-x) = +0).
        ``STEPS`` (``_steps_rule``) says how C is found."""
        if STEPS == 0:  # STEPS_ONE
            c = tl.zeros_like(y) + P_ONE_BINADE
        elif STEPS == 1:  # STEPS_MAGNITUDE
            c = _binade(tl.maximum(tl.abs(y), P_MIN_POWER)) * P_SHIFT
        elif STEPS == 2:  # STEPS_SIGNED
            c = _binade(tl.maximum(y, P_MIN_POWER)) * P_SHIFT
        else:  # STEPS_BY_SIGN
            lowest = _by_sign(negative, tl.cast(P_MIN_POWER, tl.float32), tl.cast(N_MIN_POWER, tl.float32))
            c = _binade(tl.maximum(tl.abs(y), lowest)) * _by_sign(negative, tl.cast(P_SHIFT, tl.float32),
                                                                  tl.cast(N_SHIFT, tl.float32))
            if P_ONE_BINADE != 0.0:
                c = _by_sign(negative, tl.cast(P_ONE_BINADE, tl.float32), c)
            if N_ONE_BINADE != 0.0:
                c = _by_sign(negative, c, tl.cast(N_ONE_BINADE, tl.float32))
        c = (c.to(tl.int32, bitcast=True) | (y.to(tl.int32, bitcast=True) & -0x80000000)).to(tl.float32, bitcast=True)
        rounded = (y + c) - c
        if TIE == 0:
            if P_EVEN_FIELD or N_EVEN_FIELD:
                # no mantissa: the tie at 1.5 * 2**e lies between 2**e and 2**(e + 1), whose codes differ in the
                # exponent field's last bit; the addition picked 2**(e + 1), the even code may be 2**e
                power = c * 2.0**-23  # 2**e of y's sign (C's field is e + 150)
                field = c.to(tl.int32, bitcast=True) >> 23 & 0xFF
                even = (((field - 150 + P_CODED_BIAS) & 1) == 0) & P_EVEN_FIELD
                if DUAL:
                    even = tl.where(positive, even, (((field - 150 + N_CODED_BIAS) & 1) == 0) & N_EVEN_FIELD)
                rounded = tl.where((tl.abs(y) == tl.abs(power) * 1.5) & even, power, rounded)
        else:
            half = tl.abs(c * 2.0**-24)  # half a grid step, exact
            tie = tl.abs(rounded - y) == half  # the difference is exact: both lie within a step
            rounded = tl.where(tie, y + half if TIE == 1 else y - half, rounded)  # toward +inf / -inf; +0 at 0
        return rounded

    @triton.jit
    def _integer_ties(y, nearest, TIE: tl.constexpr):
        """``rounding.round_to_integer`` of y, op for op, from its nearest integer ``rint(y)`` (ties to even):
        the tie mode's correction, and +0 for a zero (-0 + 0 and -1 + 1 are +0)."""
        if TIE == 0:
            rounded = (nearest + 1.0) - 1.0
        elif TIE == 1:
            rounded = nearest + tl.where(y - nearest == 0.5, 1.0, 0.0)
        else:
            rounded = (nearest - 1.0) + tl.where(y - nearest != -0.5, 1.0, 0.0)
        return rounded

    @triton.jit
    def _round_exact(y, LOW: tl.constexpr, HIGH: tl.constexpr, TIE: tl.constexpr,
                     P_MIN_FIELD: tl.constexpr, P_MAX_FIELD: tl.constexpr, P_MBITS: tl.constexpr,
                     P_EVEN_FIELD: tl.constexpr, P_CODED_BIAS: tl.constexpr,
                     N_MIN_FIELD: tl.constexpr, N_MAX_FIELD: tl.constexpr, N_MBITS: tl.constexpr,
                     N_EVEN_FIELD: tl.constexpr, N_CODED_BIAS: tl.constexpr):
        """``round_to_format`` of any float32 y, step by step as in ``rounding.py``: NaN and +-Inf -> +0, the
        spacing from the exponent bits, ``rint`` and the tie corrections, the clamp to the grid's ends."""
        field = (y.to(tl.int32, bitcast=True) >> 23) & 0xFF
        y = tl.where(field == 0xFF, 0.0, y)
        positive = y > 0
        clamped = tl.minimum(tl.maximum(field, tl.where(positive, P_MIN_FIELD, N_MIN_FIELD)),
                             tl.where(positive, P_MAX_FIELD, N_MAX_FIELD))
        spacing_field = clamped - tl.where(positive, P_MBITS, N_MBITS)
        steps = y * ((254 - spacing_field) << 23).to(tl.float32, bitcast=True)  # exact: times 2**-k (254: 2 x bias)
        nearest = libdevice.rint(steps)
        if TIE == 0:
            if P_EVEN_FIELD or N_EVEN_FIELD:  # no mantissa: a tie at 1.5 steps goes to the even exponent field
                even_p = (((clamped - 127 + P_CODED_BIAS) & 1) == 0) & P_EVEN_FIELD  # 127: float32's bias
                even_n = (((clamped - 127 + N_CODED_BIAS) & 1) == 0) & N_EVEN_FIELD
                even = tl.where(positive, even_p, even_n)
                nearest = tl.where((tl.abs(steps) == 1.5) & even, tl.where(steps > 0, 1.0, -1.0), nearest)
        rounded = _integer_ties(steps, nearest, TIE)
        return tl.minimum(tl.maximum(rounded * (spacing_field << 23).to(tl.float32, bitcast=True), LOW), HIGH)

    @triton.jit
    def _load_tile(x_ptr, rows, row_length, BLOCK_R: tl.constexpr, BLOCK_L: tl.constexpr):
        """A program's tile of rows in float32, elements beyond the rows 0, and where they are in memory.
        NaN and +-Inf quantize to 0 and are left out of the scale: they are zeroed here, once."""
        row = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R).to(tl.int64)
        col = tl.arange(0, BLOCK_L)
        mask = (row < rows)[:, None] & (col < row_length)[None, :]
        offsets = row[:, None] * row_length + col[None, :]
        x = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        return tl.where(tl.abs(x) < float("inf"), x, 0.0), offsets, mask

    @triton.jit
    def _fake_quantize_rows_kernel(
        x_ptr, out_ptr, rows, row_length, out_max, fast_absmax,
        BLOCK_R: tl.constexpr, BLOCK_L: tl.constexpr, DUAL: tl.constexpr, TIE: tl.constexpr, STEPS: tl.constexpr,
        MAX_POS: tl.constexpr, MAX_NEG: tl.constexpr, MAX_POS_RECIPROCAL: tl.constexpr,
        MAX_NEG_RECIPROCAL: tl.constexpr, LOW: tl.constexpr, HIGH: tl.constexpr,
        P_MIN_FIELD: tl.constexpr, P_MAX_FIELD: tl.constexpr, P_MBITS: tl.constexpr, P_EVEN_FIELD: tl.constexpr,
        P_CODED_BIAS: tl.constexpr, P_MIN_POWER: tl.constexpr, P_SHIFT: tl.constexpr, P_ONE_BINADE: tl.constexpr,
        N_MIN_FIELD: tl.constexpr, N_MAX_FIELD: tl.constexpr, N_MBITS: tl.constexpr, N_EVEN_FIELD: tl.constexpr,
        N_CODED_BIAS: tl.constexpr, N_MIN_POWER: tl.constexpr, N_SHIFT: tl.constexpr, N_ONE_BINADE: tl.constexpr,
        FAST_MIN_SCALE: tl.constexpr, FAST_MAX_SCALE: tl.constexpr,
    ):
        x, offsets, mask = _load_tile(x_ptr, rows, row_length, BLOCK_R, BLOCK_L)

        # scales: absmax (of each sign, for a dual format) over the format's maximum
        if DUAL:
            absmax_pos = tl.maximum(tl.max(x, axis=1), 0.0)
            absmax_neg = tl.maximum(-tl.min(x, axis=1), 0.0)
        else:
            absmax_pos = tl.max(tl.abs(x), axis=1)
            absmax_neg = absmax_pos
        # the scales as the fast path divides (exact for a scale in FAST_SCALES; the exact path divides again)
        s_pos = _quotient(absmax_pos, -MAX_POS, MAX_POS_RECIPROCAL)
        s_neg = _quotient(absmax_neg, -MAX_NEG, MAX_NEG_RECIPROCAL) if DUAL else s_pos

        # Fast path for the tile when every scale is 0 or in FAST_SCALES and the dequantized values cannot pass
        # the dtype's largest value (fast_absmax); else the exact path, which divides and rounds step by step.
        fast_pos = (s_pos == 0.0) | ((s_pos >= FAST_MIN_SCALE) & (s_pos <= FAST_MAX_SCALE))
        fast_neg = (s_neg == 0.0) | ((s_neg >= FAST_MIN_SCALE) & (s_neg <= FAST_MAX_SCALE))
        fast = fast_pos & fast_neg & (absmax_pos <= fast_absmax) & (absmax_neg <= fast_absmax)
        positive = x > 0
        s_pos = s_pos[:, None]
        s_neg = s_neg[:, None]
        if tl.min(fast.to(tl.int32), axis=0) == 1:
            # A dual format's half is picked by x's sign bit, not x > 0: they differ at +0 only, which quantizes
            # to +0 on either half.
            negative = x.to(tl.int32, bitcast=True) >> 31
            r_pos = tl.where(s_pos > 0.0, tl.math.div_rn(1.0, s_pos), 0.0)  # a zero row: 0 * 0 = +0, not 0 / 0
            if DUAL:
                r_neg = tl.where(s_neg > 0.0, tl.math.div_rn(1.0, s_neg), 0.0)
                scale = _by_sign(negative, s_pos, s_neg)
                y = _quotient(x, _by_sign(negative, -s_pos, -s_neg), _by_sign(negative, r_pos, r_neg))
            else:
                scale = s_pos
                y = _quotient(x, -s_pos, r_pos)
            level = _round_fast(y, negative, positive, TIE, DUAL, STEPS, P_MIN_POWER, P_SHIFT, P_ONE_BINADE,
                                P_EVEN_FIELD, P_CODED_BIAS, N_MIN_POWER, N_SHIFT, N_ONE_BINADE, N_EVEN_FIELD,
                                N_CODED_BIAS)
            value = level * scale  # a level's sign is x's (or it is +0)
        else:
            s_pos = tl.math.div_rn(absmax_pos, MAX_POS)[:, None]
            s_neg = tl.math.div_rn(absmax_neg, MAX_NEG)[:, None]
            y = tl.math.div_rn(x, tl.where(positive, s_pos, s_neg))
            level = _round_exact(y, LOW, HIGH, TIE, P_MIN_FIELD, P_MAX_FIELD, P_MBITS,
                                 P_EVEN_FIELD, P_CODED_BIAS, N_MIN_FIELD, N_MAX_FIELD, N_MBITS, N_EVEN_FIELD,
                                 N_CODED_BIAS)
            # quantize._dequantize_groups: the level times its scale, saturated to the output dtype's range
            value = level * tl.where(level > 0, s_pos, s_neg)
            value = tl.minimum(tl.maximum(value, -out_max), out_max)
        tl.store(out_ptr + offsets, value.to(out_ptr.dtype.element_ty, fp_downcast_rounding="rtne"), mask=mask)

    @triton.jit
    def _fake_quantize_asymmetric_rows_kernel(
        x_ptr, out_ptr, rows, row_length, out_max,
        BLOCK_R: tl.constexpr, BLOCK_L: tl.constexpr, PADDED: tl.constexpr, TIE: tl.constexpr,
        INT_MIN: tl.constexpr, INT_MAX: tl.constexpr, LEVELS: tl.constexpr, MIN_RANGE: tl.constexpr,
        FAST_MIN_SCALE: tl.constexpr, FAST_MAX_SCALE: tl.constexpr, FAST_MAX_QUOTIENT: tl.constexpr,
    ):
        """``quantize._quantize_groups`` for an asymmetric IntFormat, op for op in float32: the row's scale and
        zero point (``_asymmetric_scale``), then per element the quotient, ``round_to_integer``, the zero point,
        the clamp and the dequantizing product. Non-finite elements were zeroed, so their level is
        round(0) + zp = zp, what eager mode's select gives."""
        x, offsets, mask = _load_tile(x_ptr, rows, row_length, BLOCK_R, BLOCK_L)
        if PADDED:  # the columns beyond a row's end are loaded as 0, which must not enter its min and max
            in_row = (tl.arange(0, BLOCK_L) < row_length)[None, :]
            low = tl.min(tl.where(in_row, x, float("inf")), axis=1)
            high = tl.max(tl.where(in_row, x, -float("inf")), axis=1)
        else:
            low = tl.min(x, axis=1)
            high = tl.max(x, axis=1)
        scale = tl.math.div_rn(tl.maximum(high - low, MIN_RANGE), LEVELS)
        scale = tl.where(scale < float("inf"), scale, tl.math.div_rn(high, LEVELS) - tl.math.div_rn(low, LEVELS))
        magnitude = tl.maximum(tl.abs(low), tl.abs(high))
        scale = tl.where(tl.math.div_rn(magnitude, scale) < float("inf"), scale, tl.math.div_rn(magnitude, LEVELS))
        shifted_low = INT_MIN - tl.math.div_rn(low, scale)
        zero_point = _integer_ties(shifted_low, libdevice.rint(shifted_low), TIE)[:, None]

        # Fast quotient (``_quotient``) for the tile when every scale lies in FAST_SCALES and every |x / s| is
        # at most FAST_MAX_QUOTIENT (the product x * r and the residuals stay far from overflow): then it is
        # the IEEE quotient wherever |x / s| >= 2**-41, and below that every quotient rounds to 0 alike.
        fast = (scale >= FAST_MIN_SCALE) & (scale <= FAST_MAX_SCALE) & (magnitude <= scale * FAST_MAX_QUOTIENT)
        if tl.min(fast.to(tl.int32), axis=0) == 1:
            y = _quotient(x, -scale[:, None], tl.math.div_rn(1.0, scale)[:, None])
        else:
            y = tl.math.div_rn(x, scale[:, None])
        level = _integer_ties(y, libdevice.rint(y), TIE) + zero_point
        level = tl.minimum(tl.maximum(level, INT_MIN), INT_MAX)
        value = (level - zero_point) * scale[:, None]
        value = tl.minimum(tl.maximum(value, -out_max), out_max)
        tl.store(out_ptr + offsets, value.to(out_ptr.dtype.element_ty, fp_downcast_rounding="rtne"), mask=mask)


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one object per case (``_plan`` is cached)
class _Plan:
    """Everything of a launch but the tensors and the row count: the kernel, its tile, its trailing arguments
    (the scalars, then every constexpr in the kernel's parameter order) and its compile options."""

    kernel: object
    block_rows: int
    trailing: tuple
    options: tuple


@functools.cache
def _plan(fmt: Format, tie: Tie, dtype: torch.dtype, length: int, block_rows: int | None,
          num_warps: int | None) -> _Plan:
    block_l = triton.next_power_of_2(length)
    # a dual format holds twice the per-row values and selects: at 32 elements per thread it needed 126
    # registers (62 at 16) and ran slower
    per_thread = _BYTES_PER_THREAD // dtype.itemsize // (2 if isinstance(fmt, DualFormat) else 1)
    block_r = block_rows or max(1, 64 * per_thread // block_l)
    constants = {"BLOCK_R": block_r, "BLOCK_L": block_l, "FAST_MIN_SCALE": FAST_SCALES[0],
                 "FAST_MAX_SCALE": FAST_SCALES[1], **_constants(fmt, tie)}
    scalars = (torch.finfo(dtype).max,)
    if isinstance(fmt, IntFormat) and not fmt.symmetric:
        kernel = _fake_quantize_asymmetric_rows_kernel
        constants["PADDED"] = block_l != length
    else:
        kernel = _fake_quantize_rows_kernel
        scalars += (_FAST_ABSMAX[dtype],)
    names = kernel.arg_names[4 + len(scalars):]  # after x_ptr, out_ptr, rows, row_length and the scalars
    options = {"num_warps": num_warps or min(8, max(1, block_r * block_l // (32 * per_thread))),
               "enable_fp_fusion": False, "enable_reflect_ftz": False}
    return _Plan(kernel, block_r, scalars + tuple(constants[name] for name in names), tuple(options.items()))


# Launched through Triton's JIT, every call binds and specializes the kernel's ~40 arguments and builds its cache
# key from them: 47-87 us of host time per call on the H200, against 8-11 us for a clone. So the compiled kernel
# is launched directly once known, keyed by what Triton specializes a compiled kernel on besides the plan: the
# device, the input pointer's 16-byte alignment (the output is a fresh allocation) and the row count's size
# class (1, a multiple of 16, 32 or 64 bits).
_COMPILED: dict[tuple, object] = {}


def fused_fake_quantize_rows(rows: torch.Tensor, fmt: Format, tie: Tie, *, block_rows: int | None = None,
                             num_warps: int | None = None) -> torch.Tensor:
    """``fake_quantize`` of a contiguous CUDA (rows, row length) tensor with one scale (pair) per row, in the
    rows' dtype; the case must be :func:`supported`. ``block_rows``, ``num_warps``: the tile (rows per program,
    a power of two; default ``_BYTES_PER_THREAD``) and its warps, for tuning; the bits do not depend on them."""
    count, length = rows.shape
    plan = _plan(fmt, tie, rows.dtype, length, block_rows, num_warps)
    out = torch.empty_like(rows)
    grid = (triton.cdiv(count, plan.block_rows), 1, 1)  # three dimensions: a compiled kernel's launcher reads each
    key = (plan, rows.device, rows.data_ptr() % 16 == 0, count == 1, count % 16 == 0, count < 2**31)
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = plan.kernel[grid](rows, out, count, length, *plan.trailing, **dict(plan.options))
        if isinstance(compiled, CompiledKernel):  # (Triton's interpreter returns none)
            _COMPILED[key] = compiled
    else:
        compiled[grid](rows, out, count, length, *plan.trailing)
    return out
