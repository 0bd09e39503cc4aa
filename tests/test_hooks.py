"""Hooks: layer names, per-step input capture, replacing a linear layer or the KV-cache store."""

import torch
from tiny_models import tiny_pair

from fpqvar.model import KVCache
from fpqvar.model.hooks import block_linear_names, collect_inputs, replace_module


def test_every_block_linear_is_named():
    _, var = tiny_pair()
    names = block_linear_names(var)
    assert names[:5] == [f"blocks.0.{k}" for k in ("attn.mat_qkv", "attn.proj", "ffn.fc1", "ffn.fc2", "ada_lin.1")]
    assert len(names) == 5 * len(var.blocks)
    _, shared = tiny_pair(shared_aln=True)
    assert len(block_linear_names(shared)) == 4 * len(shared.blocks)


def test_inputs_are_captured_per_generation_step():
    vae, var = tiny_pair()
    with collect_inputs(var, ["blocks.1.ffn.fc2", "blocks.0.attn.mat_qkv"]) as seen:
        var.generate(vae, 3, labels=2, seed=0)
    fc2 = seen["blocks.1.ffn.fc2"]
    assert sorted(fc2) == [0, 1, 2, 3]
    for step, pn in enumerate(var.patch_nums):
        (x,) = fc2[step]
        assert x.shape == (6, pn * pn, 4 * var.config.C)  # CFG doubles the batch
    assert var.generation_step is None


def test_replacing_a_linear_changes_the_output_and_restores():
    vae, var = tiny_pair()
    labels = torch.tensor([1, 4])
    x = vae.quantize.idxBl_to_var_input(vae.img_to_idxBl(torch.rand(2, 3, 8, 8)))
    with torch.no_grad():
        reference = var(labels, x)

    class Doubled(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return 2 * self.inner(x)

    original = var.get_submodule("blocks.0.ffn.fc2")
    assert replace_module(var, "blocks.0.ffn.fc2", Doubled(original)) is original
    with torch.no_grad():
        changed = var(labels, x)
        replace_module(var, "blocks.0.ffn.fc2", original)
        restored = var(labels, x)
    assert (changed - reference).abs().max() > 1e-3
    assert torch.equal(reference, restored)


def test_kv_cache_store_is_replaceable():
    vae, var = tiny_pair()
    calls = []

    class CountingCache(KVCache):
        def update(self, k, v):
            calls.append(k.shape[2])
            return super().update(k, v)

    reference = var.generate(vae, 2, labels=1, seed=0)
    for block in var.blocks:
        block.attn.kv_cache_factory = CountingCache
    assert torch.equal(reference, var.generate(vae, 2, labels=1, seed=0))
    assert calls == [pn * pn for pn in var.patch_nums for _ in var.blocks]
