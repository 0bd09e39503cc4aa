"""fp4_scale_pass against fpqvar.hw.scale_pass: every maximum of a 12-bit input on both DFQ sides (so every table
entry and exponent), seeded random groups, gaps and backpressure; latency and initiation interval against the
cycle model (cocotb side: cocotb_fp4_scale_pass.py)."""

import random

import pytest
import torch
from simulate import simulate

from fpqvar.hw import fp4_scale_pass, scale_pass


def groups(group: int, width: int, rng: random.Random) -> list[list[int]]:
    """Extremes, a group for every maximum each side can have, and 200 random groups."""
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    found = [[0] * group, [low] * group, [high] * group, [low, high] + [0] * (group - 2)]
    maxima = list(range(high + 2))  # 0 .. 2**(width-1): every maximum a side can have
    shuffled = maxima[:]
    rng.shuffle(shuffled)
    for positive, negative in zip(maxima, shuffled, strict=True):
        positive = min(positive, high)
        inner = [rng.randint(-negative, positive) for _ in range(group - 2)]
        members = [positive, -negative, *inner]
        rng.shuffle(members)
        found.append(members)
    found += [[rng.randint(low, high) for _ in range(group)] for _ in range(200)]
    return found


def timing_vectors(parameters: dict) -> dict:
    return {"latency": fp4_scale_pass.LATENCY}


def vectors(parameters: dict) -> dict:
    group, width, dual = parameters["GROUP"], parameters["WIDTH"], bool(parameters["DUAL"])
    rng = random.Random(11)
    data = groups(group, width, rng)
    lasts = [rng.random() < 0.25 for _ in data]
    scales = scale_pass(torch.tensor(data), dual=dual, index_bits=parameters["INDEX_BITS"])
    sides = [scales["positive"], *([scales["negative"]] if dual else [])]
    expected = []
    for i, values in enumerate(data):
        row = [values]
        for side in sides:
            row += [int(side.max[i, 0]), int(side.reciprocal[i, 0]), int(side.exponent[i, 0])]
        expected.append([*row, lasts[i]])
    return {"groups": data, "lasts": lasts, "expected": expected, **timing_vectors(parameters)}


@pytest.mark.parametrize("dual", [0, 1])  # E2M1: one absmax side; DFQ: both sides, both tables
def test_fp4_scale_pass(simulator, dual):
    parameters = {"GROUP": 8, "WIDTH": 12, "DUAL": dual, "INDEX_BITS": 8}
    simulate(simulator, "fp4_scale_pass", "cocotb_fp4_scale_pass", parameters, vectors=vectors(parameters))
