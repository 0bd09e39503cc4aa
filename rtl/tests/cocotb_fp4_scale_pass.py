"""cocotb side of test_fp4_scale_pass.py: groups with gaps and backpressure; latency and initiation interval."""

import random

import cocotb
from streams import pack, record_cycles, run_stream, start, timing, unpack, vectors


async def group_timing(dut) -> tuple[int, float]:
    """Latency and interval over 16 random full-range groups (the quantizer shares this input port)."""
    group, width = int(dut.GROUP.value), int(dut.WIDTH.value)
    rng = random.Random(13)
    beats = [[rng.randint(-(1 << (width - 1)), (1 << (width - 1)) - 1) for _ in range(group)] for _ in range(16)]
    await start(dut)
    return await timing(dut, beats, lambda values: _drive(dut, values, 0, width))


def _drive(dut, values, last, width):
    dut.s_data.value = pack(values, width)
    dut.s_last.value = last


@cocotb.test()
async def every_maximum_and_random_groups(dut):
    group, width, dual = int(dut.GROUP.value), int(dut.WIDTH.value), bool(int(dut.DUAL.value))
    data = vectors()

    def sample():
        row = [unpack(dut.m_data.value.to_unsigned(), group, width),
               dut.m_max.value.to_unsigned(), dut.m_reciprocal.value.to_unsigned(), dut.m_exponent.value.to_unsigned()]
        if dual:
            row += [dut.m_max_negative.value.to_unsigned(), dut.m_reciprocal_negative.value.to_unsigned(),
                    dut.m_exponent_negative.value.to_unsigned()]
        return [*row, bool(int(dut.m_last.value))]

    await start(dut)
    beats = list(zip(data["groups"], data["lasts"], strict=True))
    received = await run_stream(dut, beats, lambda beat: _drive(dut, *beat, width), sample, len(beats), random.Random(11))
    assert received == data["expected"]


@cocotb.test()
async def latency_and_interval(dut):
    latency, interval = await group_timing(dut)
    assert (latency, interval) == (vectors()["latency"], 1), (latency, interval)
    record_cycles(fp4_scale_pass_latency=latency, fp4_scale_pass_interval=interval)
