"""cocotb side of test_fp4_encoder.py: every 5-bit input in every lane, with gaps and backpressure; latency,
interval."""

import random

import cocotb
from streams import record_cycles, run_stream, start, timing, vectors


def _drive(dut, beat):
    dut.s_scaled.value = sum((t & 0x1F) << (5 * lane) for lane, t in enumerate(beat))


@cocotb.test()
async def every_input(dut):
    lanes, data = int(dut.LANES.value), vectors()

    def sample():
        word = dut.m_code.value.to_unsigned()
        return [(word >> (4 * lane)) & 0xF for lane in range(lanes)]

    await start(dut)
    received = await run_stream(dut, data["beats"], lambda beat: _drive(dut, beat), sample, len(data["beats"]), random.Random(3))
    assert received == data["expected"]


@cocotb.test()
async def latency_and_interval(dut):
    lanes = int(dut.LANES.value)
    await start(dut)
    latency, interval = await timing(dut, list(range(-12, 13)), lambda t: _drive(dut, [t] * lanes))
    assert (latency, interval) == (vectors()["latency"], 1), (latency, interval)
    record_cycles(fp4_encoder_latency=latency, fp4_encoder_interval=interval)
