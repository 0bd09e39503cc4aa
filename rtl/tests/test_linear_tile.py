"""linear_tile (GHT -> quantizer -> GEMM) against fpqvar.hw.linear_tile: seeded random tiles with gaps on
both streams and backpressure; cycle counts of one tile, pipelined and sequential, against the cycle model
(cocotb side: cocotb_linear_tile.py)."""

import random

import pytest
import torch
from simulate import simulate
from streams import pack

from fpqvar.hw import contribution_width, linear_tile, linear_tile_cycles

# The configuration the tests build (rtl/measure_cycles.py builds a larger one).
ROWS, COLS, LOG2N, WIDTH, GROUPS, WEIGHT_SCALE_WIDTH = 2, 2, 3, 8, 4, 8


def _tile(rng: random.Random, p: dict, extreme: bool = False):
    low, high = -(1 << (p["WIDTH"] - 1)), (1 << (p["WIDTH"] - 1)) - 1
    c, groups, top_w = p["GROUPS"] << p["LOG2N"], p["GROUPS"], 2 ** p["WEIGHT_SCALE_WIDTH"] - 1
    if extreme:  # the largest transform outputs and scales
        x = [[low] * c for _ in range(p["ROWS"])]
        weight_scale = [[top_w] * groups for _ in range(p["COLS"])]
    else:
        x = [[rng.randint(low, high) for _ in range(c)] for _ in range(p["ROWS"])]
        weight_scale = [[rng.randint(0, top_w) for _ in range(groups)] for _ in range(p["COLS"])]
    weight_codes = [[rng.randrange(16) for _ in range(c)] for _ in range(p["COLS"])]
    return torch.tensor(x), torch.tensor(weight_codes), torch.tensor(weight_scale)


def _stream(tiles, p: dict) -> dict:
    """Beats of both streams for ``tiles`` and their results."""
    n = 1 << p["LOG2N"]
    data = {"act_beats": [], "weight_beats": [], "expected": []}
    for x, weight_codes, weight_scale in tiles:
        for g in range(p["GROUPS"]):
            data["act_beats"].append(pack(x[:, g * n:(g + 1) * n].reshape(-1).tolist(), p["WIDTH"]))
            data["weight_beats"].append((pack(weight_codes[:, g * n:(g + 1) * n].reshape(-1).tolist(), 4),
                                         pack(weight_scale[:, g].tolist(), p["WEIGHT_SCALE_WIDTH"])))
        result = linear_tile(x, weight_codes, weight_scale, p["LOG2N"], p["WIDTH"], tie="even", index_bits=p["INDEX_BITS"],
                             weight_scale_width=p["WEIGHT_SCALE_WIDTH"], out_width=p["OUT_WIDTH"])
        data["expected"].append([v for row in result for v in row])
    return data


def timing_vectors(parameters: dict) -> dict:
    timing = _stream([_tile(random.Random(42), parameters)], parameters)
    timing["cycles"] = linear_tile_cycles(parameters["GROUPS"], parameters["LOG2N"], sequential=bool(parameters["SEQUENTIAL"]))
    return {"timing": timing}


def vectors(parameters: dict) -> dict:
    rng = random.Random(41)
    tiles = [_tile(rng, parameters, extreme=True)] + [_tile(rng, parameters) for _ in range(20)]
    return {"tiles": _stream(tiles, parameters), **timing_vectors(parameters)}


@pytest.mark.parametrize("sequential", [0, 1])
def test_linear_tile(simulator, sequential):
    out_width = contribution_width(1 << LOG2N, WIDTH + LOG2N, WEIGHT_SCALE_WIDTH) + 2
    parameters = {"ROWS": ROWS, "COLS": COLS, "LOG2N": LOG2N, "WIDTH": WIDTH, "GROUPS": GROUPS,
                  "WEIGHT_SCALE_WIDTH": WEIGHT_SCALE_WIDTH, "OUT_WIDTH": out_width, "INDEX_BITS": 8,
                  "SEQUENTIAL": sequential}
    simulate(simulator, "linear_tile", "cocotb_linear_tile", parameters, vectors=vectors(parameters))
