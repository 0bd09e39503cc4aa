"""linear_tile (GHT -> quantizer -> GEMM) against fpqvar.hw.pipeline.linear_tile: seeded random tiles with gaps on
both streams and backpressure; cycle counts of one tile, pipelined and sequential, against the cycle model."""

import random

import cocotb
import pytest
import torch
from cocotb.triggers import RisingEdge
from simulate import simulate
from streams import pack, record_cycles, start, unpack

from fpqvar.hw.gemm import contribution_width
from fpqvar.hw.pipeline import linear_tile, linear_tile_cycles

ROWS, COLS, LOG2N, WIDTH, GROUPS, WEIGHT_SCALE_WIDTH = 2, 2, 3, 8, 4, 8
N = 1 << LOG2N


def _tile(rng: random.Random, extreme: bool = False):
    low, high = -(1 << (WIDTH - 1)), (1 << (WIDTH - 1)) - 1
    c = GROUPS * N
    if extreme:  # the largest transform outputs and scales
        x = [[low] * c for _ in range(ROWS)]
        weight_scale = [[2**WEIGHT_SCALE_WIDTH - 1] * GROUPS for _ in range(COLS)]
    else:
        x = [[rng.randint(low, high) for _ in range(c)] for _ in range(ROWS)]
        weight_scale = [[rng.randrange(2**WEIGHT_SCALE_WIDTH) for _ in range(GROUPS)] for _ in range(COLS)]
    weight_codes = [[rng.randrange(16) for _ in range(c)] for _ in range(COLS)]
    return torch.tensor(x), torch.tensor(weight_codes), torch.tensor(weight_scale)


def _beats(tile):
    x, weight_codes, weight_scale = tile
    act, weight = [], []
    for g in range(GROUPS):
        act.append(pack(x[:, g * N:(g + 1) * N].reshape(-1).tolist(), WIDTH))
        weight.append((pack(weight_codes[:, g * N:(g + 1) * N].reshape(-1).tolist(), 4),
                       pack(weight_scale[:, g].tolist(), WEIGHT_SCALE_WIDTH)))
    return act, weight


async def _run(dut, tiles, rng, valid_probability, ready_probability):
    """Stream the tiles' beats (activation and weight streams with their own gaps); (results, edges)."""
    out_width = int(dut.OUT_WIDTH.value)
    act_beats, weight_beats = [], []
    for tile in tiles:
        a, w = _beats(tile)
        act_beats += a
        weight_beats += w
    sent_act = sent_weight = edges = 0
    received = []
    while len(received) < len(tiles):
        offer_act = sent_act < len(act_beats) and rng.random() < valid_probability
        offer_weight = sent_weight < len(weight_beats) and rng.random() < valid_probability
        dut.s_valid.value, dut.s_weight_valid.value = offer_act, offer_weight
        if offer_act:
            dut.s_data.value = act_beats[sent_act]
        if offer_weight:
            dut.s_weight_codes.value, dut.s_weight_scale.value = weight_beats[sent_weight]
        dut.m_ready.value = rng.random() < ready_probability
        await RisingEdge(dut.clk)
        edges += 1
        if int(dut.m_valid.value) and int(dut.m_ready.value):
            received.append(unpack(dut.m_result.value.to_unsigned(), ROWS * COLS, out_width))
        sent_act += offer_act and int(dut.s_ready.value)
        sent_weight += offer_weight and int(dut.s_weight_ready.value)
    dut.s_valid.value = dut.s_weight_valid.value = 0
    return received, edges


def _expected(tile, dut):
    x, weight_codes, weight_scale = tile
    result = linear_tile(x, weight_codes, weight_scale, LOG2N, WIDTH, "even", int(dut.INDEX_BITS.value),
                         WEIGHT_SCALE_WIDTH, int(dut.OUT_WIDTH.value))
    return [v for row in result for v in row]


@cocotb.test()
async def random_tiles(dut):
    rng = random.Random(41)
    tiles = [_tile(rng, extreme=True)] + [_tile(rng) for _ in range(20)]
    await start(dut, inputs=("s_valid", "s_weight_valid"))
    received, _ = await _run(dut, tiles, rng, 0.8, 0.7)
    assert received == [_expected(t, dut) for t in tiles]


@cocotb.test()
async def cycles_of_one_tile(dut):
    sequential = bool(int(dut.SEQUENTIAL.value))
    rng = random.Random(42)
    await start(dut, inputs=("s_valid", "s_weight_valid"))
    tile = _tile(rng)
    received, edges = await _run(dut, [tile], rng, 1.0, 1.0)
    assert received == [_expected(tile, dut)]
    assert edges == linear_tile_cycles(GROUPS, LOG2N, sequential), edges
    record_cycles(**{f"linear_tile_{'sequential' if sequential else 'pipelined'}": edges})


@pytest.mark.parametrize("sequential", [0, 1])
def test_linear_tile(simulator, sequential):
    out_width = contribution_width(N, WIDTH + LOG2N, WEIGHT_SCALE_WIDTH) + 2
    simulate(simulator, "linear_tile", "test_linear_tile", {
        "ROWS": ROWS, "COLS": COLS, "LOG2N": LOG2N, "WIDTH": WIDTH, "GROUPS": GROUPS,
        "WEIGHT_SCALE_WIDTH": WEIGHT_SCALE_WIDTH, "OUT_WIDTH": out_width, "SEQUENTIAL": sequential,
    })
