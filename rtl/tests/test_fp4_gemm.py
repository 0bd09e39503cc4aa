"""fp4_gemm against fpqvar.hw.fp4_gemm: every code pair in every lane position, seeded random tiles (1-5 groups) with
extreme scales, independent gaps on both input streams and backpressure; measured latency and throughput; at three
geometries (cocotb side: cocotb_fp4_gemm.py)."""

import random

import pytest
import torch
from gemm_shape import Shape
from simulate import simulate
from streams import pack

from fpqvar.hw import contribution_width, gemm, gemm_job_cycles

# The configuration the tests build, both variants (test_fmu_overlap_controller.py builds it too; rtl/measure_cycles.py
# builds a larger one): two rows, two columns, two beats per group.
ROWS, COLS, GROUP, LANES, SCALE_WIDTH, WEIGHT_SCALE_WIDTH = 2, 2, 8, 4, 12, 8
# Two more geometries, one variant each: one row, three columns, a whole group per beat; three rows, one column,
# one lane (four beats per group).
GEOMETRIES = [(ROWS, COLS, GROUP, LANES, dual) for dual in (0, 1)] + [(1, 3, 16, 16, 0), (3, 1, 4, 1, 1)]


def tiles(rng: random.Random, shape: Shape):
    """(act codes (rows, K), act max, act max negative, weight codes (cols, K), weight scales) per tile."""
    top, top_w = 2**shape.scale_width - 1, 2**shape.weight_scale_width - 1
    found = []
    for pair in range(256):  # one non-zero product per tile, moving through the lane positions
        act = torch.zeros(shape.rows, shape.group, dtype=torch.int64)
        weight = torch.zeros(shape.cols, shape.group, dtype=torch.int64)
        act[:, pair % shape.group], weight[:, pair % shape.group] = pair >> 4, pair & 0xF
        found.append((act, [[rng.randint(1, top)] for _ in range(shape.rows)], [[rng.randint(1, top)] for _ in range(shape.rows)],
                      weight, [[rng.randint(1, top_w)] for _ in range(shape.cols)]))
    for i in range(40):
        groups = rng.randint(1, 5)
        if i < 4:  # the largest magnitudes: every product +-144 (or DFQ's extremes), scales at their maximum
            k = groups * shape.group
            act = torch.full((shape.rows, k), (0b0111, 0b1111)[i % 2], dtype=torch.int64)
            weight = torch.full((shape.cols, k), (0b0111, 0b1111)[i // 2], dtype=torch.int64)
            found.append((act, [[top] * groups] * shape.rows, [[top] * groups] * shape.rows, weight, [[top_w] * groups] * shape.cols))
        else:
            found.append(random_tile(rng, groups, shape))
    return found


def random_tile(rng: random.Random, groups: int, shape: Shape):
    top, top_w = 2**shape.scale_width - 1, 2**shape.weight_scale_width - 1
    k = groups * shape.group
    return (
        torch.tensor([[rng.randrange(16) for _ in range(k)] for _ in range(shape.rows)]),
        [[rng.randint(0, top) for _ in range(groups)] for _ in range(shape.rows)],
        [[rng.randint(0, top) for _ in range(groups)] for _ in range(shape.rows)],
        torch.tensor([[rng.randrange(16) for _ in range(k)] for _ in range(shape.cols)]),
        [[rng.randint(0, top_w) for _ in range(groups)] for _ in range(shape.cols)],
    )


def beats(tile, shape: Shape):
    """The activation and weight beats of one tile: `lanes` codes of every row (column) per beat."""
    act, act_max, act_max_negative, weight, weight_scale = tile
    k, lanes = act.shape[1], shape.lanes
    act_beats, weight_beats = [], []
    for start_lane in range(0, k, lanes):
        g = start_lane // shape.group
        act_beats.append((
            pack(act[:, start_lane:start_lane + lanes].reshape(-1).tolist(), 4),
            pack([m[g] for m in act_max], shape.scale_width),
            pack([m[g] for m in act_max_negative], shape.scale_width),
            start_lane + lanes == k,
        ))
        weight_beats.append((
            pack(weight[:, start_lane:start_lane + lanes].reshape(-1).tolist(), 4),
            pack([s[g] for s in weight_scale], shape.weight_scale_width),
        ))
    return act_beats, weight_beats


def expected(tile, dual: bool, shape: Shape) -> list[int]:
    act, act_max, act_max_negative, weight, weight_scale = tile
    result = gemm(act, act_max, weight, weight_scale, dual=dual, group=shape.group, act_max_negative=act_max_negative,
                  scale_width=shape.scale_width, weight_scale_width=shape.weight_scale_width, out_width=shape.out_width)
    return [v for row in result for v in row]


def timing_vectors(parameters: dict) -> dict:
    """A random tile of 1 and one of 15 groups, their results and the cycle model's edge counts."""
    shape, dual, rng = Shape.of(parameters), bool(parameters["DUAL"]), random.Random(6)
    timing = []
    for groups in (1, 15):
        tile = random_tile(rng, groups, shape)
        act_beats, weight_beats = beats(tile, shape)
        timing.append({"groups": groups, "act_beats": act_beats, "weight_beats": weight_beats,
                       "expected": expected(tile, dual, shape), "cycles": gemm_job_cycles(len(act_beats))})
    return {"timing": timing}


def vectors(parameters: dict) -> dict:
    shape, dual = Shape.of(parameters), bool(parameters["DUAL"])
    act_beats, weight_beats, results = [], [], []
    for tile in tiles(random.Random(5), shape):
        a, w = beats(tile, shape)
        act_beats += a
        weight_beats += w
        results.append(expected(tile, dual, shape))
    return {"act_beats": act_beats, "weight_beats": weight_beats, "expected": results, **timing_vectors(parameters)}


@pytest.mark.parametrize("rows, cols, group, lanes, dual", GEOMETRIES)
def test_fp4_gemm(simulator, rows, cols, group, lanes, dual):
    out_width = contribution_width(group, SCALE_WIDTH, WEIGHT_SCALE_WIDTH, dual=bool(dual)) + 8
    parameters = {"ROWS": rows, "COLS": cols, "GROUP": group, "LANES": lanes, "DUAL": dual,
                  "SCALE_WIDTH": SCALE_WIDTH, "WEIGHT_SCALE_WIDTH": WEIGHT_SCALE_WIDTH, "OUT_WIDTH": out_width}
    simulate(simulator, "fp4_gemm", "cocotb_fp4_gemm", parameters, vectors=vectors(parameters))
