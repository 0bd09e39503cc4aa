"""cocotb side of test_fht.py: vectors with backpressure, and the latency with the output always ready."""

import random

import cocotb
from streams import pack, run_stream, start, timing, unpack, vectors


@cocotb.test()
async def basis_and_random_vectors(dut):
    log2n, width = int(dut.LOG2N.value), int(dut.WIDTH.value)
    n, data = 1 << log2n, vectors()

    def drive(values):
        dut.s_data.value = pack(values, width)

    await start(dut)
    latency, interval = await timing(dut, data["vectors"][:4], drive)
    assert (latency, interval) == (log2n, 1), (latency, interval)
    sample = lambda: unpack(dut.m_data.value.to_unsigned(), n, width + log2n)  # noqa: E731
    received = await run_stream(dut, data["vectors"], drive, sample, len(data["vectors"]), random.Random(7), 1.0, 0.8)
    assert received == data["expected"]
