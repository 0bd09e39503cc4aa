"""Bit-exact models of the hardware in rtl/: the same arithmetic, bit for bit, in Python. One module per RTL
module (rtl/src/<name>.v -> fpqvar.hw.<name>; fp4_lut_multiplier also covers its product table fp4_product_lut),
plus the accelerator's performance model (workload, performance)."""

from . import fp4_encoder, fp4_gemm, fp4_lut_multiplier, fp4_quantizer, fp4_scale_pass
from .fht import fht, fht_latency, output_width
from .fmu_overlap_controller import JobPair, overlap_cycles
from .fp4_encoder import dfq_encoder_table, e2m1_encoder_table, encode_scaled
from .fp4_gemm import (
    contribution_width,
    gemm,
    gemm_job_cycles,
    gemm_report,
    group_sum_width,
    output_unit,
    weight_scale_fixed_point,
)
from .fp4_lut_multiplier import PRODUCT_FRACTION_BITS, lut_multiplier_table, lut_product
from .fp4_quantizer import dequantize_group, mismatch_report, quantize_group, scale_to_table
from .fp4_scale_pass import (
    RECIPROCAL_INDEX_BITS,
    GroupScale,
    reciprocal_error_bound,
    reciprocal_fraction_bits,
    reciprocal_table,
    scale_pass,
)
from .ght import ght, ght_latency
from .linear_tile import linear_tile, linear_tile_cycles, linear_tile_latency

__all__ = [
    "fp4_encoder", "fp4_gemm", "fp4_lut_multiplier", "fp4_quantizer", "fp4_scale_pass",
    "fht", "fht_latency", "output_width",
    "JobPair", "overlap_cycles",
    "dfq_encoder_table", "e2m1_encoder_table", "encode_scaled",
    "contribution_width", "gemm", "gemm_job_cycles", "gemm_report", "group_sum_width", "output_unit",
    "weight_scale_fixed_point",
    "PRODUCT_FRACTION_BITS", "lut_multiplier_table", "lut_product",
    "dequantize_group", "mismatch_report", "quantize_group", "scale_to_table",
    "RECIPROCAL_INDEX_BITS", "GroupScale", "reciprocal_error_bound", "reciprocal_fraction_bits", "reciprocal_table",
    "scale_pass",
    "ght", "ght_latency",
    "linear_tile", "linear_tile_cycles", "linear_tile_latency",
]
