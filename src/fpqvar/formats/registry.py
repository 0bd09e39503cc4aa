"""Formats by name, including the names the released FPQVAR code uses on its command line."""

from __future__ import annotations

from .dual_format import AFPQ_FP4, DFQ_FP4, DFQ_FP6, DualFormat
from .float_format import FP4_E1M2, FP4_E2M1, FP4_E3M0, FP6_E2M3, FP6_E3M2, FP8_E4M3, FP8_E5M2, FloatFormat
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


def get_format(name: str | Format) -> Format:
    """The format called ``name`` (ours or the released code's); formats pass through."""
    if not isinstance(name, str):
        return name
    key = RELEASED_CODE_NAMES.get(name, name).lower()
    if key not in FORMATS:
        known = ", ".join(sorted(FORMATS) + sorted(RELEASED_CODE_NAMES))
        raise ValueError(f"unknown number format {name!r}; known formats: {known}")
    return FORMATS[key]
