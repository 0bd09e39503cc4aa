"""fht against the golden model fpqvar.hw.fht, and the golden model against the software Hadamard matrix."""

import random

import cocotb
import pytest
import torch
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge
from simulate import simulate

from fpqvar.hw import fht, output_width
from fpqvar.rotation import hadamard


def _pack(values, width):
    word = 0
    for lane, v in enumerate(values):
        word |= (v & ((1 << width) - 1)) << (lane * width)
    return word


def _unpack(word, lanes, width):
    out = []
    for lane in range(lanes):
        v = (word >> (lane * width)) & ((1 << width) - 1)
        out.append(v - (1 << width) if v >> (width - 1) else v)
    return out


@cocotb.test()
async def basis_and_random_vectors(dut):
    log2n, width = int(dut.LOG2N.value), int(dut.WIDTH.value)
    n, out_width = 1 << log2n, output_width(width, 1 << log2n)
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    rng = random.Random(7)
    vectors = [[high if j == i else 0 for j in range(n)] for i in range(n)]  # every basis vector, largest amplitude
    vectors += [[low if j == i else 0 for j in range(n)] for i in range(n)]
    vectors += [[low] * n, [high] * n]  # the extremes of the output range
    vectors += [[rng.randint(low, high) for _ in range(n)] for _ in range(60)]
    expected = fht(torch.tensor(vectors)).tolist()

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value, dut.s_valid.value, dut.m_ready.value = 1, 0, 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    # Latency and initiation interval with the output always ready.
    dut.m_ready.value = 1
    dut.s_data.value, dut.s_valid.value = _pack(vectors[0], width), 1
    await RisingEdge(dut.clk)  # the beat is taken at this edge
    dut.s_valid.value = 0
    latency = 1
    await ReadOnly()  # values after this edge's register updates
    while not int(dut.m_valid.value):
        await RisingEdge(dut.clk)
        latency += 1
        await ReadOnly()
    assert latency == log2n, f"latency {latency} cycles, expected {log2n}"
    await RisingEdge(dut.clk)  # the result leaves (m_ready is high)

    sent, received = 0, []
    while len(received) < len(vectors):
        dut.s_valid.value = sent < len(vectors)
        if sent < len(vectors):
            dut.s_data.value = _pack(vectors[sent], width)
        dut.m_ready.value = rng.random() < 0.8
        await RisingEdge(dut.clk)
        if int(dut.m_valid.value) and int(dut.m_ready.value):
            received.append(_unpack(dut.m_data.value.to_unsigned(), n, out_width))
        if sent < len(vectors) and int(dut.s_ready.value):
            sent += 1
    assert received == expected


@pytest.mark.parametrize("log2n, width", [(7, 16), (3, 8)])
def test_fht(simulator, log2n, width):
    simulate(simulator, "fht", "test_fht", {"LOG2N": log2n, "WIDTH": width})


@pytest.mark.parametrize("n", [8, 128])
def test_golden_model_is_the_hadamard_matrix_product(n):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-(2**15), 2**15, (50, n), generator=g)
    assert torch.equal(fht(x), x @ hadamard(n).to(torch.int64))  # natural-order Sylvester is symmetric
