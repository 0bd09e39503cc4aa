"""cocotb side of test_linear_tile.py: tiles on the activation and weight streams with their own gaps, and
backpressure; the edges of one tile."""

import random

import cocotb
from cocotb.triggers import RisingEdge
from streams import record_cycles, start, unpack, vectors


async def _run(dut, data, rng, valid_probability, ready_probability):
    """Stream the beats (activation and weight streams with their own gaps); (results, edges)."""
    rows, cols, out_width = int(dut.ROWS.value), int(dut.COLS.value), int(dut.OUT_WIDTH.value)
    act_beats, weight_beats = data["act_beats"], data["weight_beats"]
    sent_act = sent_weight = edges = 0
    received = []
    while len(received) < len(data["expected"]):
        offer_act = sent_act < len(act_beats) and rng.random() < valid_probability
        offer_weight = sent_weight < len(weight_beats) and rng.random() < valid_probability
        dut.s_valid.value, dut.s_weight_valid.value = offer_act, offer_weight
        if offer_act:
            dut.s_data.value = act_beats[sent_act]
        if offer_weight:
            dut.s_weight_codes.value, dut.s_weight_scale.value = weight_beats[sent_weight]
        dut.m_ready.value = rng.random() < ready_probability
        await RisingEdge(dut.clk)
        edges += 1
        if int(dut.m_valid.value) and int(dut.m_ready.value):
            received.append(unpack(dut.m_result.value.to_unsigned(), rows * cols, out_width))
        sent_act += offer_act and int(dut.s_ready.value)
        sent_weight += offer_weight and int(dut.s_weight_ready.value)
    dut.s_valid.value = dut.s_weight_valid.value = 0
    return received, edges


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
