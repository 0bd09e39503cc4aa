"""fp4_lut_multiplier against the golden model fpqvar.hw.lut_multiplier: all 256 code pairs, with backpressure."""

import random

import cocotb
import pytest
import torch
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge
from simulate import simulate
from streams import record_cycles, start, timing

from fpqvar.formats import DFQ_FP4, FP4_E2M1
from fpqvar.hw import PRODUCT_FRACTION_BITS, lut_multiplier_table
from fpqvar.hw.pipeline import LATENCY


@cocotb.test()
async def every_code_pair(dut):
    dual = int(dut.DUAL.value) != 0
    expected_table = lut_multiplier_table(dual).tolist()
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.s_valid.value = 0
    dut.m_ready.value = 0
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    dut.rst.value = 0

    rng = random.Random(1)
    pairs = list(range(256))
    sent, received = 0, []
    while len(received) < len(pairs):
        dut.s_valid.value = sent < len(pairs)
        if sent < len(pairs):
            dut.s_activation.value = pairs[sent] >> 4
            dut.s_weight.value = pairs[sent] & 0xF
        dut.m_ready.value = rng.random() < 0.7  # random backpressure
        await RisingEdge(dut.clk)
        if int(dut.m_valid.value) and int(dut.m_ready.value):
            received.append(dut.m_product.value.to_signed())
        if sent < len(pairs) and int(dut.s_valid.value) and int(dut.s_ready.value):
            sent += 1
    assert received == expected_table


@cocotb.test()
async def latency_and_interval(dut):
    def drive(pair):
        dut.s_activation.value, dut.s_weight.value = pair >> 4, pair & 0xF

    await start(dut)
    latency, interval = await timing(dut, list(range(16)), drive)
    assert (latency, interval) == (LATENCY["fp4_lut_multiplier"], 1), (latency, interval)
    record_cycles(fp4_lut_multiplier_latency=latency, fp4_lut_multiplier_interval=interval)


@pytest.mark.parametrize("dual", [0, 1])
def test_fp4_lut_multiplier(simulator, dual):
    simulate(simulator, "fp4_lut_multiplier", "test_fp4_lut_multiplier", {"DUAL": dual})


@pytest.mark.parametrize("dual", [False, True])
def test_golden_model_is_the_exact_product_of_decoded_values(dual):
    activation = (DFQ_FP4 if dual else FP4_E2M1).values_by_code
    exact = (activation[:, None] * FP4_E2M1.values_by_code[None, :]).reshape(256)
    assert torch.equal(lut_multiplier_table(dual).double() / 2**PRODUCT_FRACTION_BITS, exact)
    assert int(lut_multiplier_table(dual).abs().max()) < 2**8  # fits the 9-bit signed port
