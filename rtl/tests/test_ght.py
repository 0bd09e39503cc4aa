"""ght against fpqvar.hw.pipeline.ght: tokens of GROUPS groups, two rows side by side, extremes and seeded random
values, gaps and backpressure; latency and initiation interval against the cycle model; the golden model against the software GHT matrix."""

import random

import cocotb
import pytest
import torch
from simulate import simulate
from streams import pack, record_cycles, run_stream, start, timing, unpack

from fpqvar.hw import output_width
from fpqvar.hw.pipeline import fht_latency, ght
from fpqvar.rotation import block_diagonal_hadamard


@cocotb.test()
async def tokens_group_by_group(dut):
    log2n, width, rows, groups = (int(getattr(dut, p).value) for p in ("LOG2N", "WIDTH", "ROWS", "GROUPS"))
    n, out_width = 1 << log2n, output_width(width, 1 << log2n)
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    rng = random.Random(21)
    tokens = [[[low] * (n * groups)] * rows, [[high] * (n * groups)] * rows]
    tokens += [[[rng.randint(low, high) for _ in range(n * groups)] for _ in range(rows)] for _ in range(30)]
    transformed = [ght(torch.tensor(t), log2n) for t in tokens]  # (rows, C) each
    beats, expected = [], []
    for token, out in zip(tokens, transformed, strict=True):
        for g in range(groups):
            beats.append([v for row in token for v in row[g * n:(g + 1) * n]])
            expected.append((out[:, g * n:(g + 1) * n].reshape(-1).tolist(), g == groups - 1))

    def drive(beat):
        dut.s_data.value = pack(beat, width)

    def sample():
        return unpack(dut.m_data.value.to_unsigned(), rows * n, out_width), bool(int(dut.m_last.value))

    await start(dut)
    # timing() sends 1 + (5 groups - 1) beats, whole tokens, so the comparison below starts at a token's first group
    latency, interval = await timing(dut, beats[:5 * groups - 1], drive)
    assert (latency, interval) == (fht_latency(log2n), 1), (latency, interval)
    record_cycles(ght_latency=latency, ght_interval=interval)
    received = await run_stream(dut, beats, drive, sample, len(beats), rng)
    assert received == expected


@pytest.mark.parametrize("log2n, width, rows, groups", [(3, 8, 2, 3)])
def test_ght(simulator, log2n, width, rows, groups):
    simulate(simulator, "ght", "test_ght", {"LOG2N": log2n, "WIDTH": width, "ROWS": rows, "GROUPS": groups})


@pytest.mark.parametrize("group, groups", [(8, 4), (128, 15)])
def test_golden_model_is_the_software_ght_times_sqrt_n(group, groups):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-(2**15), 2**15, (6, group * groups), generator=g)
    software = x.double() @ block_diagonal_hadamard(group * groups, group).T * group**0.5
    assert torch.equal(ght(x, group.bit_length() - 1).double(), software.round())
    assert (software - software.round()).abs().max() < 1e-6  # the software matrix is exact up to float rounding
