"""The transformer steps of one sampling pass: KV stores installed for the pass, CUDA graphs captured or reused.

`VAR.generate` and `VAR.teacher_forced_logits` run their next-scale loop inside `kv_cached_steps`, which hands
them ``step_logits(si, x)``: step ``si`` of the transformer, run eagerly or replayed from its CUDA graph.
"""

from __future__ import annotations

import contextlib
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from .cuda_graphs import StepGraphs, graph_blocker
from .kv_cache import KVCache, StaticKVCache
from .precision import autocast_dtype

StepLogits = Callable[[int, torch.Tensor], torch.Tensor]

# Each model's captured steps, kept out of the module so that copies and state dicts of a VAR never carry graphs.
_GRAPHS: weakref.WeakKeyDictionary[nn.Module, tuple] = weakref.WeakKeyDictionary()


def release_step_graphs(var: nn.Module) -> None:
    """Free ``var``'s captured step graphs and their memory."""
    _GRAPHS.pop(var, None)


def _step_graphs(var, first_input: torch.Tensor, modulations: Sequence[torch.Tensor], cond: torch.Tensor,
                 plain_layers: tuple[type, ...]) -> StepGraphs | None:
    """This batch's StepGraphs with ``modulations`` and ``cond`` loaded, captured when first needed;
    None (and a warning) where the steps cannot be captured."""
    blocker = graph_blocker(var, plain_layers, KVCache)
    if blocker is not None:
        warnings.warn(f"sampling without CUDA graphs: {blocker}", stacklevel=5)
        return None
    device = first_input.device.type
    # Graphs bake in addresses and dtypes: recapture when weights are replaced, recast or moved.
    key = (first_input.shape, first_input.dtype, autocast_dtype(device), torch.is_inference_mode_enabled(),
           tuple((t.data_ptr(), t.dtype) for t in (*var.parameters(), *var.buffers())))
    held = _GRAPHS.get(var)
    if held is None or held[0] != key:
        release_step_graphs(var)  # one set at a time: free the old graphs' memory first
        B2, C = first_input.shape[0], var.config.C
        inputs = [first_input.new_zeros(B2, pn * pn, C) for pn in var.patch_nums]
        caches = [StaticKVCache(var.config.num_tokens) for _ in var.blocks]
        for block, cache in zip(var.blocks, caches, strict=True):
            block.attn.kv_cache = cache
        try:
            held = (key, StepGraphs(var.step_logits, caches, inputs, modulations, cond))
        finally:
            for block in var.blocks:
                block.attn.kv_caching(False)
        _GRAPHS[var] = held
    held[1].start(modulations, cond)
    return held[1]


@contextlib.contextmanager
def kv_cached_steps(var, first_input: torch.Tensor, modulations: Sequence[torch.Tensor], cond: torch.Tensor, *,
                    plain_layers: tuple[type, ...], cuda_graphs: bool) -> Iterator[StepLogits]:
    """KV stores on every block for one pass; yields ``step_logits(si, x)``, which sets ``var.generation_step``
    (for hooks) and returns step ``si``'s logits. The default store becomes a preallocated StaticKVCache (the
    same values as concatenation, fewer copies); a replaced one (e.g. quantizing) is kept. With ``cuda_graphs``
    the steps replay captured graphs where `graph_blocker` allows (``plain_layers``: the model's own layer types).
    """
    graphs = _step_graphs(var, first_input, modulations, cond, plain_layers) if cuda_graphs else None
    for i, block in enumerate(var.blocks):
        block.attn.kv_caching(True)
        if graphs is not None:
            block.attn.kv_cache = graphs.caches[i]
        elif block.attn.kv_cache_factory is KVCache:  # the default store, preallocated: the same values
            block.attn.kv_cache = StaticKVCache(var.config.num_tokens)

    def step_logits(si: int, x: torch.Tensor) -> torch.Tensor:
        var.generation_step = si
        if graphs is not None:
            return graphs.run(si, x)
        return var.step_logits(x, modulations, cond)

    try:
        yield step_logits
    finally:
        var.generation_step = None
        for block in var.blocks:
            block.attn.kv_caching(False)
