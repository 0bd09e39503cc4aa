"""Formats by name, including the names the released FPQVAR code uses on its command line, and any dual format
by its canonical name ``dfq_<negative>neg_<positive>pos`` (what the DFQ search returns)."""

from __future__ import annotations

import functools
import re

from .dual_format import AFPQ_FP4, DFQ_FP4, DFQ_FP6, DualFormat, dual_name, half_name
from .float_format import (
    FP4_E1M2,
    FP4_E1M2_BIAS1,
    FP4_E2M1,
    FP4_E3M0,
    FP6_E2M3,
    FP6_E3M2,
    FP8_E4M3,
    FP8_E5M2,
    FloatFormat,
)
from .int_format import INT4, INT4_ASYM, INT6, INT6_ASYM, INT8, INT8_ASYM, IntFormat

Format = FloatFormat | IntFormat | DualFormat

FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        FP4_E1M2, FP4_E2M1, FP4_E3M0, FP6_E2M3, FP6_E3M2, FP8_E4M3, FP8_E5M2,
        INT4, INT6, INT8, INT4_ASYM, INT6_ASYM, INT8_ASYM,
        DFQ_FP4, DFQ_FP6, AFPQ_FP4,
    )
}

# Grids of the released code that differ from the paper's (offered for its behaviour; not the paper's formats).
RELEASED_FORMATS: dict[str, Format] = {f.name: f for f in (FP4_E1M2_BIAS1,)}

# `--*_fp_type` values of the released code (fpqvar-official-behaviour.md, sections 1.2-1.3).
RELEASED_CODE_NAMES: dict[str, str] = {
    "fp_e1": "fp4_e1m2",
    "fp_e2": "fp4_e2m1",
    "fp_e3": "fp4_e3m0",
    "fp6_e2m3": "fp6_e2m3",
    "fp6_e3m2": "fp6_e3m2",
    "fp_e1m2_neg_e2m1_pos": "dfq_e1m2neg_e2m1pos",
    "fp6_int_neg_e2m3_pos": "dfq_int6neg_e2m3pos",
    "fp4_afpq": "afpq_e2m1",
}

_HALVES: dict[str, FloatFormat | IntFormat] = {
    half_name(f): f for f in [*FORMATS.values(), *RELEASED_FORMATS.values()] if not isinstance(f, DualFormat)
}
_DUAL_NAME = re.compile(r"dfq_(\w+?)neg_(\w+)pos")


def dual_format(negative: FloatFormat | IntFormat, positive: FloatFormat | IntFormat) -> DualFormat:
    """The dual format of these halves: the registered one where it exists (so its name is the familiar one),
    else one named canonically; ``get_format(result.name) == result`` either way."""
    for fmt in FORMATS.values():
        if isinstance(fmt, DualFormat) and (fmt.negative, fmt.positive) == (negative, positive):
            return fmt
    return DualFormat(dual_name(negative, positive), negative, positive)


@functools.cache
def _parse_dual(name: str) -> DualFormat | None:
    match = _DUAL_NAME.fullmatch(name)
    if match is None or match[1] not in _HALVES or match[2] not in _HALVES:
        return None
    return dual_format(_HALVES[match[1]], _HALVES[match[2]])


def get_format(name: str | Format) -> Format:
    """The format called ``name`` (ours, the released code's, or a canonical dual name); formats pass through."""
    if not isinstance(name, str):
        return name
    key = RELEASED_CODE_NAMES.get(name, name).lower()
    fmt = FORMATS.get(key) or RELEASED_FORMATS.get(key) or _parse_dual(key)
    if fmt is None:
        known = ", ".join(sorted(FORMATS) + sorted(RELEASED_FORMATS) + sorted(RELEASED_CODE_NAMES))
        raise ValueError(
            f"unknown number format {name!r}; known formats: {known}, and dual formats "
            f"dfq_<negative>neg_<positive>pos with halves {', '.join(sorted(_HALVES))}"
        )
    return fmt
