"""cocotb side of test_fmu_overlap_controller.py: both units' jobs with gaps and backpressure, in each mode; the
job order; the edges of three blocks."""

import random

import cocotb
from cocotb.triggers import RisingEdge
from streams import record_cycles, start, unpack, vectors

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
    """jobs: {unit: {"act_beats", "weight_beats", "first_beats" (index of each job's first beat), "expected"}}.
    Returns the results per unit, the edges of each unit's results and of each job's first activation beat, and
    the edges of the whole run."""
    outputs = int(dut.ROWS.value) * int(dut.COLS.value)
    out_width = int(dut.OUT_WIDTH.value)
    streams = {(unit, kind): job[f"{kind}_beats"] for unit, job in jobs.items() for kind in ("act", "weight")}
    sent = dict.fromkeys(streams, 0)
    results = {unit: [] for unit in jobs}
    result_edges = {unit: [] for unit in jobs}
    start_edges = {unit: [] for unit in jobs}
    edges = 0
    while any(len(results[u]) < len(jobs[u]["expected"]) for u in jobs):
        offers = {}
        for (unit, kind), stream in streams.items():
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
                results[unit].append(unpack(getattr(dut, f"m_{unit}_result").value.to_unsigned(), outputs, out_width))
                result_edges[unit].append(edges)
        for (unit, kind) in streams:
            if offers[(unit, kind)] and int(getattr(dut, f"s_{unit}_{kind}_ready").value):
                if kind == "act" and sent[(unit, kind)] in jobs[unit]["first_beats"]:
                    start_edges[unit].append(edges)
                sent[(unit, kind)] += 1
    for (unit, kind) in streams:
        getattr(dut, f"s_{unit}_{kind}_valid").value = 0
    return results, result_edges, start_edges, edges


async def _start(dut):
    await start(dut, inputs=tuple(f"s_{u}_{k}_valid" for u in UNITS for k in ("act", "weight")),
                outputs=tuple(f"m_{u}_ready" for u in UNITS))


@cocotb.test()
async def job_order_and_results(dut):
    rng = random.Random(51)
    await _start(dut)
    for overlap, jobs in enumerate(vectors()["modes"]):
        dut.overlap.value = overlap
        results, result_edges, start_edges, _ = await _run(dut, jobs, rng, 0.9, 0.8)
        for unit, job in jobs.items():
            assert results[unit] == job["expected"], unit
        for block in range(len(jobs["fc2"]["expected"])):
            if overlap:
                assert start_edges["cond"][block] < result_edges["fc2"][block], "ada_lin did not overlap FC2"
            else:
                assert start_edges["cond"][block] > result_edges["fc2"][block], "ada_lin started before FC2 finished"
            if block:  # a block starts only after both results of the one before
                previous = max(result_edges["fc2"][block - 1], result_edges["cond"][block - 1])
                assert min(start_edges["fc2"][block], start_edges["cond"][block]) > previous


@cocotb.test()
async def cycles_overlapped_and_sequential(dut):
    timing = vectors()["timing"]
    await _start(dut)
    measured = {}
    for overlap, jobs in enumerate(timing["modes"]):
        dut.overlap.value = overlap
        results, _, _, edges = await _run(dut, jobs, random.Random(52), 1.0, 1.0)
        for unit, job in jobs.items():
            assert results[unit] == job["expected"], unit
        assert edges == timing["cycles"][overlap], (overlap, edges)
        measured["overlapped" if overlap else "sequential"] = edges
    record_cycles(fmu_blocks=timing["blocks"], fmu_fc2_beats=timing["fc2_beats"], fmu_ada_lin_beats=timing["ada_lin_beats"],
                  fmu_sequential=measured["sequential"], fmu_overlapped=measured["overlapped"])
