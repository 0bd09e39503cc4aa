"""cocotb side of test_ght.py: tokens group by group with gaps and backpressure; latency and interval."""

import random

import cocotb
from streams import pack, record_cycles, run_stream, start, timing, unpack, vectors


@cocotb.test()
async def tokens_group_by_group(dut):
    log2n, width, rows, groups = (int(getattr(dut, p).value) for p in ("LOG2N", "WIDTH", "ROWS", "GROUPS"))
    n, data = 1 << log2n, vectors()

    def drive(beat):
        dut.s_data.value = pack(beat, width)

    def sample():
        return [unpack(dut.m_data.value.to_unsigned(), rows * n, width + log2n), bool(int(dut.m_last.value))]

    await start(dut)
    # timing() sends 1 + (5 groups - 1) beats, whole tokens, so the comparison below starts at a token's first group
    latency, interval = await timing(dut, data["beats"][:5 * groups - 1], drive)
    assert (latency, interval) == (data["latency"], 1), (latency, interval)
    record_cycles(ght_latency=latency, ght_interval=interval)
    received = await run_stream(dut, data["beats"], drive, sample, len(data["beats"]), random.Random(21))
    assert received == data["expected"]
