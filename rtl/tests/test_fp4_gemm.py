"""fp4_gemm against fpqvar.hw.gemm: every code pair in every lane position, seeded random tiles (1-5 groups) with
extreme scales, independent gaps on both input streams and backpressure; measured latency and throughput."""

import random

import cocotb
import pytest
import torch
from cocotb.triggers import RisingEdge
from simulate import simulate
from streams import pack, start, unpack

from fpqvar.hw import gemm
from fpqvar.hw.gemm import contribution_width

ROWS, COLS, GROUP, LANES, SCALE_WIDTH, WEIGHT_SCALE_WIDTH = 2, 2, 8, 4, 12, 8


def _tiles(rng: random.Random, dual: bool):
    """(act codes (ROWS, K), act max, act max negative, weight codes (COLS, K), weight scales) per tile."""
    top, top_w = 2**SCALE_WIDTH - 1, 2**WEIGHT_SCALE_WIDTH - 1
    tiles = []
    for pair in range(256):  # one non-zero product per tile, moving through the lane positions
        act = torch.zeros(ROWS, GROUP, dtype=torch.int64)
        weight = torch.zeros(COLS, GROUP, dtype=torch.int64)
        act[:, pair % GROUP], weight[:, pair % GROUP] = pair >> 4, pair & 0xF
        scales = [[rng.randint(1, top)] for _ in range(ROWS)]
        tiles.append((act, scales, [[rng.randint(1, top)] for _ in range(ROWS)], weight, [[rng.randint(1, top_w)] for _ in range(COLS)]))
    for i in range(40):
        groups = rng.randint(1, 5)
        if i < 4:
            k = groups * GROUP  # the largest magnitudes: every product +-144 (or DFQ's extremes), scales at their maximum
            act = torch.full((ROWS, k), (0b0111, 0b1111)[i % 2], dtype=torch.int64)
            weight = torch.full((COLS, k), (0b0111, 0b1111)[i // 2], dtype=torch.int64)
            act_max = [[top] * groups for _ in range(ROWS)]
            act_max_negative = [[top] * groups for _ in range(ROWS)]
            weight_scale = [[top_w] * groups for _ in range(COLS)]
            tiles.append((act, act_max, act_max_negative, weight, weight_scale))
        else:
            tiles.append(_random_tile(rng, groups))
    return tiles


def _random_tile(rng: random.Random, groups: int):
    top, top_w = 2**SCALE_WIDTH - 1, 2**WEIGHT_SCALE_WIDTH - 1
    k = groups * GROUP
    return (
        torch.tensor([[rng.randrange(16) for _ in range(k)] for _ in range(ROWS)]),
        [[rng.randint(0, top) for _ in range(groups)] for _ in range(ROWS)],
        [[rng.randint(0, top) for _ in range(groups)] for _ in range(ROWS)],
        torch.tensor([[rng.randrange(16) for _ in range(k)] for _ in range(COLS)]),
        [[rng.randint(0, top_w) for _ in range(groups)] for _ in range(COLS)],
    )


def _beats(tile):
    """The activation and weight beats of one tile: LANES codes of every row (column) per beat."""
    act, act_max, act_max_negative, weight, weight_scale = tile
    k = act.shape[1]
    act_beats, weight_beats = [], []
    for start_lane in range(0, k, LANES):
        g = start_lane // GROUP
        act_beats.append((
            pack(act[:, start_lane:start_lane + LANES].reshape(-1).tolist(), 4),
            pack([m[g] for m in act_max], SCALE_WIDTH),
            pack([m[g] for m in act_max_negative], SCALE_WIDTH),
            start_lane + LANES == k,
        ))
        weight_beats.append((
            pack(weight[:, start_lane:start_lane + LANES].reshape(-1).tolist(), 4),
            pack([s[g] for s in weight_scale], WEIGHT_SCALE_WIDTH),
        ))
    return act_beats, weight_beats


def _drive_act(dut, beat):
    dut.s_act_codes.value, dut.s_act_max.value, dut.s_act_max_negative.value, dut.s_act_last.value = beat


def _drive_weight(dut, beat):
    dut.s_weight_codes.value, dut.s_weight_scale.value = beat


async def _run(dut, act_beats, weight_beats, results, rng, valid_probability, ready_probability):
    """Both input streams with their own random gaps, random backpressure; returns (results, cycles)."""
    out_width = int(dut.OUT_WIDTH.value)
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
            received.append(unpack(dut.m_result.value.to_unsigned(), ROWS * COLS, out_width))
        sent_act += offer_act and int(dut.s_act_ready.value)
        sent_weight += offer_weight and int(dut.s_weight_ready.value)
    dut.s_act_valid.value = dut.s_weight_valid.value = 0
    return received, cycles


async def _start(dut):
    await start(dut, inputs=("s_act_valid", "s_weight_valid"))


@cocotb.test()
async def every_code_pair_and_random_tiles(dut):
    dual = bool(int(dut.DUAL.value))
    rng = random.Random(5)
    tiles = _tiles(rng, dual)
    expected = []
    for act, act_max, act_max_negative, weight, weight_scale in tiles:
        result = gemm(act, act_max, weight, weight_scale, dual, GROUP, act_max_negative,
                      SCALE_WIDTH, WEIGHT_SCALE_WIDTH, int(dut.OUT_WIDTH.value))
        expected.append([v for row in result for v in row])
    act_beats, weight_beats = [], []
    for tile in tiles:
        a, w = _beats(tile)
        act_beats += a
        weight_beats += w
    await _start(dut)
    received, _ = await _run(dut, act_beats, weight_beats, len(tiles), rng, 0.8, 0.7)
    assert received == expected


@cocotb.test()
async def latency_and_throughput(dut):
    """Tiles of 1 and 12 groups with every stream always ready: one beat per cycle, then the latency."""
    rng = random.Random(6)
    await _start(dut)
    for groups in (1, 12):
        act_beats, weight_beats = _beats(_random_tile(rng, groups))
        _, cycles = await _run(dut, act_beats, weight_beats, 1, rng, 1.0, 1.0)
        # from the edge taking the first beat to the edge handing the result over: beats + latency 5
        assert cycles == len(act_beats) + 5, (groups, cycles)


@pytest.mark.parametrize("dual", [0, 1])
def test_fp4_gemm(simulator, dual):
    out_width = contribution_width(GROUP, SCALE_WIDTH, WEIGHT_SCALE_WIDTH, bool(dual)) + 8
    simulate(simulator, "fp4_gemm", "test_fp4_gemm", {
        "ROWS": ROWS, "COLS": COLS, "GROUP": GROUP, "LANES": LANES, "DUAL": dual,
        "SCALE_WIDTH": SCALE_WIDTH, "WEIGHT_SCALE_WIDTH": WEIGHT_SCALE_WIDTH, "OUT_WIDTH": out_width,
    })
