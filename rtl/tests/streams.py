"""cocotb helpers for valid/ready streams: clock and reset, a driver with random gaps and backpressure, latency,
and the cycle record that rtl/measure_cycles.py collects."""

from __future__ import annotations

import json
import os
import pathlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from cocotb.clock import Clock
from cocotb.triggers import RisingEdge


async def start(dut, inputs: tuple[str, ...] = ("s_valid",), outputs: tuple[str, ...] = ("m_ready",)) -> None:
    """Start a 10 ns clock and hold reset for two cycles, every input stream idle and every output stalled."""
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for name in (*inputs, *outputs):
        getattr(dut, name).value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


@dataclass(frozen=True)
class InputStream:
    """One valid/ready input stream: its beats, what puts one beat on the data signals, its handshake signals."""

    beats: list
    drive: Callable[[object], None]
    valid: str = "s_valid"
    ready: str = "s_ready"


async def run_streams(
    dut,
    streams: list[InputStream],
    sample: Callable[[], object],
    outputs: int,
    rng: random.Random,
    valid_probability: float = 0.8,
    ready_probability: float = 0.7,
) -> tuple[list, int]:
    """Send every stream's beats, each with its own random gaps, while m_ready toggles randomly; collect
    ``outputs`` results (``sample`` reads one). Returns the results and the clock edges taken."""
    sent, received, edges = [0] * len(streams), [], 0
    while len(received) < outputs:
        offers = [n < len(stream.beats) and rng.random() < valid_probability for n, stream in zip(sent, streams, strict=True)]
        for stream, n, offer in zip(streams, sent, offers, strict=True):
            getattr(dut, stream.valid).value = offer
            if offer:
                stream.drive(stream.beats[n])
        dut.m_ready.value = rng.random() < ready_probability
        await RisingEdge(dut.clk)
        edges += 1
        if int(dut.m_valid.value) and int(dut.m_ready.value):
            received.append(sample())
        sent = [n + int(offer and int(getattr(dut, stream.ready).value)) for stream, n, offer in zip(streams, sent, offers, strict=True)]
    for stream in streams:
        getattr(dut, stream.valid).value = 0
    return received, edges


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
    """:func:`run_streams` with the one input stream s_*; returns the results."""
    stream = InputStream(beats, drive)
    return (await run_streams(dut, [stream], sample, outputs, rng, valid_probability, ready_probability))[0]


async def timing(dut, beats: list, drive: Callable[[object], None]) -> tuple[int, float]:
    """Latency and initiation interval, input always valid and output always ready: one beat alone takes
    latency + 1 edges from the edge taking it to the edge handing its result over; len(beats) beats take
    (len(beats) - 1) x interval more."""
    one = await _edges(dut, beats[:1], drive)
    many = await _edges(dut, beats, drive)
    return one - 1, (many - one) / (len(beats) - 1)


async def _edges(dut, beats: list, drive: Callable[[object], None]) -> int:
    dut.m_ready.value = 1
    sent = received = edges = 0
    while received < len(beats):
        dut.s_valid.value = sent < len(beats)
        if sent < len(beats):
            drive(beats[sent])
        await RisingEdge(dut.clk)
        edges += 1
        received += int(dut.m_valid.value)
        sent += sent < len(beats) and int(dut.s_ready.value)
    dut.s_valid.value = 0
    return edges


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


def vectors() -> dict:
    """The vectors and expected results that pytest's side computed with the golden models (simulate.py)."""
    return json.loads(pathlib.Path(os.environ["FPQVAR_VECTORS"]).read_text())


def record_cycles(**measured: int) -> None:
    """Add measured cycle counts to the JSON file named by FPQVAR_CYCLES_JSON (set by rtl/measure_cycles.py)."""
    path = os.environ.get("FPQVAR_CYCLES_JSON")
    if not path:
        return
    target = pathlib.Path(path)
    data = json.loads(target.read_text()) if target.exists() else {}
    data.update(measured)
    target.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
