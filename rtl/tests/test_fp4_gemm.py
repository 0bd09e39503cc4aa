"""fp4_gemm against fpqvar.hw.gemm: every code pair in every lane position, seeded random tiles (1-5 groups) with
extreme scales, independent gaps on both input streams and backpressure; measured latency and throughput."""

import random
from dataclasses import dataclass

import cocotb
import pytest
import torch
from cocotb.triggers import RisingEdge
from simulate import simulate
from streams import pack, record_cycles, start, unpack

from fpqvar.hw import gemm
from fpqvar.hw.gemm import contribution_width
from fpqvar.hw.pipeline import gemm_job_cycles

# The configuration the tests build (rtl/measure_cycles.py builds larger ones; the cocotb tests read the DUT's).
ROWS, COLS, GROUP, LANES, SCALE_WIDTH, WEIGHT_SCALE_WIDTH = 2, 2, 8, 4, 12, 8


@dataclass(frozen=True)
class Shape:
    rows: int
    cols: int
    group: int
    lanes: int
    scale_width: int
    weight_scale_width: int
    out_width: int

    @classmethod
    def of(cls, dut) -> "Shape":
        names = ("ROWS", "COLS", "GROUP", "LANES", "SCALE_WIDTH", "WEIGHT_SCALE_WIDTH", "OUT_WIDTH")
        return cls(*(int(getattr(dut, name).value) for name in names))


def _tiles(rng: random.Random, shape: Shape):
    """(act codes (rows, K), act max, act max negative, weight codes (cols, K), weight scales) per tile."""
    top, top_w = 2**shape.scale_width - 1, 2**shape.weight_scale_width - 1
    tiles = []
    for pair in range(256):  # one non-zero product per tile, moving through the lane positions
        act = torch.zeros(shape.rows, shape.group, dtype=torch.int64)
        weight = torch.zeros(shape.cols, shape.group, dtype=torch.int64)
        act[:, pair % shape.group], weight[:, pair % shape.group] = pair >> 4, pair & 0xF
        tiles.append((act, [[rng.randint(1, top)] for _ in range(shape.rows)], [[rng.randint(1, top)] for _ in range(shape.rows)],
                      weight, [[rng.randint(1, top_w)] for _ in range(shape.cols)]))
    for i in range(40):
        groups = rng.randint(1, 5)
        if i < 4:  # the largest magnitudes: every product +-144 (or DFQ's extremes), scales at their maximum
            k = groups * shape.group
            act = torch.full((shape.rows, k), (0b0111, 0b1111)[i % 2], dtype=torch.int64)
            weight = torch.full((shape.cols, k), (0b0111, 0b1111)[i // 2], dtype=torch.int64)
            tiles.append((act, [[top] * groups] * shape.rows, [[top] * groups] * shape.rows, weight, [[top_w] * groups] * shape.cols))
        else:
            tiles.append(_random_tile(rng, groups, shape))
    return tiles


def _random_tile(rng: random.Random, groups: int, shape: Shape):
    top, top_w = 2**shape.scale_width - 1, 2**shape.weight_scale_width - 1
    k = groups * shape.group
    return (
        torch.tensor([[rng.randrange(16) for _ in range(k)] for _ in range(shape.rows)]),
        [[rng.randint(0, top) for _ in range(groups)] for _ in range(shape.rows)],
        [[rng.randint(0, top) for _ in range(groups)] for _ in range(shape.rows)],
        torch.tensor([[rng.randrange(16) for _ in range(k)] for _ in range(shape.cols)]),
        [[rng.randint(0, top_w) for _ in range(groups)] for _ in range(shape.cols)],
    )


def _beats(tile, shape: Shape):
    """The activation and weight beats of one tile: `lanes` codes of every row (column) per beat."""
    act, act_max, act_max_negative, weight, weight_scale = tile
    k, lanes = act.shape[1], shape.lanes
    act_beats, weight_beats = [], []
    for start_lane in range(0, k, lanes):
        g = start_lane // shape.group
        act_beats.append((
            pack(act[:, start_lane:start_lane + lanes].reshape(-1).tolist(), 4),
            pack([m[g] for m in act_max], shape.scale_width),
            pack([m[g] for m in act_max_negative], shape.scale_width),
            start_lane + lanes == k,
        ))
        weight_beats.append((
            pack(weight[:, start_lane:start_lane + lanes].reshape(-1).tolist(), 4),
            pack([s[g] for s in weight_scale], shape.weight_scale_width),
        ))
    return act_beats, weight_beats


def _drive_act(dut, beat):
    dut.s_act_codes.value, dut.s_act_max.value, dut.s_act_max_negative.value, dut.s_act_last.value = beat


def _drive_weight(dut, beat):
    dut.s_weight_codes.value, dut.s_weight_scale.value = beat


async def _run(dut, act_beats, weight_beats, results, rng, valid_probability, ready_probability):
    """Both input streams with their own random gaps, random backpressure; returns (results, cycles)."""
    shape = Shape.of(dut)
    sent_act = sent_weight = cycles = 0
    received = []
    while len(received) < results:
        offer_act = sent_act < len(act_beats) and rng.random() < valid_probability
        offer_weight = sent_weight < len(weight_beats) and rng.random() < valid_probability
        dut.s_act_valid.value, dut.s_weight_valid.value = offer_act, offer_weight
        if offer_act:
            _drive_act(dut, act_beats[sent_act])
        if offer_weight:
            _drive_weight(dut, weight_beats[sent_weight])
        dut.m_ready.value = rng.random() < ready_probability
        await RisingEdge(dut.clk)
        cycles += 1
        if int(dut.m_valid.value) and int(dut.m_ready.value):
            received.append(unpack(dut.m_result.value.to_unsigned(), shape.rows * shape.cols, shape.out_width))
        sent_act += offer_act and int(dut.s_act_ready.value)
        sent_weight += offer_weight and int(dut.s_weight_ready.value)
    dut.s_act_valid.value = dut.s_weight_valid.value = 0
    return received, cycles


def _expected(tile, dual: bool, shape: Shape) -> list[int]:
    act, act_max, act_max_negative, weight, weight_scale = tile
    result = gemm(act, act_max, weight, weight_scale, dual, shape.group, act_max_negative,
                  shape.scale_width, shape.weight_scale_width, shape.out_width)
    return [v for row in result for v in row]


async def _start(dut):
    await start(dut, inputs=("s_act_valid", "s_weight_valid"))


@cocotb.test()
async def every_code_pair_and_random_tiles(dut):
    dual, shape = bool(int(dut.DUAL.value)), Shape.of(dut)
    rng = random.Random(5)
    tiles = _tiles(rng, shape)
    expected = [_expected(tile, dual, shape) for tile in tiles]
    act_beats, weight_beats = [], []
    for tile in tiles:
        a, w = _beats(tile, shape)
        act_beats += a
        weight_beats += w
    await _start(dut)
    received, _ = await _run(dut, act_beats, weight_beats, len(tiles), rng, 0.8, 0.7)
    assert received == expected


@cocotb.test()
async def latency_and_throughput(dut):
    """Tiles of 1 and 15 groups (C = 1920) with every stream always ready: one beat per cycle, then the latency."""
    rng = random.Random(6)
    dual, shape = bool(int(dut.DUAL.value)), Shape.of(dut)
    await _start(dut)
    measured = {}
    for groups in (1, 15):
        tile = _random_tile(rng, groups, shape)
        act_beats, weight_beats = _beats(tile, shape)
        received, cycles = await _run(dut, act_beats, weight_beats, 1, rng, 1.0, 1.0)
        assert received == [_expected(tile, dual, shape)]
        assert cycles == gemm_job_cycles(len(act_beats)), (groups, cycles)
        measured[groups] = cycles
    # one group alone: latency + 1 edges after its first beat; 14 more groups: 14 x beats per group more
    latency = measured[1] - shape.group // shape.lanes
    interval = (measured[15] - measured[1]) / (14 * shape.group // shape.lanes)
    record_cycles(**{f"fp4_gemm_{'dfq' if dual else 'e2m1'}_latency": latency,
                     f"fp4_gemm_{'dfq' if dual else 'e2m1'}_beat_interval": interval,
                     f"fp4_gemm_{'dfq' if dual else 'e2m1'}_tile_15_groups": measured[15]})


@pytest.mark.parametrize("dual", [0, 1])
def test_fp4_gemm(simulator, dual):
    out_width = contribution_width(GROUP, SCALE_WIDTH, WEIGHT_SCALE_WIDTH, bool(dual)) + 8
    simulate(simulator, "fp4_gemm", "test_fp4_gemm", {
        "ROWS": ROWS, "COLS": COLS, "GROUP": GROUP, "LANES": LANES, "DUAL": dual,
        "SCALE_WIDTH": SCALE_WIDTH, "WEIGHT_SCALE_WIDTH": WEIGHT_SCALE_WIDTH, "OUT_WIDTH": out_width,
    })
