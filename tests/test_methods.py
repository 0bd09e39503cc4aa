"""Quantization methods: Hadamard constructions, exactness of rotation and GALT folding, recipes on models."""

import dataclasses
import json

import pytest
import torch
from tiny_models import tiny_pair
from torch import nn

from fpqvar.formats import get_format
from fpqvar.methods import (
    RECIPES,
    QuantizedKVCache,
    QuantizedLinear,
    Recipe,
    get_recipe,
    quantize_model,
    rotated_layer_names,
)
from fpqvar.methods.layers import OperandQuant
from fpqvar.methods.recipe import ROTATED_KINDS
from fpqvar.model import VAR, KVCache, released_var_config
from fpqvar.model.hooks import BLOCK_LINEARS, block_layer_name
from fpqvar.quant import PerGroup, PerToken, quantize
from fpqvar.rotation import block_diagonal_hadamard, hadamard, orthogonal_hadamard, paley_type_1, paley_type_2


@pytest.mark.parametrize("n", [128, 384, 1024, 1280, 1536, 1920, 2304])
def test_hadamard_for_every_var_width(n):
    H = hadamard(n)
    assert bool((H.abs() == 1).all())
    assert torch.equal(H @ H.T, n * torch.eye(n, dtype=torch.float64))


def test_paley_constructions_and_errors():
    assert paley_type_1(59).shape == (60, 60) and paley_type_2(17).shape == (36, 36)
    with pytest.raises(ValueError, match="prime q = 3 mod 4"):
        paley_type_1(13)
    with pytest.raises(ValueError, match="no Hadamard matrix of order 92"):  # 92 = 4 * 23 and 91, 22 are not prime
        hadamard(92)
    R = orthogonal_hadamard(384, seed=3)
    assert torch.allclose(R @ R.T, torch.eye(384, dtype=torch.float64), atol=1e-12)
    G = block_diagonal_hadamard(384, 128, seed=1)
    assert torch.equal(G[:128, :128], G[256:, 256:]) and G[:128, 128:].abs().sum() == 0


def _teacher_logits(vae, var, seed=0):
    torch.manual_seed(seed)
    x = vae.quantize.idxBl_to_var_input(vae.img_to_idxBl(torch.rand(2, 3, 8, 8) * 2 - 1))
    with torch.no_grad():
        return var(torch.tensor([1, 6]), x)


def _random_lambdas(var, seed=0):
    g = torch.Generator().manual_seed(seed)
    C = var.config.C
    return {name: torch.rand(C, generator=g) * 1.5 + 0.5 for name in rotated_layer_names(len(var.blocks))}


NO_QUANT = Recipe("transform only")


@pytest.mark.parametrize("rotation", ["full", "group"])
@pytest.mark.parametrize("seed", [None, 7])
def test_rotation_alone_leaves_outputs_unchanged(rotation, seed):
    vae, var = tiny_pair(width=384)
    reference = _teacher_logits(vae, var)
    quantize_model(var, NO_QUANT.replace(rotation=rotation, rotation_seed=seed))
    assert isinstance(var.blocks[0].attn.mat_qkv, QuantizedLinear)
    # float32 products of a 384-wide rotation: about 1e-6 relative error per matmul
    torch.testing.assert_close(_teacher_logits(vae, var), reference, rtol=0, atol=1e-4)


@pytest.mark.parametrize("fold", [True, False])
def test_galt_alone_leaves_outputs_unchanged(fold):
    vae, var = tiny_pair(width=384)
    reference = _teacher_logits(vae, var)
    quantize_model(var, NO_QUANT.replace(galt=True, galt_fold=fold, rotation="group"), lambdas=_random_lambdas(var))
    torch.testing.assert_close(_teacher_logits(vae, var), reference, rtol=0, atol=1e-4)


def test_folded_galt_equals_online_galt_under_quantization():
    outputs = []
    for fold in (True, False):
        vae, var = tiny_pair(width=384)
        quantize_model(var, get_recipe("fp4_fpqvar").replace(galt_fold=fold), lambdas=_random_lambdas(var))
        outputs.append(_teacher_logits(vae, var))
    # the two differ only in where lambda is multiplied: float rounding of the modulated activation
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=1e-3)


def test_quantized_weights_lie_on_grid_times_scale():
    _, var = tiny_pair(width=384)
    original = var.blocks[0].ffn.fc2.weight.detach().clone()
    quantize_model(var, get_recipe("fp4_dfq"))
    layer = var.blocks[0].ffn.fc2
    q = quantize(original, "fp4_e2m1", PerGroup(128))
    assert q.scale.shape == (384, 12)
    assert torch.equal(layer.weight, q.dequantize())
    levels = layer.weight.reshape(384, 12, 128) / q.scale[..., None]
    assert bool(torch.isin(levels, get_format("fp4_e2m1").grid.float()).all())
    assert layer.input_quant.fmt == "dfq_e1m2neg_e2m1pos"


def test_quantization_changes_outputs_by_format_strength():
    vae, var = tiny_pair(width=384)
    reference = _teacher_logits(vae, var)
    errors = {}
    for name in ("int8_rtn", "fp6_baseline", "fp4_baseline"):
        vae, var = tiny_pair(width=384)
        quantize_model(var, get_recipe(name))
        errors[name] = (_teacher_logits(vae, var) - reference).pow(2).mean().item()
    assert 0 < errors["int8_rtn"] < errors["fp6_baseline"] < errors["fp4_baseline"]


D30_RECIPES = ("fp4_mixedformat_d30", "fp6_mixedformat_d30")  # per-block formats for 30 blocks


def _assert_wired_as_the_recipe_says(var, recipe):
    """Every block linear carries exactly the recipe's operand formats (none where the recipe has none), the
    rotated layers the recipe's rotation, and the KV store the recipe's format."""
    for i in range(len(var.blocks)):
        for kind in BLOCK_LINEARS:
            name, layer = block_layer_name(i, kind), recipe.layer(i, kind)
            module = var.get_submodule(name)
            weight, activation = (None, None) if layer is None else (layer.weight, layer.input)
            if isinstance(module, QuantizedLinear):
                assert (module.weight_quant, module.input_quant) == (weight, activation), name
            else:
                assert type(module) is nn.Linear and layer is None, f"{name} is not quantized"
            if kind in ROTATED_KINDS and recipe.rotation is not None:
                order = var.config.C if recipe.rotation == "full" else recipe.rotation_group
                assert module.transform.rotation.order == order, name
    factory = var.blocks[0].attn.kv_cache_factory
    if recipe.kv_cache is None:
        assert factory is KVCache
    else:
        assert factory.func is QuantizedKVCache and factory.args == (recipe.kv_cache,)


def _bits(name: str) -> int:
    return int(name.removeprefix("int").removeprefix("fp")[0])


# Relative change of the teacher-forced logits ||q - ref|| / ||ref|| that quantization may cause on tiny_pair(384),
# by bit width: measured 0.0008 (8-bit), 0.0025-0.0046 (6-bit), 0.0100-0.0128 (4-bit), seed 0. The bounds leave
# 3-5x either way: a recipe that quantizes nothing (0) or whose quantizer loses the scale (~1) fails.
RELATIVE_CHANGE = {8: (2e-4, 4e-3), 6: (1e-3, 2e-2), 4: (3e-3, 5e-2)}


def _relative_change(vae, var, reference):
    return ((_teacher_logits(vae, var) - reference).norm() / reference.norm()).item()


@pytest.mark.parametrize("name", [n for n in RECIPES if n not in D30_RECIPES])
def test_every_named_recipe_quantizes_its_layers_and_changes_outputs_by_its_bit_width(name):
    vae, var = tiny_pair(width=384)
    reference = _teacher_logits(vae, var)
    recipe = get_recipe(name)
    lambdas = _random_lambdas(var) if recipe.galt else None
    quantize_model(var, recipe, lambdas=lambdas)
    _assert_wired_as_the_recipe_says(var, recipe)
    change = _relative_change(vae, var, reference)
    if name == "fp16":
        assert change == 0
    else:
        low, high = RELATIVE_CHANGE[_bits(name)]
        assert low < change < high, f"{name}: relative change {change:.2e} outside ({low}, {high})"
    images = var.generate(vae, 2, labels=3, seed=0)
    assert images.shape == (2, 3, 8, 8) and 0 <= images.min() and images.max() <= 1
    assert Recipe.from_dict(json.loads(recipe.to_json())) == recipe


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipes_apply_to_a_d30_shaped_model_on_the_meta_device(name):
    with torch.device("meta"):
        var = VAR(released_var_config("d30"))
    recipe = get_recipe(name)
    C = var.config.C
    lambdas = {name: torch.ones(C, device="meta") for name in rotated_layer_names(30)}
    quantize_model(var, recipe, lambdas=lambdas if recipe.galt else None)
    quantized = [n for n, m in var.named_modules() if isinstance(m, QuantizedLinear)]
    transforms = [m.transform for m in var.modules() if isinstance(m, QuantizedLinear) and m.transform is not None]
    assert all(t.rotation is None or t.rotation.matrix.device.type == "meta" for t in transforms)  # built on the model's device
    assert len(quantized) == 30 * len(recipe.layers)
    if recipe.kv_cache is not None:
        assert var.blocks[29].attn.kv_cache_factory.func is QuantizedKVCache


def test_released_mixed_format_lists_for_d30():
    with torch.device("meta"):
        var = VAR(released_var_config("d30"))
    quantize_model(var, get_recipe("fp4_mixedformat_d30"))
    qkv_e2m1 = [i for i in range(30) if var.blocks[i].attn.mat_qkv.input_quant.fmt == "fp4_e2m1"]
    fc1_e2m1 = [i for i in range(30) if var.blocks[i].ffn.fc1.input_quant.fmt == "fp4_e2m1"]
    assert qkv_e2m1 == [0, 24, 25] and fc1_e2m1 == list(range(6, 21))
    assert {var.blocks[i].attn.mat_qkv.input_quant.fmt for i in range(30)} - {"fp4_e2m1"} == {"fp4_e3m0"}
    assert all(var.blocks[i].ada_lin[1].weight_quant.fmt == "fp4_e2m1" for i in range(30))  # released MixedFormat quantizes ada_lin

    with torch.device("meta"):
        var = VAR(released_var_config("d30"))
    quantize_model(var, get_recipe("fp6_mixedformat_d30"))
    assert [i for i in range(30) if var.blocks[i].ffn.fc2.input_quant.fmt == "fp6_e2m3"] == [0, 23]
    assert [i for i in range(30) if var.blocks[i].attn.proj.input_quant.fmt == "fp6_e3m2"] == [0, 1]
    assert {var.blocks[i].ffn.fc1.input_quant.fmt for i in range(30)} == {"fp6_e3m2"}
    assert {var.blocks[i].ada_lin[1].input_quant.fmt for i in range(30)} == {"fp6_e2m3"}


@pytest.mark.parametrize("name", D30_RECIPES)
def test_d30_recipes_run_on_a_narrow_30_block_model_and_refuse_a_shallower_one(name):
    vae, shallow = tiny_pair(width=128)
    with pytest.raises(ValueError, match=f"recipe {name} overrides .* beyond this VAR's 2 blocks"):
        quantize_model(shallow, get_recipe(name))
    torch.manual_seed(0)
    var = VAR(dataclasses.replace(shallow.config, depth=30)).eval()
    reference = _teacher_logits(vae, var)
    quantize_model(var, get_recipe(name))
    _assert_wired_as_the_recipe_says(var, get_recipe(name))
    # 30 blocks of width 128, default initialisation: measured 0.087 (FP4) and 0.024 (FP6); bounds 3-4x either way
    low, high = {"fp4_mixedformat_d30": (0.025, 0.3), "fp6_mixedformat_d30": (0.006, 0.08)}[name]
    assert low < _relative_change(vae, var, reference) < high


def test_galt_needs_lambdas_and_cannot_fold_into_a_shared_adaln():
    _, var = tiny_pair(width=384)
    with pytest.raises(ValueError, match="uses GALT: pass lambdas"):
        quantize_model(var, get_recipe("fp4_fpqvar"))
    _, shared = tiny_pair(width=384, shared_aln=True)
    with pytest.raises(ValueError, match="shared AdaLN"):
        quantize_model(shared, get_recipe("fp4_fpqvar"), lambdas=_random_lambdas(shared))
    lambdas = _random_lambdas(shared)
    ada_gss = [block.ada_gss.detach().clone() for block in shared.blocks]
    quantize_model(shared, get_recipe("fp4_fpqvar").replace(galt_fold=False), lambdas=lambdas)
    for name in rotated_layer_names(len(shared.blocks)):  # lambda multiplied online, the shared AdaLN untouched
        transform = shared.get_submodule(name).transform
        assert transform.scale_online and torch.equal(transform.scale, lambdas[name])
    assert all(torch.equal(block.ada_gss, before) for block, before in zip(shared.blocks, ada_gss, strict=True))


def test_kv_cache_quantization_modes():
    quant = OperandQuant("fp6_e2m3", PerToken())
    k1, v1, k2, v2 = (torch.randn(2, 3, n, 64) for n in (4, 4, 9, 9))
    paper = QuantizedKVCache(quant)
    keys, _ = paper.update(k1, v1)
    assert torch.equal(keys, quant(k1, "even"))
    released = QuantizedKVCache(quant, past_only=True)
    keys, _ = released.update(k1, v1)
    assert torch.equal(keys, k1)  # the current step attends to itself in full precision
    keys, values = released.update(k2, v2)
    assert torch.equal(keys, torch.cat((quant(k1, "even"), k2), 2))
    assert torch.equal(values, torch.cat((quant(v1, "even"), v2), 2))


def test_double_quantization_and_bad_recipe_fields_are_refused():
    _, var = tiny_pair(width=384)
    quantize_model(var, get_recipe("fp4_dfq_ght"))
    with pytest.raises(ValueError, match="already quantized"):
        quantize_model(var, get_recipe("fp4_dfq_ght"))
    with pytest.raises(ValueError, match="rotation must be"):
        Recipe("bad", rotation="ght")
    with pytest.raises(ValueError, match="tie must be"):
        Recipe("bad", tie="nearest")
    with pytest.raises(ValueError, match="blocks.<i>.<kind>"):
        Recipe("bad", block_overrides={"block.0.ffn.fc2": None})
    _, fresh = tiny_pair(width=384)
    with pytest.raises(ValueError, match="lambdas lack"):
        quantize_model(fresh, get_recipe("fp4_fpqvar"), lambdas={"blocks.0.attn.mat_qkv": torch.ones(384)})


def test_unknown_recipe_and_kind_are_named():
    with pytest.raises(ValueError, match="unknown recipe 'fp3'.*fp4_fpqvar"):
        get_recipe("fp3")
    with pytest.raises(ValueError, match="unknown layer kind 'mlp'"):
        Recipe("bad", layers={"mlp": None})


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    from fpqvar.cli import main

    assert main(["quantize", "--var", str(tmp_path / "absent.pth"), "--recipe", "fp3", "--out", str(tmp_path / "q.safetensors")]) == 2
    assert capsys.readouterr().err.strip().startswith("fpqvar quantize: --recipe: unknown recipe 'fp3'")
    assert main(["quantize", "--var", str(tmp_path / "absent.pth"), "--recipe", "fp4_dfq", "--out", str(tmp_path / "q.safetensors")]) == 2
    assert "supply the file" in capsys.readouterr().err


def test_quantize_command_end_to_end_then_sample(tmp_path):
    from fpqvar.checkpoints import save_safetensors
    from fpqvar.cli import main
    from fpqvar.loading import load_var

    vae, var = tiny_pair(width=384)
    save_safetensors(var, tmp_path / "var.safetensors")
    save_safetensors(vae, tmp_path / "vae.safetensors")
    assert main(["quantize", "--var", str(tmp_path / "var.safetensors"), "--recipe", "fp6_fpqvar_kv6", "--tie", "up",
                 "--out", str(tmp_path / "q.safetensors")]) == 0
    reloaded = load_var(tmp_path / "q.safetensors")
    assert reloaded.recipe.tie == "up" and reloaded.recipe.name == "fp6_fpqvar_kv6"
    direct = quantize_model(tiny_pair(width=384)[1], get_recipe("fp6_fpqvar_kv6").replace(tie="up"))
    a = direct.generate(vae, 2, labels=1, seed=0)
    b = reloaded.generate(vae, 2, labels=1, seed=0)
    assert torch.equal(a, b)
    assert main(["sample", "--var", str(tmp_path / "q.safetensors"), "--vae", str(tmp_path / "vae.safetensors"),
                 "--out", str(tmp_path / "samples"), "--classes", "0-1", "--per-class", "2", "--batch-size", "2",
                 "--dtype", "fp32", "--device", "cpu", "--quiet"]) == 0
    assert (tmp_path / "samples.npz").exists()
