"""fp4_scale_pass against fpqvar.hw.scale_pass: every maximum of a 12-bit input on both DFQ sides (so every table
entry and exponent), seeded random groups, gaps and backpressure; latency and initiation interval against the cycle model."""

import random

import cocotb
import pytest
import torch
from simulate import simulate
from streams import pack, record_cycles, run_stream, start, timing, unpack

from fpqvar.hw import scale_pass
from fpqvar.hw.pipeline import LATENCY


def _groups(group: int, width: int, rng: random.Random) -> list[list[int]]:
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    groups = [[0] * group, [low] * group, [high] * group, [low, high] + [0] * (group - 2)]
    maxima = list(range(high + 2))  # 0 .. 2**(width-1): every maximum a side can have
    shuffled = maxima[:]
    rng.shuffle(shuffled)
    for positive, negative in zip(maxima, shuffled, strict=True):
        positive = min(positive, high)
        inner = [rng.randint(-negative, positive) for _ in range(group - 2)]
        members = [positive, -negative, *inner]
        rng.shuffle(members)
        groups.append(members)
    groups += [[rng.randint(low, high) for _ in range(group)] for _ in range(200)]
    return groups


def _expected(groups, dual):
    scales = scale_pass(torch.tensor(groups), dual)
    sides = [scales["positive"], *([scales["negative"]] if dual else [])]
    rows = []
    for i, g in enumerate(groups):
        row = [g]
        for side in sides:
            row += [int(side.max[i, 0]), int(side.reciprocal[i, 0]), int(side.exponent[i, 0])]
        rows.append(row)
    return rows


@cocotb.test()
async def every_maximum_and_random_groups(dut):
    group, width, dual = int(dut.GROUP.value), int(dut.WIDTH.value), bool(int(dut.DUAL.value))
    rng = random.Random(11)
    groups = _groups(group, width, rng)
    lasts = [rng.random() < 0.25 for _ in groups]
    expected = [[*row, last] for row, last in zip(_expected(groups, dual), lasts, strict=True)]

    def drive(beat):
        values, last = beat
        dut.s_data.value = pack(values, width)
        dut.s_last.value = last

    def sample():
        row = [unpack(dut.m_data.value.to_unsigned(), group, width),
               dut.m_max.value.to_unsigned(), dut.m_reciprocal.value.to_unsigned(), dut.m_exponent.value.to_unsigned()]
        if dual:
            row += [dut.m_max_negative.value.to_unsigned(), dut.m_reciprocal_negative.value.to_unsigned(),
                    dut.m_exponent_negative.value.to_unsigned()]
        return [*row, bool(int(dut.m_last.value))]

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
    assert (latency, interval) == (LATENCY["fp4_scale_pass"], 1), (latency, interval)
    record_cycles(fp4_scale_pass_latency=latency, fp4_scale_pass_interval=interval)


@pytest.mark.parametrize("dual", [1])  # DFQ exercises both tables; the E2M1 absmax is checked through fp4_quantizer
def test_fp4_scale_pass(simulator, dual):
    simulate(simulator, "fp4_scale_pass", "test_fp4_scale_pass", {"GROUP": 8, "WIDTH": 12, "DUAL": dual, "INDEX_BITS": 8})
