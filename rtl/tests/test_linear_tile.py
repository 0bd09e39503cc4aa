"""linear_tile (GHT -> quantizer -> GEMM) against fpqvar.hw.pipeline.linear_tile: seeded random tiles with gaps on
both streams and backpressure; cycle counts of one tile, pipelined and sequential, against the cycle model."""

import random
from dataclasses import dataclass

import cocotb
import pytest
import torch
from cocotb.triggers import RisingEdge
from simulate import simulate
from streams import pack, record_cycles, start, unpack

from fpqvar.hw.gemm import contribution_width
from fpqvar.hw.pipeline import linear_tile, linear_tile_cycles

# The configuration the tests build (rtl/measure_cycles.py builds a larger one; the cocotb tests read the DUT's).
ROWS, COLS, LOG2N, WIDTH, GROUPS, WEIGHT_SCALE_WIDTH = 2, 2, 3, 8, 4, 8


@dataclass(frozen=True)
class Shape:
    rows: int
    cols: int
    log2n: int
    width: int
    groups: int
    weight_scale_width: int
    out_width: int
    index_bits: int

    @classmethod
    def of(cls, dut) -> "Shape":
        names = ("ROWS", "COLS", "LOG2N", "WIDTH", "GROUPS", "WEIGHT_SCALE_WIDTH", "OUT_WIDTH", "INDEX_BITS")
        return cls(*(int(getattr(dut, name).value) for name in names))


def _tile(rng: random.Random, shape: Shape, extreme: bool = False):
    low, high = -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    c = shape.groups << shape.log2n
    if extreme:  # the largest transform outputs and scales
        x = [[low] * c for _ in range(shape.rows)]
        weight_scale = [[2**shape.weight_scale_width - 1] * shape.groups for _ in range(shape.cols)]
    else:
        x = [[rng.randint(low, high) for _ in range(c)] for _ in range(shape.rows)]
        weight_scale = [[rng.randrange(2**shape.weight_scale_width) for _ in range(shape.groups)] for _ in range(shape.cols)]
    weight_codes = [[rng.randrange(16) for _ in range(c)] for _ in range(shape.cols)]
    return torch.tensor(x), torch.tensor(weight_codes), torch.tensor(weight_scale)


def _beats(tile, shape: Shape):
    x, weight_codes, weight_scale = tile
    n = 1 << shape.log2n
    act, weight = [], []
    for g in range(shape.groups):
        act.append(pack(x[:, g * n:(g + 1) * n].reshape(-1).tolist(), shape.width))
        weight.append((pack(weight_codes[:, g * n:(g + 1) * n].reshape(-1).tolist(), 4),
                       pack(weight_scale[:, g].tolist(), shape.weight_scale_width)))
    return act, weight


async def _run(dut, tiles, rng, valid_probability, ready_probability):
    """Stream the tiles' beats (activation and weight streams with their own gaps); (results, edges)."""
    shape = Shape.of(dut)
    act_beats, weight_beats = [], []
    for tile in tiles:
        a, w = _beats(tile, shape)
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
            received.append(unpack(dut.m_result.value.to_unsigned(), shape.rows * shape.cols, shape.out_width))
        sent_act += offer_act and int(dut.s_ready.value)
        sent_weight += offer_weight and int(dut.s_weight_ready.value)
    dut.s_valid.value = dut.s_weight_valid.value = 0
    return received, edges


def _expected(tile, shape: Shape):
    x, weight_codes, weight_scale = tile
    result = linear_tile(x, weight_codes, weight_scale, shape.log2n, shape.width, "even", shape.index_bits,
                         shape.weight_scale_width, shape.out_width)
    return [v for row in result for v in row]


@cocotb.test()
async def random_tiles(dut):
    rng = random.Random(41)
    shape = Shape.of(dut)
    tiles = [_tile(rng, shape, extreme=True)] + [_tile(rng, shape) for _ in range(20)]
    await start(dut, inputs=("s_valid", "s_weight_valid"))
    received, _ = await _run(dut, tiles, rng, 0.8, 0.7)
    assert received == [_expected(t, shape) for t in tiles]


@cocotb.test()
async def cycles_of_one_tile(dut):
    sequential, shape = bool(int(dut.SEQUENTIAL.value)), Shape.of(dut)
    rng = random.Random(42)
    await start(dut, inputs=("s_valid", "s_weight_valid"))
    tile = _tile(rng, shape)
    received, edges = await _run(dut, [tile], rng, 1.0, 1.0)
    assert received == [_expected(tile, shape)]
    assert edges == linear_tile_cycles(shape.groups, shape.log2n, sequential), edges
    record_cycles(**{f"linear_tile_{'sequential' if sequential else 'pipelined'}": edges})


@pytest.mark.parametrize("sequential", [0, 1])
def test_linear_tile(simulator, sequential):
    out_width = contribution_width(1 << LOG2N, WIDTH + LOG2N, WEIGHT_SCALE_WIDTH) + 2
    simulate(simulator, "linear_tile", "test_linear_tile", {
        "ROWS": ROWS, "COLS": COLS, "LOG2N": LOG2N, "WIDTH": WIDTH, "GROUPS": GROUPS,
        "WEIGHT_SCALE_WIDTH": WEIGHT_SCALE_WIDTH, "OUT_WIDTH": out_width, "SEQUENTIAL": sequential,
    })
