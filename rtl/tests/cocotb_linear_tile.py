"""cocotb side of test_linear_tile.py: tiles on the activation and weight streams with their own gaps, and
backpressure; the edges of one tile."""

import random

import cocotb
from streams import InputStream, record_cycles, run_streams, start, unpack, vectors


async def _run(dut, data, rng, valid_probability, ready_probability):
    """Stream the beats (activation and weight streams with their own gaps); (results, edges)."""
    rows, cols, out_width = int(dut.ROWS.value), int(dut.COLS.value), int(dut.OUT_WIDTH.value)

    def drive_act(beat):
        dut.s_data.value = beat

    def drive_weight(beat):
        dut.s_weight_codes.value, dut.s_weight_scale.value = beat

    streams = [InputStream(data["act_beats"], drive_act),
               InputStream(data["weight_beats"], drive_weight, "s_weight_valid", "s_weight_ready")]
    return await run_streams(dut, streams, lambda: unpack(dut.m_result.value.to_unsigned(), rows * cols, out_width),
                             len(data["expected"]), rng, valid_probability, ready_probability)


@cocotb.test()
async def random_tiles(dut):
    data = vectors()["tiles"]
    await start(dut, inputs=("s_valid", "s_weight_valid"))
    received, _ = await _run(dut, data, random.Random(41), 0.8, 0.7)
    assert received == data["expected"]


@cocotb.test()
async def cycles_of_one_tile(dut):
    data = vectors()["timing"]
    await start(dut, inputs=("s_valid", "s_weight_valid"))
    received, edges = await _run(dut, data, random.Random(42), 1.0, 1.0)
    assert received == data["expected"]
    assert edges == data["cycles"], edges
    record_cycles(**{f"linear_tile_{'sequential' if int(dut.SEQUENTIAL.value) else 'pipelined'}": edges})
