"""Low-bit number formats as data: widths, bias, grid of values, and bit-code encode/decode."""

from .describe import code_table, describe
from .dual_format import AFPQ_FP4, DFQ_FP4, DFQ_FP6, DualFormat, dual_name
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
from .registry import FORMATS, RELEASED_CODE_NAMES, RELEASED_FORMATS, Format, dual_format, get_format

__all__ = [
    "AFPQ_FP4", "DFQ_FP4", "DFQ_FP6", "DualFormat", "dual_name", "dual_format",
    "FP4_E1M2", "FP4_E1M2_BIAS1", "FP4_E2M1", "FP4_E3M0", "FP6_E2M3", "FP6_E3M2", "FP8_E4M3", "FP8_E5M2", "FloatFormat",
    "INT4", "INT4_ASYM", "INT6", "INT6_ASYM", "INT8", "INT8_ASYM", "IntFormat",
    "code_table", "describe", "FORMATS", "RELEASED_CODE_NAMES", "RELEASED_FORMATS", "Format", "get_format",
]
