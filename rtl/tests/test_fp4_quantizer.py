"""fp4_quantizer (scale pass + encode pass) against fpqvar.hw.quantize_group: groups with every maximum of a 12-bit
input, seeded random groups, gaps and backpressure; latency and initiation interval against the cycle model
(cocotb side: cocotb_fp4_quantizer.py)."""

import random

import pytest
import torch
from simulate import simulate
from test_fp4_scale_pass import groups

from fpqvar.hw import fp4_quantizer, quantize_group


def timing_vectors(parameters: dict) -> dict:
    return {"latency": fp4_quantizer.LATENCY}


def vectors(parameters: dict) -> dict:
    dual, tie = bool(parameters["DUAL"]), "up" if parameters["TIE_UP"] else "even"
    rng = random.Random(12)
    data = groups(parameters["GROUP"], parameters["WIDTH"], rng)
    lasts = [rng.random() < 0.25 for _ in data]
    codes, maxima = quantize_group(torch.tensor(data), dual=dual, tie=tie, index_bits=parameters["INDEX_BITS"])
    negative = maxima[0] if dual else torch.zeros_like(maxima[0])
    expected = [[codes[i].tolist(), int(maxima[-1][i, 0]), int(negative[i, 0]), lasts[i]] for i in range(len(data))]
    return {"groups": data, "lasts": lasts, "expected": expected, **timing_vectors(parameters)}


@pytest.mark.parametrize("dual", [0, 1])
def test_fp4_quantizer(simulator, dual):
    parameters = {"GROUP": 8, "WIDTH": 12, "DUAL": dual, "TIE_UP": 0, "INDEX_BITS": 8}
    simulate(simulator, "fp4_quantizer", "cocotb_fp4_quantizer", parameters, vectors=vectors(parameters))
