"""Format searches: DFQ's negative/positive grids (paper Alg. 2) and MixedFormat's per-layer formats."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from ..formats import DualFormat, dual_format, get_format
from ..quant import Granularity, PerGroup, Tie, fake_quantize
from .calibration import ActivationStore
from .layers import OperandQuant
from .recipe import LayerRecipe, Recipe

FP4_FORMATS = ("fp4_e1m2", "fp4_e2m1", "fp4_e3m0")
FP6_FORMATS = ("fp6_e2m3", "fp6_e3m2")


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).pow(2).mean())


@torch.no_grad()
def search_dual_format(
    tensors: list[torch.Tensor],
    formats: tuple[str, ...] = FP4_FORMATS,
    granularity: Granularity = PerGroup(128),
    tie: Tie = "even",
) -> tuple[DualFormat, dict[tuple[str, str], float]]:
    """Alg. 2: the (negative grid, positive grid) pair with the least mean quantization MSE over ``tensors``."""
    errors = {}
    for negative, positive in itertools.product(formats, formats):
        fmt = dual_format(get_format(negative), get_format(positive))
        errors[(negative, positive)] = sum(_mse(fake_quantize(x, fmt, granularity, tie), x) for x in tensors) / len(tensors)
    negative, positive = min(errors, key=errors.get)
    return dual_format(get_format(negative), get_format(positive)), errors


@torch.no_grad()
def layer_output_mse(
    inputs: list[torch.Tensor], weight: torch.Tensor, weight_quant: OperandQuant, input_quant: OperandQuant, tie: Tie = "even"
) -> float:
    """Mean over the calibration tensors of mean((x W^T - Q(x) Q(W)^T)^2): MixedFormat's criterion."""
    qw = weight_quant(weight.float(), tie)
    total = 0.0
    for x in inputs:
        x = x.to(weight.device)
        total += _mse(F.linear(input_quant(x, tie), qw), F.linear(x, weight.float()))
    return total / len(inputs)


def search_mixed_formats(
    base: Recipe,
    store: ActivationStore,
    weights: dict[str, torch.Tensor],
    formats: tuple[str, ...] = FP4_FORMATS,
    name: str | None = None,
) -> tuple[Recipe, dict[str, dict[tuple[str, str], float]]]:
    """Per layer (``weights``: layer name -> weight), every (weight format, input format) pair on the base
    recipe's granularities; the pair with the least output MSE becomes a block override of the returned recipe."""
    overrides, errors = {}, {}
    for layer_name, weight in weights.items():
        kind = layer_name.split(".", 2)[2]
        template = base.layers.get(kind)
        if template is None or template.weight is None or template.input is None:
            continue
        inputs = store.per_step(layer_name)
        table = {}
        for wf, af in itertools.product(formats, formats):
            table[(wf, af)] = layer_output_mse(
                inputs, weight, OperandQuant(wf, template.weight.granularity), OperandQuant(af, template.input.granularity), base.numerics
            )
        wf, af = min(table, key=table.get)
        overrides[layer_name] = LayerRecipe(OperandQuant(wf, template.weight.granularity), OperandQuant(af, template.input.granularity))
        errors[layer_name] = table
    recipe = base.replace(name=name or f"{base.name}_mixedformat", block_overrides=overrides,
                          description=f"{base.description}; per-layer formats searched on calibration data (MixedFormat)")
    return recipe, errors


@torch.no_grad()
def search_uniform_formats(
    base: Recipe,
    store: ActivationStore,
    weights: dict[str, torch.Tensor],
    formats: tuple[str, ...] = FP4_FORMATS,
) -> tuple[tuple[str, str], dict[tuple[str, str], float]]:
    """Sec. III's baseline choice: one (weight format, input format) pair for every layer (one kind of MAC unit),
    the pair with the least output MSE summed over layers, relative to each layer's output power."""
    layers = []  # (template, weight, inputs, output power), loaded and computed once per layer
    for layer_name, weight in weights.items():
        template = base.layers.get(layer_name.split(".", 2)[2])
        if template is None or template.weight is None or template.input is None:
            continue
        inputs = store.per_step(layer_name)
        power = sum(float(F.linear(x.to(weight.device), weight.float()).double().pow(2).mean()) for x in inputs) / len(inputs)
        layers.append((template, weight, inputs, power))
    totals = {}
    for wf, af in itertools.product(formats, formats):
        totals[(wf, af)] = sum(
            layer_output_mse(
                inputs, weight, OperandQuant(wf, template.weight.granularity), OperandQuant(af, template.input.granularity), base.numerics
            ) / power
            for template, weight, inputs, power in layers
        )
    return min(totals, key=totals.get), totals
