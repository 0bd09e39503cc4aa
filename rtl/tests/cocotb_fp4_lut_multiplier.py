"""cocotb side of test_fp4_lut_multiplier.py: all 256 code pairs with random backpressure; latency, interval."""

import random

import cocotb
from streams import record_cycles, run_stream, start, timing, vectors


@cocotb.test()
async def every_code_pair(dut):
    expected = vectors()["table"]
    pairs = list(range(256))

    def drive(pair):
        dut.s_activation.value, dut.s_weight.value = pair >> 4, pair & 0xF

    await start(dut)
    received = await run_stream(dut, pairs, drive, lambda: dut.m_product.value.to_signed(), len(pairs), random.Random(1))
    assert received == expected


@cocotb.test()
async def latency_and_interval(dut):
    def drive(pair):
        dut.s_activation.value, dut.s_weight.value = pair >> 4, pair & 0xF

    await start(dut)
    latency, interval = await timing(dut, list(range(16)), drive)
    assert (latency, interval) == (vectors()["latency"], 1), (latency, interval)
    record_cycles(fp4_lut_multiplier_latency=latency, fp4_lut_multiplier_interval=interval)
