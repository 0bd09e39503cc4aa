"""Quantization recipes as data: which layers, which formats and granularities, rotation, GALT, KV cache.

Every row of the paper's Tables II, III, IV and VII is a named recipe (`RECIPES`). Defaults follow the
paper; options give the released code's behaviour where the two differ (docs: `methods/README.md`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Literal

import torch

from ..formats import get_format
from ..quant import PerChannel, PerGroup, PerTensor, PerToken, Tie
from ..rotation import orthogonal_hadamard
from .layers import OperandQuant

LAYER_KINDS = ("attn.mat_qkv", "attn.proj", "ffn.fc1", "ffn.fc2", "ada_lin.1")
ROTATED_KINDS = ("attn.mat_qkv", "ffn.fc1")  # inputs right after the AdaLN modulation (paper Eq. 4)


@dataclass(frozen=True)
class LayerRecipe:
    weight: OperandQuant | None = None
    input: OperandQuant | None = None


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str = ""
    layers: dict[str, LayerRecipe] = field(default_factory=dict)  # by kind; absent kinds stay high precision
    block_overrides: dict[str, LayerRecipe] = field(default_factory=dict)  # "blocks.{i}.{kind}" (MixedFormat)
    rotation: Literal["full", "group"] | None = None  # HT or GHT on mat_qkv and fc1 inputs
    rotation_group: int = 128
    rotation_seed: int | None = None  # random sign flips of the Hadamard matrix
    galt: bool = False  # learned per-channel lambda on mat_qkv and fc1 inputs (needs lambdas)
    galt_fold: bool = True  # paper Eq. 6: lambda folded into ada_lin; False: multiplied online (released code)
    kv_cache: OperandQuant | None = None
    kv_past_only: bool = False  # released code: a step's own K/V stay high precision
    tie: Tie = "even"  # "up": the released CUDA kernel's ties toward +inf

    def __post_init__(self) -> None:
        if self.rotation not in (None, "full", "group"):
            raise ValueError(f"rotation must be None, 'full' (HT) or 'group' (GHT), got {self.rotation!r}")
        if self.tie not in ("even", "up", "down"):
            raise ValueError(f"tie must be 'even', 'up' or 'down', got {self.tie!r}")
        for name in self.block_overrides:
            parts = name.split(".", 2)
            if len(parts) != 3 or parts[0] != "blocks" or not parts[1].isdigit() or parts[2] not in LAYER_KINDS:
                raise ValueError(f"block override {name!r} is not of the form blocks.<i>.<kind> with kind in {LAYER_KINDS}")
        for kind in self.layers:
            if kind not in LAYER_KINDS:
                raise ValueError(f"unknown layer kind {kind!r} in recipe {self.name}; kinds are {LAYER_KINDS}")
        for lr in [*self.layers.values(), *self.block_overrides.values(), LayerRecipe(self.kv_cache)]:
            for q in (lr.weight, lr.input):
                if q is not None:
                    get_format(q.fmt)

    def layer(self, block: int, kind: str) -> LayerRecipe | None:
        return self.block_overrides.get(f"blocks.{block}.{kind}", self.layers.get(kind))

    def replace(self, **changes) -> Recipe:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        def operand(q):
            return None if q is None else {"fmt": q.fmt, "granularity": granularity_name(q.granularity)}

        def layer(lr):
            return {"weight": operand(lr.weight), "input": operand(lr.input)}

        raw = dataclasses.asdict(self)
        raw["layers"] = {k: layer(v) for k, v in self.layers.items()}
        raw["block_overrides"] = {k: layer(v) for k, v in self.block_overrides.items()}
        raw["kv_cache"] = operand(self.kv_cache)
        return raw

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, raw: dict) -> Recipe:
        def operand(d):
            return None if d is None else OperandQuant(d["fmt"], parse_granularity(d["granularity"]))

        def layer(d):
            return LayerRecipe(operand(d["weight"]), operand(d["input"]))

        raw = dict(raw)
        raw["layers"] = {k: layer(v) for k, v in raw.get("layers", {}).items()}
        raw["block_overrides"] = {k: layer(v) for k, v in raw.get("block_overrides", {}).items()}
        raw["kv_cache"] = operand(raw.get("kv_cache"))
        return cls(**raw)


def recipe_rotation(recipe: Recipe, width: int, device: torch.device) -> torch.Tensor | None:
    """The orthogonal Hadamard matrix a recipe applies online: C x C (HT), one G x G block (GHT), or None.

    Deterministic (sign flips from ``recipe.rotation_seed``): quantized checkpoints do not store it.
    """
    if recipe.rotation == "full":
        return orthogonal_hadamard(width, recipe.rotation_seed).to(device)
    if recipe.rotation == "group":
        if width % recipe.rotation_group:
            raise ValueError(f"width {width} is not divisible by the GHT group size {recipe.rotation_group}")
        return orthogonal_hadamard(recipe.rotation_group, recipe.rotation_seed).to(device)
    return None


def granularity_name(g) -> str:
    if isinstance(g, PerGroup):
        return f"per_group:{g.group_size}"
    return {PerTensor: "per_tensor", PerChannel: "per_channel", PerToken: "per_token"}[type(g)]


def parse_granularity(text: str):
    kind, _, size = text.partition(":")
    table = {"per_tensor": PerTensor(), "per_channel": PerChannel(), "per_token": PerToken()}
    if kind == "per_group":
        return PerGroup(int(size or 128))
    if kind not in table:
        raise ValueError(f"unknown granularity {text!r}; use per_tensor, per_channel, per_token or per_group:N")
    return table[kind]


def _uniform(name, description, weight, activation, kinds=("attn.mat_qkv", "attn.proj", "ffn.fc1", "ffn.fc2"), fc2_input=None, **options):
    layers = {k: LayerRecipe(weight, activation) for k in kinds}
    if fc2_input is not None and "ffn.fc2" in layers:
        layers["ffn.fc2"] = LayerRecipe(weight, fc2_input)
    return Recipe(name, description, layers, **options)


def _int(bits, group):
    """RTN INT: W8A8/W6A6 per channel / per token, W4A4 per group of 128; FC2 input asymmetric (released INT path)."""
    if group:
        w = OperandQuant(f"int{bits}", PerGroup(128))
        return w, OperandQuant(f"int{bits}", PerGroup(128)), OperandQuant(f"int{bits}_asym", PerGroup(128))
    return OperandQuant(f"int{bits}", PerChannel()), OperandQuant(f"int{bits}", PerToken()), OperandQuant(f"int{bits}_asym", PerToken())


def _build() -> dict[str, Recipe]:
    recipes = {"fp16": Recipe("fp16", "no quantization (the FP16 rows)")}
    for bits in (8, 6, 4):
        w, a, fc2 = _int(bits, group=bits == 4)
        recipes[f"int{bits}_rtn"] = _uniform(f"int{bits}_rtn", f"RTN INT W{bits}A{bits}, every block linear", w, a, fc2_input=fc2)
        if bits in (6, 4):
            recipes[f"int{bits}_litevar"] = _uniform(
                f"int{bits}_litevar", f"LiteVAR-style INT W{bits}A{bits}: FC2 kept in high precision", w, a,
                kinds=("attn.mat_qkv", "attn.proj", "ffn.fc1"),
            )
    fp6_w, fp6_a = OperandQuant("fp6_e2m3", PerChannel()), OperandQuant("fp6_e3m2", PerToken())
    recipes["fp6_baseline"] = _uniform("fp6_baseline", "FP6 baseline: W-E2M3 per channel / A-E3M2 per token", fp6_w, fp6_a)
    fp4 = OperandQuant("fp4_e2m1", PerGroup(128))
    recipes["fp4_baseline"] = _uniform("fp4_baseline", "FP4 baseline: W-E2M1 / A-E2M1 per group of 128", fp4, fp4)
    dfq4 = OperandQuant("dfq_e1m2neg_e2m1pos", PerGroup(128))
    recipes["fp4_dfq"] = _uniform("fp4_dfq", "FP4 baseline + DFQ on the FC2 input", fp4, fp4, fc2_input=dfq4)
    recipes["fp4_dfq_ht"] = recipes["fp4_dfq"].replace(name="fp4_dfq_ht", description="+ DFQ & full Hadamard (HT)", rotation="full")
    recipes["fp4_dfq_ght"] = recipes["fp4_dfq"].replace(name="fp4_dfq_ght", description="+ DFQ & group-wise Hadamard (GHT)", rotation="group")
    recipes["fp4_fpqvar"] = recipes["fp4_dfq_ght"].replace(
        name="fp4_fpqvar", description="FP4 FPQVAR: DFQ & GHT & GALT", galt=True
    )
    fp6_act = OperandQuant("fp6_e2m3", PerToken())  # E2M3 activations after GHT: the released FP6 FPQVAR runs
    dfq6 = OperandQuant("dfq_int6neg_e2m3pos", PerToken())
    recipes["fp6_fpqvar"] = _uniform(
        "fp6_fpqvar", "FP6 FPQVAR: W-E2M3 per channel, A-E2M3 per token, FC2 INT6-neg/E2M3-pos DFQ, GHT (no GALT)",
        fp6_w, fp6_act, fc2_input=dfq6, rotation="group",
    )
    kv6 = OperandQuant("fp6_e2m3", PerToken())
    for base in ("fp4_fpqvar", "fp6_fpqvar"):
        recipes[f"{base}_kv6"] = recipes[base].replace(name=f"{base}_kv6", description=recipes[base].description + ", FP6-E2M3 KV cache", kv_cache=kv6)
    recipes.update(_released_mixed_formats_d30())
    return recipes


def _released_mixed_formats_d30() -> dict[str, Recipe]:
    """The MixedFormat rows of Table III: the per-block formats hard-coded in the released code for VAR-d30
    (fpqvar-official-behaviour.md section 7.3). Like that code they quantize ada_lin too, per block, with the
    baseline's formats. Where it took a format from the command line we use the baseline's (FP4: E2M1, per group
    of 128; FP6: weights E2M3 per channel, activations per token); for FP4's fc2 input the released run's
    format is not recorded, so it is the baseline's E2M1."""
    def overrides(kind, blocks, layer):
        return {f"blocks.{i}.{kind}": layer for i in blocks}

    def fp4(fmt):
        return OperandQuant(f"fp4_{fmt}", PerGroup(128))

    e2m1 = LayerRecipe(fp4("e2m1"), fp4("e2m1"))
    e2m1_w_e3m0_a = LayerRecipe(fp4("e2m1"), fp4("e3m0"))
    fp4_mixed = Recipe(
        "fp4_mixedformat_d30",
        "FP4 MixedFormat (released d30 lists): E2M1 weights; mat_qkv inputs E2M1 in blocks 0, 24, 25, fc1 inputs "
        "E2M1 in blocks 6-20, E3M0 elsewhere; proj, fc2, ada_lin E2M1",
        layers={"attn.mat_qkv": e2m1_w_e3m0_a, "attn.proj": e2m1, "ffn.fc1": e2m1_w_e3m0_a, "ffn.fc2": e2m1, "ada_lin.1": e2m1},
        block_overrides={**overrides("attn.mat_qkv", (0, 24, 25), e2m1), **overrides("ffn.fc1", range(6, 21), e2m1)},
    )

    w_e2m3 = OperandQuant("fp6_e2m3", PerChannel())
    a_e2m3, a_e3m2 = OperandQuant("fp6_e2m3", PerToken()), OperandQuant("fp6_e3m2", PerToken())
    e2m3, e2m3_w_e3m2_a = LayerRecipe(w_e2m3, a_e2m3), LayerRecipe(w_e2m3, a_e3m2)
    fp6_mixed = Recipe(
        "fp6_mixedformat_d30",
        "FP6 MixedFormat (released d30 lists): E2M3 weights; fc2 inputs E2M3 in blocks 0 and 23, proj inputs E3M2 "
        "in blocks 0-1, otherwise E3M2 (fc2, mat_qkv, fc1) and E2M3 (proj); ada_lin E2M3",
        layers={"attn.mat_qkv": e2m3_w_e3m2_a, "attn.proj": e2m3, "ffn.fc1": e2m3_w_e3m2_a, "ffn.fc2": e2m3_w_e3m2_a, "ada_lin.1": e2m3},
        block_overrides={**overrides("ffn.fc2", (0, 23), e2m3), **overrides("attn.proj", (0, 1), e2m3_w_e3m2_a)},
    )
    return {r.name: r for r in (fp4_mixed, fp6_mixed)}


RECIPES: dict[str, Recipe] = _build()


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; named recipes: {', '.join(RECIPES)}")
    return RECIPES[name]
