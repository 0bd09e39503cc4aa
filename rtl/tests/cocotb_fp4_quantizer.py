"""cocotb side of test_fp4_quantizer.py: groups with gaps and backpressure; latency and initiation interval."""

import random

import cocotb
from cocotb_fp4_scale_pass import _drive, group_timing
from streams import record_cycles, run_stream, start, unpack, vectors


@cocotb.test()
async def every_maximum_and_random_groups(dut):
    group, width, data = int(dut.GROUP.value), int(dut.WIDTH.value), vectors()

    def sample():
        return [unpack(dut.m_codes.value.to_unsigned(), group, 4, signed=False), dut.m_max.value.to_unsigned(),
                dut.m_max_negative.value.to_unsigned(), bool(int(dut.m_last.value))]

    await start(dut)
    beats = list(zip(data["groups"], data["lasts"], strict=True))
    received = await run_stream(dut, beats, lambda beat: _drive(dut, *beat, width), sample, len(beats), random.Random(12))
    assert received == data["expected"]


@cocotb.test()
async def latency_and_interval(dut):
    latency, interval = await group_timing(dut)
    assert (latency, interval) == (vectors()["latency"], 1), (latency, interval)
    record_cycles(fp4_quantizer_latency=latency, fp4_quantizer_interval=interval)
