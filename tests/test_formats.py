"""Number formats: grids, bit codes, Table I and the OCP MX definitions."""

import csv
import math

import pytest
import torch

from fpqvar.formats import (
    AFPQ_FP4,
    DFQ_FP4,
    DFQ_FP6,
    FORMATS,
    FP4_E1M2,
    FP4_E1M2_BIAS1,
    FP4_E2M1,
    FP4_E3M0,
    FP6_E2M3,
    FP6_E3M2,
    FP8_E4M3,
    FP8_E5M2,
    INT4,
    INT4_ASYM,
    INT6_ASYM,
    RELEASED_FORMATS,
    DualFormat,
    dual_format,
    get_format,
)
from fpqvar.formats._table import TabulatedFormat


def test_table_one_of_the_paper(repo_root):
    rows = list(csv.DictReader(open(repo_root / "data/paper/table1_fp4_encodings.csv")))
    assert len(rows) == 16
    for fmt in (FP4_E1M2, FP4_E2M1, FP4_E3M0):
        for row in rows:
            code = int(row["code"], 2)
            assert fmt.decode(torch.tensor(code)).item() == float(row[fmt.name]), (fmt, row["code"])
            if code != 0b1000:  # -0 encodes as +0
                assert fmt.encode(torch.tensor(float(row[fmt.name]))).item() == code


@pytest.mark.parametrize(
    "fmt, bias, max_value, positive_grid",
    [
        (FP4_E1M2, 0, 3.5, [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]),
        (FP4_E2M1, 1, 6.0, [0, 0.5, 1, 1.5, 2, 3, 4, 6]),
        (FP4_E3M0, 3, 16.0, [0, 0.25, 0.5, 1, 2, 4, 8, 16]),
        (FP6_E2M3, 1, 7.5, [k / 8 for k in range(16)] + [2 + k / 4 for k in range(8)] + [4 + k / 2 for k in range(8)]),
        (
            FP6_E3M2, 3, 28.0,
            [0, 0.0625, 0.125, 0.1875]
            + [2.0**e * (1 + k / 4) for e in range(-2, 5) for k in range(4)],
        ),
    ],
)
def test_fp4_fp6_grids(fmt, bias, max_value, positive_grid):
    assert fmt.bias == bias and fmt.max_value == max_value
    grid = fmt.grid.tolist()
    assert grid == sorted(-v for v in positive_grid[1:]) + positive_grid
    assert len(grid) == 2**fmt.bits - 1  # no Inf/NaN codes below 8 bits; +-0 collapse


def test_fp8_ocp_definitions():
    # E4M3: no Inf, S.1111.111 is NaN, max 448, min subnormal 2**-9.
    assert FP8_E4M3.max_value == 448.0
    assert math.isnan(FP8_E4M3.decode(torch.tensor(0x7F)).item())
    assert math.isnan(FP8_E4M3.decode(torch.tensor(0xFF)).item())
    assert FP8_E4M3.decode(torch.tensor(0x7E)).item() == 448.0
    assert FP8_E4M3.decode(torch.tensor(0x01)).item() == 2.0**-9
    assert FP8_E4M3.grid.numel() == 253
    # E5M2: IEEE-like specials, max 57344, min subnormal 2**-16.
    assert FP8_E5M2.max_value == 57344.0
    assert FP8_E5M2.decode(torch.tensor(0x7C)).item() == math.inf
    assert math.isnan(FP8_E5M2.decode(torch.tensor(0x7D)).item())
    assert FP8_E5M2.decode(torch.tensor(0x01)).item() == 2.0**-16
    assert FP8_E5M2.grid.numel() == 247


@pytest.mark.parametrize("fmt, torch_dtype", [(FP8_E4M3, torch.float8_e4m3fn), (FP8_E5M2, torch.float8_e5m2)])
def test_fp8_codes_agree_with_torch(fmt, torch_dtype):
    codes = torch.arange(256, dtype=torch.uint8)
    theirs = codes.view(torch_dtype).to(torch.float64)
    ours = fmt.decode(codes)
    same = (theirs == ours) | (theirs.isnan() & ours.isnan())
    assert bool(same.all())


def test_integer_grids():
    assert INT4.grid.tolist() == list(range(-7, 8))  # symmetric absmax INT4: 15 levels
    assert INT4_ASYM.grid.tolist() == list(range(-8, 8))
    assert INT4.encode(torch.tensor([-7.0, -1.0, 0.0, 7.0])).tolist() == [0b1001, 0b1111, 0, 0b0111]
    # E1M2 is INT4 with 15 levels, up to a factor of two (why plots say "E1M2 / INT4").
    assert (FP4_E1M2.grid * 2).tolist() == INT4.grid.tolist()


def test_dual_formats():
    assert DFQ_FP4.negative_grid.tolist() == [-3.5, -3, -2.5, -2, -1.5, -1, -0.5, 0]
    assert DFQ_FP4.positive_grid.tolist() == [0, 0.5, 1, 1.5, 2, 3, 4, 6]
    assert DFQ_FP4.grid.numel() == 15
    assert DFQ_FP6.negative_grid.tolist() == [float(v) for v in range(-32, 1)]
    assert DFQ_FP6.positive_grid.tolist() == FP6_E2M3.grid[FP6_E2M3.grid >= 0].tolist()
    assert DFQ_FP6.grid.numel() == 64
    assert AFPQ_FP4.grid.tolist() == FP4_E2M1.grid.tolist()
    # negative values take the negative format's codes (sign bit set), positives the positive's.
    assert DFQ_FP4.encode(torch.tensor([-3.5, -0.5, 0.0, 6.0])).tolist() == [0b1111, 0b1001, 0, 0b0111]
    assert DFQ_FP6.encode(torch.tensor([-32.0, -1.0, 7.5])).tolist() == [0b100000, 0b111111, 0b011111]
    with pytest.raises(ValueError, match="one width"):
        DualFormat("bad", FP4_E1M2, FP6_E2M3)
    assert INT6_ASYM.bits == FP6_E2M3.bits


@pytest.mark.parametrize("fmt", [*FORMATS.values(), *RELEASED_FORMATS.values()], ids=lambda f: f.name)
def test_encode_decode_round_trip(fmt):
    grid = fmt.grid
    assert torch.equal(fmt.decode(fmt.encode(grid)), grid)
    assert bool((grid[1:] > grid[:-1]).all())


def test_encode_rejects_values_off_the_grid():
    with pytest.raises(ValueError, match="not on the grid of fp4_e2m1"):
        FP4_E2M1.encode(torch.tensor([2.5]))
    with pytest.raises(ValueError, match="codes of fp4_e2m1 lie in"):
        FP4_E2M1.decode(torch.tensor([16]))


def test_format_names():
    assert get_format("fp_e2") is FP4_E2M1
    assert get_format("fp6_int_neg_e2m3_pos") is DFQ_FP6
    assert get_format("FP4_E3M0") is FP4_E3M0
    with pytest.raises(ValueError, match="unknown number format 'fp5'.*fp4_e2m1"):
        get_format("fp5")


def test_one_table_implementation_serves_every_kind():
    """Grid, encode and decode are written once (TabulatedFormat); each kind only gives its value table."""
    for fmt in [*FORMATS.values(), *RELEASED_FORMATS.values()]:
        assert isinstance(fmt, TabulatedFormat)
        for method in ("grid", "encode", "decode", "_code_table"):
            assert getattr(type(fmt), method) is getattr(TabulatedFormat, method), (fmt.name, method)
        # the grid is the finite values in range, each encoded by its smallest code (+0 for zero)
        table = fmt.values_by_code
        finite = table[torch.isfinite(table) & (table >= fmt.min_value) & (table <= fmt.max_value)]
        assert fmt.grid.tolist() == sorted({v + 0.0 for v in finite.tolist()})
        assert fmt.encode(torch.tensor([0.0, -0.0])).tolist() == [0, 0]


def test_released_e1m2_grid():
    """The released code's E1M2 list: Table I's grid halved (bias 1, max 1.75)."""
    assert FP4_E1M2_BIAS1.bias == 1 and FP4_E1M2_BIAS1.max_value == 1.75
    assert (FP4_E1M2_BIAS1.grid * 2).tolist() == FP4_E1M2.grid.tolist()
    assert get_format("fp4_e1m2b1") is FP4_E1M2_BIAS1
    assert torch.equal(FP4_E1M2_BIAS1.encode(FP4_E1M2_BIAS1.grid), FP4_E1M2.encode(FP4_E1M2.grid))  # same codes


SAME_WIDTH_HALVES = [
    (a, b) for a in [*FORMATS.values(), *RELEASED_FORMATS.values()] for b in [*FORMATS.values(), *RELEASED_FORMATS.values()]
    if not isinstance(a, DualFormat) and not isinstance(b, DualFormat) and a.bits == b.bits
]


def test_every_dual_format_name_round_trips():
    for negative, positive in SAME_WIDTH_HALVES:
        fmt = dual_format(negative, positive)
        assert get_format(fmt.name) == fmt and (fmt.negative, fmt.positive) == (negative, positive), fmt.name
    # the registered names are what dual_format returns for their halves
    assert dual_format(FP4_E1M2, FP4_E2M1) is DFQ_FP4 and dual_format(FP4_E2M1, FP4_E2M1) is AFPQ_FP4
    assert get_format("dfq_e2m1neg_e2m1pos") is AFPQ_FP4
    assert get_format("dfq_e3m0neg_e2m1pos").negative is FP4_E3M0
    with pytest.raises(ValueError, match="one width"):
        get_format("dfq_e2m1neg_e2m3pos")
    with pytest.raises(ValueError, match=r"dfq_<negative>neg_<positive>pos with halves e1m2"):
        get_format("dfq_e9m9neg_e2m1pos")


def test_dfq_search_result_names_a_recipe_format():
    """Issue: search_dual_format returned names that get_format (and so a recipe) did not know."""
    from fpqvar.methods import LayerRecipe, Recipe
    from fpqvar.methods.layers import OperandQuant
    from fpqvar.methods.search import search_dual_format

    torch.manual_seed(0)
    x = torch.cat([-torch.rand(4, 64) * 0.1, torch.rand(4, 64).pow(4) * 6], dim=1)  # small negatives, heavy positives
    fmt, errors = search_dual_format([x])
    assert errors[(fmt.negative.name, fmt.positive.name)] == min(errors.values())
    assert get_format(fmt.name) == fmt
    recipe = Recipe("searched", layers={"ffn.fc2": LayerRecipe(input=OperandQuant(fmt.name))})
    assert Recipe.from_dict(recipe.to_dict()).layers["ffn.fc2"].input.fmt == fmt.name
