"""A printable summary of formats."""

from __future__ import annotations

from .dual_format import DualFormat
from .float_format import FloatFormat
from .registry import Format


def describe(fmt: Format) -> dict[str, object]:
    """One row: widths, bias, range and number of distinct levels."""
    row: dict[str, object] = {"format": fmt.name, "bits": fmt.bits}
    if isinstance(fmt, FloatFormat):
        row.update(exponent_bits=fmt.exponent_bits, mantissa_bits=fmt.mantissa_bits, bias=fmt.bias)
    elif isinstance(fmt, DualFormat):
        row.update(negative=fmt.negative.name, positive=fmt.positive.name)
    row.update(min=fmt.min_value, max=fmt.max_value, levels=fmt.grid.numel())
    return row


def code_table(formats: list[Format]) -> dict[str, list]:
    """Every bit code (as a binary string, sign bit first) and its value in each format."""
    bits = {f.bits for f in formats}
    if len(bits) != 1:
        raise ValueError(f"a code table needs formats of one width, got widths {sorted(bits)}")
    width = bits.pop()
    codes = list(range(2**width))
    table: dict[str, list] = {"code": [format(c, f"0{width}b") for c in codes]}
    for fmt in formats:
        table[fmt.name] = [v + 0.0 for v in fmt.values_by_code.tolist()]  # + 0.0 prints -0 as 0
    return table
