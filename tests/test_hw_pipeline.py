"""The two-level pipeline's models: the committed cycle measurements against the cycle model, and the linear
tile (GHT -> fixed-point quantizer -> GEMM) against the software rotation, quantizer and matmul."""

import json

import pytest
import torch

from fpqvar.formats import FP4_E2M1
from fpqvar.hw import (
    JobPair,
    fp4_encoder,
    fp4_gemm,
    fp4_lut_multiplier,
    fp4_quantizer,
    fp4_scale_pass,
    gemm_job_cycles,
    ght_latency,
    linear_tile,
    linear_tile_cycles,
    output_unit,
    overlap_cycles,
    weight_scale_fixed_point,
)
from fpqvar.paths import data_dir
from fpqvar.quant import PerGroup, fake_quantize, quantize
from fpqvar.rotation import block_diagonal_hadamard


def _expected_cycles(module: str, p: dict) -> dict:
    """What the cycle model says each timing test measures, for that build's parameters."""
    latency = {"fp4_lut_multiplier": fp4_lut_multiplier.LATENCY, "fp4_encoder": fp4_encoder.LATENCY,
               "fp4_scale_pass": fp4_scale_pass.LATENCY, "fp4_quantizer": fp4_quantizer.LATENCY}
    if module in latency:
        return {f"{module}_latency": latency[module], f"{module}_interval": 1}
    if module == "ght":
        return {"ght_latency": ght_latency(p["LOG2N"]), "ght_interval": 1}
    if module == "fp4_gemm":
        name = "fp4_gemm_dfq" if p["DUAL"] else "fp4_gemm_e2m1"
        return {f"{name}_latency": fp4_gemm.LATENCY, f"{name}_beat_interval": 1,
                f"{name}_tile_15_groups": gemm_job_cycles(15 * p["GROUP"] // p["LANES"])}
    if module == "linear_tile":
        key = "linear_tile_sequential" if p["SEQUENTIAL"] else "linear_tile_pipelined"
        return {key: linear_tile_cycles(p["GROUPS"], p["LOG2N"], sequential=bool(p["SEQUENTIAL"]))}
    raise KeyError(module)


def test_committed_cycle_measurements_agree_with_the_cycle_model():
    cycles = json.loads((data_dir() / "hw" / "cycles.json").read_text())
    modules = {row["module"] for row in cycles["measurements"]}
    assert {"fp4_scale_pass", "fp4_quantizer", "fp4_gemm", "ght", "linear_tile", "fmu_overlap_controller"} <= modules
    for row in cycles["measurements"]:
        measured = row["measured"]
        if row["module"] == "fmu_overlap_controller":
            pairs = [JobPair(measured["fmu_fc2_beats"], measured["fmu_ada_lin_beats"])] * measured["fmu_blocks"]
            assert measured["fmu_sequential"] == overlap_cycles(pairs, overlap=False)
            assert measured["fmu_overlapped"] == overlap_cycles(pairs, overlap=True)
        else:
            assert measured == _expected_cycles(row["module"], row["parameters"]), row


def test_pipelining_and_overlap_save_cycles():
    for groups in (1, 8, 15):
        assert linear_tile_cycles(groups, 7) < linear_tile_cycles(groups, 7, sequential=True)
    pairs = [JobPair(60, 15)] * 3
    assert overlap_cycles(pairs, overlap=True) == 3 * gemm_job_cycles(60)
    assert overlap_cycles(pairs, overlap=False) == 3 * (gemm_job_cycles(60) + gemm_job_cycles(15))
    with pytest.raises(ValueError, match="at least one group"):
        linear_tile_cycles(0, 7)


def test_linear_tile_against_the_software_path():
    """Hardware: GHT in integers, the fixed-point quantizer, the GEMM unit, 16-bit weight scales with the GHT's
    1/128 folded in. Software: x H_B (orthogonal GHT) and W H_B fake-quantized, float64 matmul. Both estimate
    x W^T; the hardware's error stays close to the software's."""
    g = torch.Generator().manual_seed(0)
    rows, cols, c = 16, 16, 512
    x = (torch.randn(rows, c, generator=g) * 300).round().long()
    x[:, 5] *= 40  # an outlier channel, what GHT is for
    x = x.clamp(-(2**15), 2**15 - 1)
    w = torch.randn(cols, c, generator=g)
    rotation = block_diagonal_hadamard(c, 128)  # orthogonal: H / sqrt(128) per group
    w_rotated = w.double() @ rotation / 128**0.5  # x W^T = (x H)(W H)^T / 128; hardware's x H is unnormalised
    wq = quantize(w_rotated, FP4_E2M1, PerGroup(128))
    ws, unit = weight_scale_fixed_point(wq.scale, 16)
    result = linear_tile(x, wq.codes.long(), ws, log2n=7, width=16, weight_scale_width=16)
    hardware = torch.tensor([[float(v * output_unit()) for v in row] for row in result], dtype=torch.float64) * unit
    software = (fake_quantize(x.double() @ rotation, FP4_E2M1, PerGroup(128))
                @ fake_quantize(w.double() @ rotation, FP4_E2M1, PerGroup(128)).T)
    exact = x.double() @ w.double().T
    hardware_error = float((hardware - exact).norm() / exact.norm())
    software_error = float((software - exact).norm() / exact.norm())
    assert hardware_error < 1.15 * software_error
    assert float((hardware - software).norm() / software.norm()) < 0.25
