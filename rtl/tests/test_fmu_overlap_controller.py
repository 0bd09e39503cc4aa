"""fmu_overlap_controller: both GEMM units' results against fpqvar.hw.gemm, the job order the controller promises
(sequential: ada_lin starts only after FC2's result; overlapped: during FC2), and cycle counts against the model."""

import random

import cocotb
from cocotb.triggers import RisingEdge
from simulate import simulate
from streams import record_cycles, start, unpack
from test_fp4_gemm import (
    COLS,
    GROUP,
    LANES,
    ROWS,
    SCALE_WIDTH,
    WEIGHT_SCALE_WIDTH,
    Shape,
    _beats,
    _expected,
    _random_tile,
)

from fpqvar.hw.gemm import contribution_width
from fpqvar.hw.pipeline import Block, overlap_cycles

UNITS = {"cond": False, "fc2": True}  # unit prefix: DFQ?


def _drive(dut, unit, kind, beat):
    if kind == "act":
        codes, act_max, act_max_negative, last = beat
        getattr(dut, f"s_{unit}_act_codes").value = codes
        getattr(dut, f"s_{unit}_act_max").value = act_max
        getattr(dut, f"s_{unit}_act_last").value = last
        if UNITS[unit]:
            dut.s_fc2_act_max_negative.value = act_max_negative
    else:
        getattr(dut, f"s_{unit}_weight_codes").value, getattr(dut, f"s_{unit}_weight_scale").value = beat


async def _run(dut, jobs, rng, valid_probability, ready_probability):
    """jobs: {unit: [tile per block]}. Returns results per unit, the edges of each unit's results and of each
    job's first activation beat, and the edges of the whole run."""
    shape = Shape.of(dut)
    beats = {}
    first_beats = {}
    for unit, tiles in jobs.items():
        act, weight, starts = [], [], []
        for tile in tiles:
            a, w = _beats(tile, shape)
            starts.append(len(act))
            act += a
            weight += w
        beats[(unit, "act")], beats[(unit, "weight")] = act, weight
        first_beats[unit] = set(starts)
    sent = dict.fromkeys(beats, 0)
    results = {unit: [] for unit in jobs}
    result_edges = {unit: [] for unit in jobs}
    start_edges = {unit: [] for unit in jobs}
    edges = 0
    while any(len(results[u]) < len(jobs[u]) for u in jobs):
        offers = {}
        for (unit, kind), stream in beats.items():
            offers[(unit, kind)] = sent[(unit, kind)] < len(stream) and rng.random() < valid_probability
            getattr(dut, f"s_{unit}_{kind}_valid").value = offers[(unit, kind)]
            if offers[(unit, kind)]:
                _drive(dut, unit, kind, stream[sent[(unit, kind)]])
        for unit in jobs:
            getattr(dut, f"m_{unit}_ready").value = rng.random() < ready_probability
        await RisingEdge(dut.clk)
        edges += 1
        for unit in jobs:
            if int(getattr(dut, f"m_{unit}_valid").value) and int(getattr(dut, f"m_{unit}_ready").value):
                results[unit].append(unpack(getattr(dut, f"m_{unit}_result").value.to_unsigned(), shape.rows * shape.cols, shape.out_width))
                result_edges[unit].append(edges)
        for (unit, kind) in beats:
            if offers[(unit, kind)] and int(getattr(dut, f"s_{unit}_{kind}_ready").value):
                if kind == "act" and sent[(unit, kind)] in first_beats[unit]:
                    start_edges[unit].append(edges)
                sent[(unit, kind)] += 1
    for (unit, kind) in beats:
        getattr(dut, f"s_{unit}_{kind}_valid").value = 0
    return results, result_edges, start_edges, edges


async def _start(dut):
    await start(dut, inputs=tuple(f"s_{u}_{k}_valid" for u in UNITS for k in ("act", "weight")),
                outputs=tuple(f"m_{u}_ready" for u in UNITS))


@cocotb.test()
async def job_order_and_results(dut):
    rng = random.Random(51)
    shape = Shape.of(dut)
    await _start(dut)
    for overlap in (0, 1):
        dut.overlap.value = overlap
        # FC2 jobs longer than ada_lin's, as in VAR (K = 4C against C), so that overlapping shows
        jobs = {"fc2": [_random_tile(rng, rng.randint(3, 5), shape) for _ in range(6)],
                "cond": [_random_tile(rng, rng.randint(1, 2), shape) for _ in range(6)]}
        results, result_edges, start_edges, _ = await _run(dut, jobs, rng, 0.9, 0.8)
        for unit, tiles in jobs.items():
            assert results[unit] == [_expected(t, UNITS[unit], shape) for t in tiles], unit
        for block in range(6):
            if overlap:
                assert start_edges["cond"][block] < result_edges["fc2"][block], "ada_lin did not overlap FC2"
            else:
                assert start_edges["cond"][block] > result_edges["fc2"][block], "ada_lin started before FC2 finished"
            if block:  # a block starts only after both results of the one before
                previous = max(result_edges["fc2"][block - 1], result_edges["cond"][block - 1])
                assert min(start_edges["fc2"][block], start_edges["cond"][block]) > previous


@cocotb.test()
async def cycles_overlapped_and_sequential(dut):
    rng = random.Random(52)
    shape = Shape.of(dut)
    await _start(dut)
    # per tile, VAR-d30 (C = 1920, groups of 128): FC2 reduces over 4C (60 groups), ada_lin over C (15 groups)
    fc2_groups, ada_lin_groups, blocks = 60, 15, 3
    beats_per_group = shape.group // shape.lanes
    measured = {}
    for overlap in (0, 1):
        dut.overlap.value = overlap
        jobs = {"fc2": [_random_tile(rng, fc2_groups, shape) for _ in range(blocks)],
                "cond": [_random_tile(rng, ada_lin_groups, shape) for _ in range(blocks)]}
        _, _, _, edges = await _run(dut, jobs, rng, 1.0, 1.0)
        model = overlap_cycles([Block(fc2_groups * beats_per_group, ada_lin_groups * beats_per_group)] * blocks, bool(overlap))
        assert edges == model, (overlap, edges, model)
        measured["overlapped" if overlap else "sequential"] = edges
    record_cycles(fmu_blocks=blocks, fmu_fc2_beats=fc2_groups * beats_per_group,
                  fmu_ada_lin_beats=ada_lin_groups * beats_per_group,
                  fmu_sequential=measured["sequential"], fmu_overlapped=measured["overlapped"])


def test_fmu_overlap_controller(simulator):
    out_width = contribution_width(GROUP, SCALE_WIDTH, WEIGHT_SCALE_WIDTH, dual=True) + 6  # 60 groups per tile
    simulate(simulator, "fmu_overlap_controller", "test_fmu_overlap_controller", {
        "ROWS": ROWS, "COLS": COLS, "GROUP": GROUP, "LANES": LANES,
        "SCALE_WIDTH": SCALE_WIDTH, "WEIGHT_SCALE_WIDTH": WEIGHT_SCALE_WIDTH, "OUT_WIDTH": out_width,
    })
