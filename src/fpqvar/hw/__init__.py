"""Bit-exact models of the hardware in rtl/: the same arithmetic, bit for bit, in Python."""

from .lut_multiplier import PRODUCT_FRACTION_BITS, lut_multiplier_table, lut_product

__all__ = ["PRODUCT_FRACTION_BITS", "lut_multiplier_table", "lut_product"]
