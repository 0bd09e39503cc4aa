"""Packed quantized checkpoints: FP4 weight codes two per byte plus per-group scales, not fake-quantized floats.

A packed `.safetensors` holds, for every quantized linear whose weight format has 4 bits and one scale per
group along the input dimension (the FP4 recipes: E2M1, E1M2, E3M0 and dual FP4 formats):
    <layer>.weight_codes           uint8 (out, in / 2)      two codes per byte (fpqvar.lowbit.packing)
    <layer>.weight_scale           weight dtype (out, in / G)  the scale of each group (the positive half's, for DFQ)
    <layer>.weight_negative_scale  (out, in / G)              dual (DFQ) weight formats only
and every other tensor of the model's state dict unchanged (stored in ``high_precision_dtype``): biases,
embeddings, AdaLN linears, the head, GALT's lambdas, and the weights of layers whose format does not pack.
Metadata: the VAR config and recipe (as for fake-quantized checkpoints) and ``fpqvar_packed``, a JSON record of
the packed layers and the names of the high-precision tensors. Loading dequantizes the codes with the
quantizer's own ``dequantize``, so the model equals, bit for bit, the fake-quantized one the file was written
from (backend "fake"); ``fpqvar.lowbit.to_lowbit`` then swaps in the real low-bit layers.
"""

from __future__ import annotations

import json
import math
import pathlib
from dataclasses import asdict, dataclass

import torch

from ..atomic import atomic_path
from ..checkpoints import (
    CONFIG_METADATA_KEY,
    PACKED_METADATA_KEY,
    RECIPE_METADATA_KEY,
    config_from_metadata,
    read_metadata,
)
from ..formats import DualFormat, FloatFormat, get_format
from ..methods.apply import quantized_var_from_state_dict
from ..methods.layers import QuantizedLinear
from ..model.config import VARConfig
from ..model.var import VAR
from ..quant import PerGroup, QuantizedTensor, as_numerics, dequantize, quantize
from .codes import recover_codes
from .packing import pack_nibbles, unpack_nibbles

PACKED_FORMAT_VERSION = 1


@dataclass(frozen=True)
class PackedLayer:
    """One linear layer whose weight is stored as packed 4-bit codes."""

    fmt: str
    group_size: int
    out_features: int
    in_features: int
    dtype: str  # the weight's (and its scales') dtype, e.g. "float32"
    tie: str


def packable_weight(layer: QuantizedLinear) -> bool:
    """Whether a layer's weight packs: a 4-bit float (or dual float) format with per-group scales along K."""
    q = layer.weight_quant
    if q is None or not isinstance(q.granularity, PerGroup) or layer.in_features % q.granularity.group_size:
        return False
    fmt = get_format(q.fmt)
    parts = (fmt.negative, fmt.positive) if isinstance(fmt, DualFormat) else (fmt,)
    return all(isinstance(p, FloatFormat) and p.bits == 4 for p in parts)


def packed_layers(var: VAR) -> dict[str, PackedLayer]:
    """The layers of a quantized VAR whose weights a packed checkpoint stores as codes, by module name."""
    if not var.is_quantized:
        raise ValueError("this VAR is not quantized; apply a recipe first (fpqvar.methods.quantize_model)")
    layers = {}
    for name, module in var.named_modules():
        if isinstance(module, QuantizedLinear) and packable_weight(module):
            q = module.weight_quant
            layers[name] = PackedLayer(
                get_format(q.fmt).name, q.granularity.group_size, module.out_features, module.in_features,
                str(module.weight.dtype).removeprefix("torch."), as_numerics(module.tie).tie_for(q.fmt),
            )
    return layers


def packed_layout(var: VAR, *, high_precision_dtype: torch.dtype = torch.float32) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Name -> (shape, dtype) of every tensor a packed checkpoint of ``var`` holds. Reads shapes only, so it
    works on a meta-device model (the size of a d30 file without its 2 B parameters in memory)."""
    layers = packed_layers(var)
    layout = {}
    for key, tensor in var.state_dict().items():
        owner, _, leaf = key.rpartition(".")
        if owner in layers and leaf == "weight":
            layer = layers[owner]
            dtype = getattr(torch, layer.dtype)
            groups = (layer.out_features, layer.in_features // layer.group_size)
            layout[f"{owner}.weight_codes"] = ((layer.out_features, layer.in_features // 2), torch.uint8)
            layout[f"{owner}.weight_scale"] = (groups, dtype)
            if isinstance(get_format(layer.fmt), DualFormat):
                layout[f"{owner}.weight_negative_scale"] = (groups, dtype)
        else:
            dtype = high_precision_dtype if tensor.is_floating_point() else tensor.dtype
            layout[key] = (tuple(tensor.shape), dtype)
    return layout


def packed_size_bytes(var: VAR, *, high_precision_dtype: torch.dtype = torch.float32) -> dict[str, int]:
    """Tensor bytes of a packed checkpoint of ``var``: total, the packed weights (codes + scales) and the
    high-precision rest (the file adds a JSON header of some kilobytes)."""
    layout = packed_layout(var, high_precision_dtype=high_precision_dtype)

    def nbytes(shape, dtype):
        return math.prod(shape) * torch.empty((), dtype=dtype).element_size()

    packed_suffixes = (".weight_codes", ".weight_scale", ".weight_negative_scale")
    packed = sum(nbytes(*v) for k, v in layout.items() if k.endswith(packed_suffixes))
    rest = sum(nbytes(*v) for k, v in layout.items() if not k.endswith(packed_suffixes))
    return {"total": packed + rest, "packed_weights": packed, "high_precision": rest}


def quantize_layer_weight(layer: QuantizedLinear) -> QuantizedTensor:
    """The codes and scales of a layer's (already fake-quantized) weight, checked to dequantize to it exactly."""
    q = layer.weight_quant
    weight = layer.weight.detach()
    if isinstance(get_format(q.fmt), FloatFormat):
        packed = recover_codes(weight, q.fmt, q.granularity.group_size, layer.tie)
    else:  # dual weight formats: quantizing again (exact where the scale divisions reproduce, checked below)
        packed = quantize(weight, q.fmt, q.granularity, layer.tie)
    if not torch.equal(dequantize(packed), weight):
        raise ValueError(
            f"re-quantizing a {tuple(weight.shape)} weight in {q.fmt} did not reproduce it exactly; was it "
            "cast to another dtype after quantization? Pack the model as quantize_model returned it"
        )
    return packed


def packed_state_dict(var: VAR, *, high_precision_dtype: torch.dtype = torch.float32) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors of a packed checkpoint and its ``fpqvar_packed`` record."""
    layers = packed_layers(var)
    state = {}
    for key, tensor in var.state_dict().items():
        owner, _, leaf = key.rpartition(".")
        if owner in layers and leaf == "weight":
            q = quantize_layer_weight(var.get_submodule(owner))
            state[f"{owner}.weight_codes"] = pack_nibbles(q.codes)
            state[f"{owner}.weight_scale"] = q.scale
            if q.negative_scale is not None:
                state[f"{owner}.weight_negative_scale"] = q.negative_scale
        else:
            state[key] = tensor.to(high_precision_dtype) if tensor.is_floating_point() else tensor
    layout = packed_layout(var, high_precision_dtype=high_precision_dtype)
    assert {k: (tuple(v.shape), v.dtype) for k, v in state.items()} == layout, "packed_layout disagrees with the writer"
    record = {
        "version": PACKED_FORMAT_VERSION,
        "layers": {name: asdict(layer) for name, layer in layers.items()},
        "high_precision": sorted(k for k in state if not k.endswith((".weight_codes", ".weight_scale", ".weight_negative_scale"))),
        "high_precision_dtype": str(high_precision_dtype).removeprefix("torch."),
    }
    return {k: v.contiguous() for k, v in state.items()}, record


def save_packed(var: VAR, path, *, high_precision_dtype: torch.dtype = torch.float32) -> dict:
    """Write a quantized VAR as a packed checkpoint (atomically); returns the ``fpqvar_packed`` record."""
    from safetensors.torch import save_file

    state, record = packed_state_dict(var, high_precision_dtype=high_precision_dtype)
    metadata = {
        CONFIG_METADATA_KEY: json.dumps(var.config.to_dict()),
        RECIPE_METADATA_KEY: var.recipe.to_json(),
        PACKED_METADATA_KEY: json.dumps(record),
    }
    with atomic_path(path) as tmp:
        save_file({k: v.cpu() for k, v in state.items()}, str(tmp), metadata=metadata)
    return record


def unpacked_state_dict(state: dict[str, torch.Tensor], record: dict) -> dict[str, torch.Tensor]:
    """A packed checkpoint's tensors with every packed weight dequantized (exactly as the fake quantizer made it)."""
    if record.get("version") != PACKED_FORMAT_VERSION:
        raise ValueError(f"packed checkpoint version {record.get('version')} is not {PACKED_FORMAT_VERSION}; "
                         "re-create it with this fpqvar (fpqvar quantize --packed)")
    state = dict(state)
    for name, raw in record["layers"].items():
        layer = PackedLayer(**raw)
        codes = unpack_nibbles(state.pop(f"{name}.weight_codes"))
        negative = state.pop(f"{name}.weight_negative_scale", None)
        q = QuantizedTensor(codes, state.pop(f"{name}.weight_scale"), get_format(layer.fmt), PerGroup(layer.group_size),
                            getattr(torch, layer.dtype), negative_scale=negative)
        state[f"{name}.weight"] = dequantize(q)
    return state


def load_packed_var(path, *, device: str | torch.device = "cpu") -> VAR:
    """A quantized VAR from a packed checkpoint, fake-quantized (backend "fake"): the model it was written from."""
    path = pathlib.Path(path)
    metadata = read_metadata(path)
    if PACKED_METADATA_KEY not in metadata or RECIPE_METADATA_KEY not in metadata:
        raise ValueError(f"{path} is not a packed quantized checkpoint (no {PACKED_METADATA_KEY} metadata); "
                         "load it with fpqvar.loading.load_var")
    from safetensors.torch import load_file

    # unpacked on the CPU (the quantizer's code tables live there), then moved
    state = unpacked_state_dict(load_file(str(path), device="cpu"), json.loads(metadata[PACKED_METADATA_KEY]))
    # high-precision tensors stored in half precision load widened to float32, as every checkpoint does
    state = {k: (v.float() if v.dtype in (torch.float16, torch.bfloat16) else v).to(device) for k, v in state.items()}
    config = config_from_metadata(path, VARConfig)
    return quantized_var_from_state_dict(state, config, json.loads(metadata[RECIPE_METADATA_KEY]), source=str(path))
