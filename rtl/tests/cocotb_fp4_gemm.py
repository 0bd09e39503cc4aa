"""cocotb side of test_fp4_gemm.py: tiles on two input streams with their own gaps, and backpressure; latency and
throughput on tiles of 1 and 15 groups."""

import random

import cocotb
from gemm_shape import Shape
from streams import InputStream, record_cycles, run_streams, start, unpack, vectors


async def _run(dut, act_beats, weight_beats, results, rng, valid_probability, ready_probability):
    """Both input streams with their own random gaps, random backpressure; returns (results, edges)."""
    shape = Shape.of(dut)

    def drive_act(beat):
        dut.s_act_codes.value, dut.s_act_max.value, dut.s_act_max_negative.value, dut.s_act_last.value = beat

    def drive_weight(beat):
        dut.s_weight_codes.value, dut.s_weight_scale.value = beat

    streams = [InputStream(act_beats, drive_act, "s_act_valid", "s_act_ready"),
               InputStream(weight_beats, drive_weight, "s_weight_valid", "s_weight_ready")]
    return await run_streams(dut, streams, lambda: unpack(dut.m_result.value.to_unsigned(), shape.rows * shape.cols, shape.out_width),
                             results, rng, valid_probability, ready_probability)


@cocotb.test()
async def every_code_pair_and_random_tiles(dut):
    data = vectors()
    await start(dut, inputs=("s_act_valid", "s_weight_valid"))
    received, _ = await _run(dut, data["act_beats"], data["weight_beats"], len(data["expected"]), random.Random(5), 0.8, 0.7)
    assert received == data["expected"]


@cocotb.test()
async def latency_and_throughput(dut):
    """Tiles of 1 and 15 groups (C = 1920) with every stream always ready: one beat per cycle, then the latency."""
    dual, shape, timing = bool(int(dut.DUAL.value)), Shape.of(dut), vectors()["timing"]
    await start(dut, inputs=("s_act_valid", "s_weight_valid"))
    measured = {}
    for tile in timing:
        received, edges = await _run(dut, tile["act_beats"], tile["weight_beats"], 1, random.Random(6), 1.0, 1.0)
        assert received == [tile["expected"]]
        assert edges == tile["cycles"], (tile["groups"], edges)
        measured[tile["groups"]] = edges
    # one group alone: latency + 1 edges after its first beat; 14 more groups: 14 x beats per group more
    beats_per_group = shape.group // shape.lanes
    name = "fp4_gemm_dfq" if dual else "fp4_gemm_e2m1"
    record_cycles(**{f"{name}_latency": measured[1] - beats_per_group,
                     f"{name}_beat_interval": (measured[15] - measured[1]) / (14 * beats_per_group),
                     f"{name}_tile_15_groups": measured[15]})
