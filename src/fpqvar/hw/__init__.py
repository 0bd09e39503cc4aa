"""Bit-exact models of the hardware in rtl/: the same arithmetic, bit for bit, in Python."""

from .fht import fht, output_width
from .fp4_encoder import dfq_encoder_table, e2m1_encoder_table, encode_scaled
from .lut_multiplier import PRODUCT_FRACTION_BITS, lut_multiplier_table, lut_product
from .quantizer import dequantize_group, mismatch_report, quantize_group

__all__ = ["dequantize_group", "mismatch_report", "quantize_group", "fht", "output_width", "dfq_encoder_table", "e2m1_encoder_table", "encode_scaled", "PRODUCT_FRACTION_BITS", "lut_multiplier_table", "lut_product"]
