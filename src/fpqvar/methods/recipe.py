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

from ..formats import FP4_E1M2, FP4_E1M2_BIAS1, DualFormat, dual_format, get_format
from ..model.hooks import BLOCK_LINEARS, block_layer_name, parse_block_layer_name
from ..quant import RELEASED_NUMERICS, Numerics, PerChannel, PerGroup, PerTensor, PerToken, ScaleDtype, Tie
from ..rotation import group_hadamard
from .layers import OperandQuant

ROTATED_KINDS = ("attn.mat_qkv", "ffn.fc1")  # inputs right after the AdaLN modulation (paper Eq. 4)


def rotated_layer_names(depth: int) -> list[str]:
    """``blocks.{i}.attn.mat_qkv`` and ``blocks.{i}.ffn.fc1`` of every block: the layers whose inputs HT/GHT rotate
    and GALT scales, and the keys of GALT's lambdas."""
    return [block_layer_name(i, kind) for i in range(depth) for kind in ROTATED_KINDS]


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
    kv_fp16: bool = False  # released code: quantized K/V rounded to fp16
    tie: Tie = "even"  # ties of FP and dual formats; "up": the released CUDA kernel's ties toward +inf
    int_tie: Tie | None = None  # ties of INT formats (None: as tie); the released code: "even"
    scale_dtype: ScaleDtype = "float32"  # "input": scale and x / s in the activation's dtype (released code)
    int_absmax_floor: float = 0.0  # symmetric INT absmax floor; the released code: 1e-5

    def __post_init__(self) -> None:
        if self.rotation not in (None, "full", "group"):
            raise ValueError(f"rotation must be None, 'full' (HT) or 'group' (GHT), got {self.rotation!r}")
        Numerics(self.tie, self.int_tie, self.scale_dtype, self.int_absmax_floor)  # raises on a bad value
        for name in self.block_overrides:
            try:
                parse_block_layer_name(name)
            except ValueError as error:
                raise ValueError(f"block override {error}") from None
        for kind in self.layers:
            if kind not in BLOCK_LINEARS:
                raise ValueError(f"unknown layer kind {kind!r} in recipe {self.name}; kinds are {BLOCK_LINEARS}")
        for lr in [*self.layers.values(), *self.block_overrides.values(), LayerRecipe(self.kv_cache)]:
            for q in (lr.weight, lr.input):
                if q is not None:
                    get_format(q.fmt)

    @property
    def numerics(self) -> Numerics:
        """What the quantizers of this recipe take as ``tie``: ties per format family and the arithmetic."""
        return Numerics(self.tie, self.int_tie, self.scale_dtype, self.int_absmax_floor)

    def layer(self, block: int, kind: str) -> LayerRecipe | None:
        return self.block_overrides.get(block_layer_name(block, kind), self.layers.get(kind))

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
    """The orthogonal Hadamard block a recipe applies online (`fpqvar.rotation.group_hadamard`): C x C (HT),
    G x G (GHT), or None. Deterministic (sign flips from ``recipe.rotation_seed``): quantized checkpoints do not
    store it."""
    if recipe.rotation is None:
        return None
    group_size = width if recipe.rotation == "full" else recipe.rotation_group
    return group_hadamard(width, group_size, recipe.rotation_seed).to(device)


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


def _int(bits: int, weight_granularity, activation_granularity):
    """RTN INT operands (weight, activation, FC2 input): the FC2 input asymmetric, as the released INT path."""
    return (OperandQuant(f"int{bits}", weight_granularity), OperandQuant(f"int{bits}", activation_granularity),
            OperandQuant(f"int{bits}_asym", activation_granularity))


# Paper Sec. II-B: W8A8 and W6A6 per channel / per token, W4A4 per group of 128.
INT_GRANULARITIES = {8: (PerChannel(), PerToken()), 6: (PerChannel(), PerToken()), 4: (PerGroup(128), PerGroup(128))}


def _build() -> dict[str, Recipe]:
    recipes = {"fp16": Recipe("fp16", "no quantization (the FP16 rows)")}
    for bits in (8, 6, 4):
        w, a, fc2 = _int(bits, *INT_GRANULARITIES[bits])
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
        return {block_layer_name(i, kind): layer for i in blocks}

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

# The seed whose sign flips are the released code's: random_hadamard_matrix seeds torch with 42 and draws
# randint(0, 2, (n,)); rotation.random_signs(n, 42) draws the same signs (tests pin the 128 of its GHT block).
RELEASED_ROTATION_SEED = 42


def _released_grid(name: str) -> str:
    """The released code's grid for a format: E1M2 (alone or as a dual format's half) halved, others as they are."""
    fmt = get_format(name)
    if fmt == FP4_E1M2:
        return FP4_E1M2_BIAS1.name
    if isinstance(fmt, DualFormat) and FP4_E1M2 in (fmt.negative, fmt.positive):
        def swap(half):
            return FP4_E1M2_BIAS1 if half == FP4_E1M2 else half
        return dual_format(swap(fmt.negative), swap(fmt.positive)).name
    return name


def released_behaviour(recipe: Recipe) -> Recipe:
    """``recipe`` with every option that reproduces the authors' released code (methods/README.md lists them):
    INT ties to even and grid ties up, the scale and x / s in the activation's dtype, the INT absmax floor 1e-5,
    the halved E1M2 grid, lambda multiplied online, only past K/V quantized and rounded to fp16, and the
    released Hadamard sign flips (exact for GHT; a full HT at a width that is not a power of two uses another
    Hadamard matrix than the released tables)."""
    def operand(q):
        return None if q is None else OperandQuant(_released_grid(q.fmt), q.granularity)

    def layer(lr):
        return LayerRecipe(operand(lr.weight), operand(lr.input))

    numerics = RELEASED_NUMERICS
    return recipe.replace(
        name=f"{recipe.name}_released", description=f"{recipe.description} (released code's behaviour)",
        layers={k: layer(v) for k, v in recipe.layers.items()},
        block_overrides={k: layer(v) for k, v in recipe.block_overrides.items()},
        kv_cache=operand(recipe.kv_cache), kv_past_only=True, kv_fp16=True, galt_fold=False,
        rotation_seed=RELEASED_ROTATION_SEED if recipe.rotation else recipe.rotation_seed,
        tie=numerics.tie, int_tie=numerics.int_tie, scale_dtype=numerics.scale_dtype,
        int_absmax_floor=numerics.int_absmax_floor,
    )


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; named recipes: {', '.join(RECIPES)}")
    return RECIPES[name]
