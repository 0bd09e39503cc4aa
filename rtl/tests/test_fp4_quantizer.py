"""fp4_quantizer (scale pass + encode pass) against fpqvar.hw.quantize_group: groups with every maximum of a 12-bit
input, seeded random groups, gaps and backpressure; measured latency."""

import random

import cocotb
import pytest
import torch
from simulate import simulate
from streams import latency, pack, run_stream, start, unpack
from test_fp4_scale_pass import _groups

from fpqvar.hw import quantize_group


@cocotb.test()
async def every_maximum_and_random_groups(dut):
    group, width = int(dut.GROUP.value), int(dut.WIDTH.value)
    dual, tie = bool(int(dut.DUAL.value)), "up" if int(dut.TIE_UP.value) else "even"
    rng = random.Random(12)
    groups = _groups(group, width, rng)
    lasts = [rng.random() < 0.25 for _ in groups]
    codes, maxima = quantize_group(torch.tensor(groups), dual, tie, int(dut.INDEX_BITS.value))
    negative = maxima[0] if dual else torch.zeros_like(maxima[0])
    positive = maxima[-1]
    expected = [[codes[i].tolist(), int(positive[i, 0]), int(negative[i, 0]), lasts[i]] for i in range(len(groups))]

    def drive(beat):
        values, last = beat
        dut.s_data.value = pack(values, width)
        dut.s_last.value = last

    def sample():
        return [unpack(dut.m_codes.value.to_unsigned(), group, 4, signed=False), dut.m_max.value.to_unsigned(),
                dut.m_max_negative.value.to_unsigned(), bool(int(dut.m_last.value))]

    await start(dut)
    assert await latency(dut, lambda: drive((groups[0], 0))) == 4
    received = await run_stream(dut, list(zip(groups, lasts, strict=True)), drive, sample, len(groups), rng)
    assert received == expected


@pytest.mark.parametrize("dual", [0, 1])
def test_fp4_quantizer(simulator, dual):
    simulate(simulator, "fp4_quantizer", "test_fp4_quantizer", {"GROUP": 8, "WIDTH": 12, "DUAL": dual, "TIE_UP": 0, "INDEX_BITS": 8})
