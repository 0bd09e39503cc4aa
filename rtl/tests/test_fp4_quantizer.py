"""fp4_quantizer (scale pass + encode pass) against fpqvar.hw.quantize_group: groups with every maximum of a 12-bit
input, seeded random groups, gaps and backpressure; latency and initiation interval against the cycle model."""

import random

import cocotb
import pytest
import torch
from simulate import simulate
from streams import pack, record_cycles, run_stream, start, timing, unpack
from test_fp4_scale_pass import _groups

from fpqvar.hw import quantize_group
from fpqvar.hw.pipeline import LATENCY


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
    received = await run_stream(dut, list(zip(groups, lasts, strict=True)), drive, sample, len(groups), rng)
    assert received == expected


@cocotb.test()
async def latency_and_interval(dut):
    group, width = int(dut.GROUP.value), int(dut.WIDTH.value)
    rng = random.Random(13)
    beats = [[rng.randint(-(1 << (width - 1)), (1 << (width - 1)) - 1) for _ in range(group)] for _ in range(16)]

    def drive(values):
        dut.s_data.value = pack(values, width)
        dut.s_last.value = 0

    await start(dut)
    latency, interval = await timing(dut, beats, drive)
    assert (latency, interval) == (LATENCY["fp4_quantizer"], 1), (latency, interval)
    record_cycles(fp4_quantizer_latency=latency, fp4_quantizer_interval=interval)


@pytest.mark.parametrize("dual", [0, 1])
def test_fp4_quantizer(simulator, dual):
    simulate(simulator, "fp4_quantizer", "test_fp4_quantizer", {"GROUP": 8, "WIDTH": 12, "DUAL": dual, "TIE_UP": 0, "INDEX_BITS": 8})
