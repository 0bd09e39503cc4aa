"""Apply a recipe to a VAR in place (quantized linears, rotation and lambda wired in, KV-cache store swapped);
save and load quantized VARs."""

from __future__ import annotations

import functools
import json
import pathlib

import torch

from ..checkpoints import (
    RECIPE_METADATA_KEY,
    CheckpointMismatchError,
    as_float32,
    check_state_dict,
    config_from_metadata,
    load_state_dict,
    read_metadata,
    save_safetensors,
)
from ..model.config import VARConfig
from ..model.hooks import BLOCK_LINEARS, block_layer_name, parse_block_layer_name, replace_module
from ..model.loading import infer_var_config
from ..model.var import VAR
from ..rotation import Rotation
from .galt import Lambdas, fold_lambda_into_ada_lin
from .kv_cache import QuantizedKVCache
from .layers import InputTransform, QuantizedLinear
from .recipe import ROTATED_KINDS, Recipe, recipe_rotation, rotated_layer_names


def quantize_model(var: VAR, recipe: Recipe, lambdas: Lambdas | None = None) -> VAR:
    """Rewire ``var`` (in place) as ``recipe`` says and return it. ``lambdas`` are GALT's learned factors."""
    if var.is_quantized or any(isinstance(m, QuantizedLinear) for m in var.modules()):
        raise ValueError("this VAR is already quantized; apply a recipe to the full-precision checkpoint instead")
    if recipe.galt and lambdas is None:
        raise ValueError(
            f"recipe {recipe.name} uses GALT: pass lambdas={{'blocks.<i>.attn.mat_qkv': tensor(C), "
            "'blocks.<i>.ffn.fc1': tensor(C), ...}} (learned by GALT, paper Alg. 3)"
        )
    if recipe.galt:
        missing = sorted(set(rotated_layer_names(len(var.blocks))) - set(lambdas))
        if missing:
            raise ValueError(f"lambdas lack {len(missing)} layers (e.g. {missing[:3]}); expected keys blocks.<i>.attn.mat_qkv "
                             f"and blocks.<i>.ffn.fc1 for {len(var.blocks)} blocks, found {sorted(lambdas)[:3]}...")
    beyond = sorted(name for name in recipe.block_overrides if parse_block_layer_name(name)[0] >= len(var.blocks))
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
        for kind in BLOCK_LINEARS:
            name = block_layer_name(i, kind)
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
                recipe.numerics,
            )
            replace_module(var, name, quantized)

    if recipe.kv_cache is not None:
        factory = functools.partial(QuantizedKVCache, recipe.kv_cache, past_only=recipe.kv_past_only,
                                    tie=recipe.numerics, round_to_fp16=recipe.kv_fp16)
        for block in var.blocks:
            block.attn.kv_cache_factory = factory
    var.recipe = recipe
    return var


def save_quantized(var: VAR, path) -> None:
    """Write a quantized VAR (fake-quantized weights, folded transforms) with its config and recipe as metadata."""
    if not var.is_quantized:
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
            lambdas = {name: torch.ones(config.C) for name in rotated_layer_names(config.depth)}
        quantize_model(var, recipe, lambdas)
    check_state_dict(var, state, source)
    var.load_state_dict(state, strict=True, assign=True)
    rotation = model_rotation(var)
    if rotation is not None:
        rotation.matrix = recipe_rotation(recipe, config.C, var.pos_1LC.device).float()
    return var.eval()


def load_quantized_var(path: str | pathlib.Path, *, device: str | torch.device = "cpu") -> VAR:
    """A quantized VAR written by `save_quantized`, rebuilt from the recipe in its metadata, in float32."""
    path = pathlib.Path(path)
    recipe = read_metadata(path).get(RECIPE_METADATA_KEY)
    if recipe is None:
        raise CheckpointMismatchError(
            f"{path} holds no quantization recipe: it is a full-precision checkpoint (load it with fpqvar.loading.load_var)"
        )
    state = as_float32(load_state_dict(path, device))
    config = config_from_metadata(path, VARConfig) or infer_var_config(state)
    return quantized_var_from_state_dict(state, config, json.loads(recipe), source=str(path))
