"""fmu_overlap_controller: both GEMM units' results against fpqvar.hw.fp4_gemm, the job order the controller promises
(sequential: ada_lin starts only after FC2's result; overlapped: during FC2), and cycle counts against the model
(cocotb side: cocotb_fmu_overlap_controller.py)."""

import random

from gemm_shape import Shape
from simulate import simulate
from test_fp4_gemm import COLS, GROUP, LANES, ROWS, SCALE_WIDTH, WEIGHT_SCALE_WIDTH, beats, expected, random_tile

from fpqvar.hw import JobPair, contribution_width, overlap_cycles

UNITS = {"cond": False, "fc2": True}  # unit prefix: DFQ?


def _jobs(tiles: dict, shape: Shape) -> dict:
    """The streams of each unit's jobs (one tile per block) and their results."""
    jobs = {}
    for unit, unit_tiles in tiles.items():
        job = {"act_beats": [], "weight_beats": [], "first_beats": [], "expected": []}
        for tile in unit_tiles:
            a, w = beats(tile, shape)
            job["first_beats"].append(len(job["act_beats"]))
            job["act_beats"] += a
            job["weight_beats"] += w
            job["expected"].append(expected(tile, UNITS[unit], shape))
        jobs[unit] = job
    return jobs


def timing_vectors(parameters: dict) -> dict:
    # per tile, VAR-d30 (C = 1920, groups of 128): FC2 reduces over 4C (60 groups), ada_lin over C (15 groups)
    shape, rng = Shape.of(parameters), random.Random(52)
    fc2_groups, ada_lin_groups, blocks = 60, 15, 3
    beats_per_group = shape.group // shape.lanes
    modes = [_jobs({"fc2": [random_tile(rng, fc2_groups, shape) for _ in range(blocks)],
                    "cond": [random_tile(rng, ada_lin_groups, shape) for _ in range(blocks)]}, shape) for _ in (0, 1)]
    model = [JobPair(fc2_groups * beats_per_group, ada_lin_groups * beats_per_group)] * blocks
    return {"timing": {"modes": modes, "cycles": [overlap_cycles(model, overlap=overlap) for overlap in (False, True)],
                       "blocks": blocks, "fc2_beats": model[0].fc2_beats, "ada_lin_beats": model[0].ada_lin_beats}}


def vectors(parameters: dict) -> dict:
    # FC2 jobs longer than ada_lin's, as in VAR (K = 4C against C), so that overlapping shows
    shape, rng = Shape.of(parameters), random.Random(51)
    modes = [_jobs({"fc2": [random_tile(rng, rng.randint(3, 5), shape) for _ in range(6)],
                    "cond": [random_tile(rng, rng.randint(1, 2), shape) for _ in range(6)]}, shape) for _ in (0, 1)]
    return {"modes": modes, **timing_vectors(parameters)}


def test_fmu_overlap_controller(simulator):
    out_width = contribution_width(GROUP, SCALE_WIDTH, WEIGHT_SCALE_WIDTH, dual=True) + 6  # 60 groups per tile
    parameters = {"ROWS": ROWS, "COLS": COLS, "GROUP": GROUP, "LANES": LANES,
                  "SCALE_WIDTH": SCALE_WIDTH, "WEIGHT_SCALE_WIDTH": WEIGHT_SCALE_WIDTH, "OUT_WIDTH": out_width}
    simulate(simulator, "fmu_overlap_controller", "cocotb_fmu_overlap_controller", parameters, vectors=vectors(parameters))
