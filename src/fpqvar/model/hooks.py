"""Reach into a VAR without editing it: its linear layers by name, their inputs per generation step, replacement.

Names are module paths, as in the checkpoint: ``blocks.{i}.attn.mat_qkv``, ``blocks.{i}.attn.proj``,
``blocks.{i}.ffn.fc1``, ``blocks.{i}.ffn.fc2``, ``blocks.{i}.ada_lin.1``, plus ``head_nm.ada_lin.1``, ``head``.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator

import torch
from torch import nn

from .var import VAR

BLOCK_LINEARS = ("attn.mat_qkv", "attn.proj", "ffn.fc1", "ffn.fc2", "ada_lin.1")  # the kinds a recipe quantizes


def block_layer_name(block: int, kind: str) -> str:
    """``blocks.{block}.{kind}``: a block layer's module path, also the key of its recipe override and GALT lambda."""
    return f"blocks.{block}.{kind}"


def parse_block_layer_name(name: str) -> tuple[int, str]:
    """(block, kind) of a ``blocks.{block}.{kind}`` name whose kind is one of BLOCK_LINEARS."""
    parts = name.split(".", 2)
    if len(parts) != 3 or parts[0] != "blocks" or not parts[1].isdigit() or parts[2] not in BLOCK_LINEARS:
        raise ValueError(f"{name!r} is not of the form blocks.<i>.<kind> with kind in {BLOCK_LINEARS}")
    return int(parts[1]), parts[2]


def block_linear_names(var: VAR, kinds: tuple[str, ...] = BLOCK_LINEARS) -> list[str]:
    """``blocks.{i}.{kind}`` for every block and kind the model has (shared-AdaLN blocks have no ada_lin)."""
    names = []
    for i, block in enumerate(var.blocks):
        for kind in kinds:
            with contextlib.suppress(AttributeError):
                block.get_submodule(kind)
                names.append(block_layer_name(i, kind))
    return names


def replace_module(var: VAR, name: str, module: nn.Module) -> nn.Module:
    """Put ``module`` at ``name``; returns the module it replaced."""
    parent_name, _, child = name.rpartition(".")
    parent = var.get_submodule(parent_name) if parent_name else var
    old = parent.get_submodule(child)
    setattr(parent, child, module)
    return old


InputCallback = Callable[[str, "int | None", torch.Tensor], None]


@contextlib.contextmanager
def observe_inputs(var: VAR, names: list[str], callback: InputCallback) -> Iterator[None]:
    """Call ``callback(name, step, input)`` whenever a named layer runs; ``step`` is the scale being
    generated (0..K-1), or None outside :meth:`VAR.generate` (e.g. in the teacher-forced forward)."""
    handles = [
        var.get_submodule(name).register_forward_pre_hook(
            lambda module, args, name=name: callback(name, var.generation_step, args[0])
        )
        for name in names
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def collect_inputs(var: VAR, names: list[str], device: str | torch.device = "cpu") -> Iterator[dict]:
    """Gather inputs in memory: ``result[name][step]`` is a list of tensors (one per generate call)."""
    result: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    with observe_inputs(var, names, lambda name, step, x: result[name][step].append(x.detach().to(device))):
        yield result
