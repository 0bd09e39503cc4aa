"""Apply a recipe to a VAR in place: quantized linears, rotation and lambda wired in, KV-cache store swapped."""

from __future__ import annotations

import functools

import torch

from ..model.config import VARConfig
from ..model.hooks import replace_module
from ..model.loading import RECIPE_METADATA_KEY, CheckpointMismatchError, check_state_dict, save_safetensors
from ..model.var import VAR
from .galt import Lambdas, fold_lambda_into_ada_lin
from .kv_cache import QuantizedKVCache
from .layers import InputTransform, QuantizedLinear, Rotation
from .recipe import LAYER_KINDS, ROTATED_KINDS, Recipe, recipe_rotation


def quantize_model(var: VAR, recipe: Recipe, lambdas: Lambdas | None = None) -> VAR:
    """Rewire ``var`` (in place) as ``recipe`` says and return it. ``lambdas`` are GALT's learned factors."""
    if hasattr(var, "recipe") or any(isinstance(m, QuantizedLinear) for m in var.modules()):
        raise ValueError("this VAR is already quantized; apply a recipe to the full-precision checkpoint instead")
    if recipe.galt and lambdas is None:
        raise ValueError(
            f"recipe {recipe.name} uses GALT: pass lambdas={{'blocks.<i>.attn.mat_qkv': tensor(C), "
            "'blocks.<i>.ffn.fc1': tensor(C), ...}} (learned by GALT, paper Alg. 3)"
        )
    if recipe.galt:
        expected = {f"blocks.{i}.{k}" for i in range(len(var.blocks)) for k in ROTATED_KINDS}
        missing = sorted(expected - set(lambdas))
        if missing:
            raise ValueError(f"lambdas lack {len(missing)} layers (e.g. {missing[:3]}); expected keys blocks.<i>.attn.mat_qkv "
                             f"and blocks.<i>.ffn.fc1 for {len(var.blocks)} blocks, found {sorted(lambdas)[:3]}...")
    beyond = sorted(name for name in recipe.block_overrides if int(name.split(".")[1]) >= len(var.blocks))
    if beyond:
        raise ValueError(f"recipe {recipe.name} overrides {len(beyond)} layers beyond this VAR's {len(var.blocks)} blocks "
                         f"(e.g. {beyond[0]}): it was made for a deeper model")
    C, device = var.config.C, var.pos_1LC.device
    matrix = recipe_rotation(recipe, C, device)
    rotation = None if matrix is None else Rotation(matrix)  # one module shared by every transformed layer
    fold = recipe.galt and recipe.galt_fold
    if fold:
        fold_lambda_into_ada_lin(var, lambdas)

    for i in range(len(var.blocks)):
        for kind in LAYER_KINDS:
            name = f"blocks.{i}.{kind}"
            try:
                linear = var.get_submodule(name)
            except AttributeError:
                continue  # shared-AdaLN blocks have no ada_lin
            layer = recipe.layer(i, kind)
            transform = None
            if kind in ROTATED_KINDS and (rotation is not None or recipe.galt):
                scale = lambdas[name].to(device) if recipe.galt else None
                transform = InputTransform(C, rotation, scale, scale_online=not fold)
            if layer is None and transform is None:
                continue
            quantized = QuantizedLinear(
                linear,
                None if layer is None else layer.weight,
                None if layer is None else layer.input,
                transform,
                recipe.tie,
            )
            replace_module(var, name, quantized)

    if recipe.kv_cache is not None:
        factory = functools.partial(QuantizedKVCache, recipe.kv_cache, recipe.kv_past_only, recipe.tie)
        for block in var.blocks:
            block.attn.kv_cache_factory = factory
    var.recipe = recipe
    return var


def save_quantized(var: VAR, path) -> None:
    """Write a quantized VAR (fake-quantized weights, folded transforms) with its config and recipe as metadata."""
    if not hasattr(var, "recipe"):
        raise ValueError("this VAR has no recipe applied; call quantize_model first")
    save_safetensors(var, path, metadata={RECIPE_METADATA_KEY: var.recipe.to_json()})


def model_rotation(var: VAR) -> Rotation | None:
    """The Rotation module that a quantized VAR's transformed layers share, or None."""
    rotations = [m for m in var.modules() if isinstance(m, Rotation)]  # modules() lists a shared module once
    if len(rotations) > 1:
        raise ValueError(f"this VAR holds {len(rotations)} separate Rotation modules; quantize_model shares one")
    return rotations[0] if rotations else None


def quantized_var_from_state_dict(state: dict, config: VARConfig, recipe: dict, source: str = "state dict") -> VAR:
    """Rebuild a saved quantized VAR: the recipe's structure on the meta device, the saved tensors, then the
    rotation, which is not saved, rebuilt from the recipe on the tensors' device."""
    recipe = Recipe.from_dict(recipe)
    stored = [k for k in state if k.endswith(".transform.rotation")]
    if stored:
        raise CheckpointMismatchError(
            f"{source} stores {len(stored)} per-layer rotation matrices (e.g. {stored[0]}): it was written before "
            "rotations were rebuilt from the recipe. Quantize the full-precision checkpoint again (fpqvar quantize)"
        )
    with torch.device("meta"):
        var = VAR(config)
        lambdas = None
        if recipe.galt:
            lambdas = {f"blocks.{i}.{k}": torch.ones(config.C) for i in range(config.depth) for k in ROTATED_KINDS}
        quantize_model(var, recipe, lambdas)
    check_state_dict(var, state, source)
    var.load_state_dict(state, strict=True, assign=True)
    rotation = model_rotation(var)
    if rotation is not None:
        rotation.matrix = recipe_rotation(recipe, config.C, var.pos_1LC.device).float()
    return var.eval()
