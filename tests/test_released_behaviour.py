"""The released code's behaviour where we offer it (src/fpqvar/methods/README.md): every option and the preset."""

import pytest
import torch
from tiny_models import tiny_pair

from fpqvar.formats import DFQ_FP4, FP4_E1M2, FP4_E1M2_BIAS1, dual_format, get_format
from fpqvar.methods import QuantizedKVCache, QuantizedLinear, Recipe, get_recipe, quantize_model, released_behaviour
from fpqvar.methods.layers import OperandQuant
from fpqvar.methods.recipe import RELEASED_ROTATION_SEED
from fpqvar.quant import RELEASED_NUMERICS, Numerics, PerGroup, PerToken, fake_quantize
from fpqvar.rotation import orthogonal_hadamard, random_signs

# fpqvar-official-behaviour.md 5.1: the released GHT block's sign flips (1 = +1, 0 = -1).
RELEASED_SIGNS_128 = (
    "01000100010000101110101111111100111010000011111011010101100000000110111101011101010100101111111111100111111110101101011010100110"
)


def test_the_released_rotation_seed_gives_the_released_sign_flips():
    signs = random_signs(128, RELEASED_ROTATION_SEED)
    assert "".join("1" if s > 0 else "0" for s in signs.tolist()) == RELEASED_SIGNS_128
    # R = diag(s) Syl_128 / sqrt(128), Syl the natural-order Sylvester matrix (built here independently)
    sylvester = torch.ones(1, 1, dtype=torch.float64)
    while sylvester.shape[0] < 128:
        sylvester = torch.kron(torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64), sylvester)
    expected = signs[:, None] * sylvester / 128**0.5
    torch.testing.assert_close(orthogonal_hadamard(128, RELEASED_ROTATION_SEED), expected, rtol=0, atol=1e-15)


def test_the_preset_sets_every_released_option():
    base = get_recipe("fp4_fpqvar_kv6")
    released = released_behaviour(base)
    assert released.name == "fp4_fpqvar_kv6_released"
    assert released.numerics == RELEASED_NUMERICS == Numerics("up", "even", "input", 1e-5)
    assert (released.kv_past_only, released.kv_fp16, released.galt_fold) == (True, True, False)
    assert released.rotation == "group" and released.rotation_seed == RELEASED_ROTATION_SEED
    # E1M2 takes the released (halved) grid, also as the DFQ's negative half; other formats are kept
    assert released.layers["ffn.fc2"].input.fmt == "dfq_e1m2b1neg_e2m1pos"
    assert get_format(released.layers["ffn.fc2"].input.fmt) == dual_format(FP4_E1M2_BIAS1, DFQ_FP4.positive)
    assert released.layers["attn.proj"] == base.layers["attn.proj"]
    assert released.kv_cache == base.kv_cache
    assert Recipe.from_dict(released.to_dict()) == released  # what a quantized checkpoint's metadata stores
    assert released_behaviour(get_recipe("fp16")).rotation_seed is None


def test_int_ties_to_even_and_grid_ties_up_in_one_model():
    """The released INT paths use torch.round (ties to even) and its FP paths the CUDA kernel (ties up): one
    recipe with both families must round each its own way."""
    fmt_int, fmt_fp = OperandQuant("int4", PerGroup(128)), OperandQuant("fp4_e2m1", PerGroup(128))
    recipe = Recipe("mixed", layers={"attn.proj": _layer(fmt_int), "ffn.fc1": _layer(fmt_fp)}).replace(tie="up", int_tie="even")
    _, var = tiny_pair()
    weights = {name: var.get_submodule(name).weight.detach().clone() for name in ("blocks.0.attn.proj", "blocks.0.ffn.fc1")}
    for name in weights:  # put ties into the weights: every 8th element exactly half a step of INT4 / E2M1
        w = weights[name]
        w[:, ::8] = w[:, ::8].sign() * w.abs().amax(-1, keepdim=True) * (2.5 / 7 if "proj" in name else 2.5 / 6)
        var.get_submodule(name).weight.data.copy_(w)
    quantize_model(var, recipe)
    for name, fmt, tie in (("blocks.0.attn.proj", "int4", "even"), ("blocks.0.ffn.fc1", "fp4_e2m1", "up")):
        layer = var.get_submodule(name)
        assert isinstance(layer, QuantizedLinear)
        ours = layer.weight.detach()
        assert torch.equal(ours, fake_quantize(weights[name], fmt, PerGroup(128), tie)), name
        other = "up" if tie == "even" else "even"
        assert not torch.equal(ours, fake_quantize(weights[name], fmt, PerGroup(128), other)), name  # ties occurred


def _layer(q):
    from fpqvar.methods import LayerRecipe

    return LayerRecipe(q, q)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("absmax", [3.0, 1e-4, 1e-6])
def test_released_e1m2_grid_equals_the_paper_grid_with_float32_scales(dtype, absmax):
    """Absmax scaling makes the two grids identical when the scale is a normal float32 (the default)."""
    torch.manual_seed(0)
    x = (torch.randn(16, 128) * absmax / 3).clamp(-absmax, absmax).to(dtype)
    for tie in ("even", "up", "down"):
        assert torch.equal(fake_quantize(x, FP4_E1M2, PerGroup(128), tie), fake_quantize(x, FP4_E1M2_BIAS1, PerGroup(128), tie))
        dfq_released = dual_format(FP4_E1M2_BIAS1, DFQ_FP4.positive)
        assert torch.equal(fake_quantize(x, DFQ_FP4, PerGroup(128), tie), fake_quantize(x, dfq_released, PerGroup(128), tie))


def test_released_e1m2_grid_differs_where_the_float16_scale_is_subnormal():
    """The documented limit: with the released float16 arithmetic, a group absmax below ~2e-4 (scale below fp16's
    smallest normal 2**-14 times 3.5) gives a subnormal scale whose rounding depends on the grid's bias."""
    torch.manual_seed(0)
    released = Numerics(scale_dtype="input")
    small = (torch.randn(64, 128) * 2e-5).to(torch.float16)
    paper, halved = (fake_quantize(small, f, PerGroup(128), released) for f in (FP4_E1M2, FP4_E1M2_BIAS1))
    assert not torch.equal(paper, halved)
    large = (torch.randn(64, 128)).to(torch.float16)
    assert torch.equal(*(fake_quantize(large, f, PerGroup(128), released) for f in (FP4_E1M2, FP4_E1M2_BIAS1)))


def test_kv_cache_rounded_to_fp16():
    torch.manual_seed(0)
    quant = OperandQuant("fp6_e2m3", PerToken())
    k = torch.randn(1, 2, 4, 64) * 3
    k[0, 0, 0, 0] = 1e6  # its quantized value exceeds fp16: saturates at 65504, never Inf
    v = torch.randn(1, 2, 4, 64)
    ours, released = QuantizedKVCache(quant), QuantizedKVCache(quant, round_to_fp16=True)
    keys, values = ours.update(k, v)
    rkeys, rvalues = released.update(k, v)
    assert rkeys.dtype == torch.float32 and not torch.equal(rkeys, keys)
    assert torch.equal(rkeys, keys.clamp(-65504, 65504).half().float()) and rkeys[0, 0, 0, 0] == 65504
    assert torch.equal(rvalues, values.half().float())
    assert torch.equal(keys, fake_quantize(k, "fp6_e2m3", PerToken()))


def test_kv_fp16_reaches_the_model():
    _, var = tiny_pair()
    quantize_model(var, get_recipe("fp6_fpqvar_kv6").replace(kv_fp16=True, kv_past_only=True))
    store = var.blocks[0].attn.kv_cache_factory()
    assert store.round_to_fp16 and store.past_only


def test_bad_numerics_in_a_recipe_are_refused():
    with pytest.raises(ValueError, match="tie must be one of"):
        Recipe("bad", int_tie="nearest")
    with pytest.raises(ValueError, match="scale_dtype"):
        Recipe("bad", scale_dtype="float16")
