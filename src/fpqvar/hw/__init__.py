"""Bit-exact models of the hardware in rtl/: the same arithmetic, bit for bit, in Python."""

from .fht import fht, output_width
from .fp4_encoder import dfq_encoder_table, e2m1_encoder_table, encode_scaled
from .gemm import contribution_width, gemm, gemm_report, group_sum_width, output_unit, weight_scale_fixed_point
from .lut_multiplier import PRODUCT_FRACTION_BITS, lut_multiplier_table, lut_product
from .pipeline import LATENCY, Block, gemm_job_cycles, ght, linear_tile, linear_tile_cycles, overlap_cycles
from .quantizer import (
    RECIPROCAL_INDEX_BITS,
    GroupScale,
    dequantize_group,
    mismatch_report,
    quantize_group,
    reciprocal_error_bound,
    reciprocal_fraction_bits,
    reciprocal_table,
    scale_pass,
    scale_to_table,
)

__all__ = [
    "fht", "output_width",
    "dfq_encoder_table", "e2m1_encoder_table", "encode_scaled",
    "contribution_width", "gemm", "gemm_report", "group_sum_width", "output_unit", "weight_scale_fixed_point",
    "PRODUCT_FRACTION_BITS", "lut_multiplier_table", "lut_product",
    "LATENCY", "Block", "gemm_job_cycles", "ght", "linear_tile", "linear_tile_cycles", "overlap_cycles",
    "RECIPROCAL_INDEX_BITS", "GroupScale", "dequantize_group", "mismatch_report", "quantize_group",
    "reciprocal_error_bound", "reciprocal_fraction_bits", "reciprocal_table", "scale_pass", "scale_to_table",
]
