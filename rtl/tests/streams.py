"""cocotb helpers for valid/ready streams: clock and reset, a driver with random gaps and backpressure, latency,
and the cycle record that rtl/measure_cycles.py collects."""

from __future__ import annotations

import json
import os
import pathlib
import random
from collections.abc import Callable

from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge


async def start(dut, inputs: tuple[str, ...] = ("s_valid",), outputs: tuple[str, ...] = ("m_ready",)) -> None:
    """Start a 10 ns clock and hold reset for two cycles, every input stream idle and every output stalled."""
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for name in (*inputs, *outputs):
        getattr(dut, name).value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


async def run_stream(
    dut,
    beats: list,
    drive: Callable[[object], None],
    sample: Callable[[], object],
    outputs: int,
    rng: random.Random,
    valid_probability: float = 0.8,
    ready_probability: float = 0.7,
) -> list:
    """Send ``beats`` on s_* (``drive`` sets the data of one beat) with random gaps while m_ready toggles
    randomly; collect ``outputs`` results (``sample`` reads one) and return them."""
    sent, received = 0, []
    while len(received) < outputs:
        offering = sent < len(beats) and rng.random() < valid_probability
        dut.s_valid.value = offering
        if offering:
            drive(beats[sent])
        dut.m_ready.value = rng.random() < ready_probability
        await RisingEdge(dut.clk)
        if int(dut.m_valid.value) and int(dut.m_ready.value):
            received.append(sample())
        if offering and int(dut.s_ready.value):
            sent += 1
    dut.s_valid.value = 0
    return received


async def latency(dut, drive: Callable[[], None]) -> int:
    """Cycles from the edge that takes one beat (output always ready) to the edge where its result is valid."""
    dut.m_ready.value = 1
    drive()
    dut.s_valid.value = 1
    await RisingEdge(dut.clk)  # the beat is taken at this edge (the unit is idle, so ready)
    dut.s_valid.value = 0
    cycles = 1
    await ReadOnly()
    while not int(dut.m_valid.value):
        await RisingEdge(dut.clk)
        cycles += 1
        await ReadOnly()
    await RisingEdge(dut.clk)  # the result leaves
    return cycles


def pack(values: list[int], width: int) -> int:
    """Lanes of two's-complement ``width``-bit integers, lane 0 in the low bits."""
    word = 0
    for lane, v in enumerate(values):
        word |= (v & ((1 << width) - 1)) << (lane * width)
    return word


def unpack(word: int, lanes: int, width: int, signed: bool = True) -> list[int]:
    out = []
    for lane in range(lanes):
        v = (word >> (lane * width)) & ((1 << width) - 1)
        out.append(v - (1 << width) if signed and v >> (width - 1) else v)
    return out


def record_cycles(**measured: int) -> None:
    """Add measured cycle counts to the JSON file named by FPQVAR_CYCLES_JSON (set by rtl/measure_cycles.py)."""
    path = os.environ.get("FPQVAR_CYCLES_JSON")
    if not path:
        return
    target = pathlib.Path(path)
    data = json.loads(target.read_text()) if target.exists() else {}
    data.update(measured)
    target.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
