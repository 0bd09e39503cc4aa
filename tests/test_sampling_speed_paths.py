"""The fast sampling paths compute what the plain sampler computes: the preallocated KV store and CUDA graphs."""

import pytest
import torch
from tiny_models import tiny_pair

import fpqvar.model.var as var_module
from fpqvar.methods import get_recipe, quantize_model, rotated_layer_names
from fpqvar.model import KVCache
from fpqvar.model.compile import compile_for_sampling
from fpqvar.model.cuda_graphs import graph_blocker
from fpqvar.model.hooks import observe_inputs, replace_module
from fpqvar.model.kv_cache import StaticKVCache
from fpqvar.model.precision import cast_linear_weights
from fpqvar.model.steps import _GRAPHS
from fpqvar.model.var import _PLAIN_LAYERS

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def sample(var, vae, monkeypatch, **kwargs):
    """Images, and the guided logits and tokens of every step."""
    logits, tokens = [], []
    real = var_module.sample_top_k_top_p

    def recording(lg, top_k, top_p, generator):
        logits.append(lg.clone())
        tokens.append(real(lg, top_k, top_p, generator))
        return tokens[-1]

    monkeypatch.setattr(var_module, "sample_top_k_top_p", recording)
    images = var.generate(vae, 3, labels=torch.tensor([1, 7, 3]), seed=4, **kwargs)
    monkeypatch.undo()
    return images, logits, tokens


def use_concatenating_cache(var):
    for block in var.blocks:
        block.attn.kv_cache_factory = lambda: KVCache()  # not the default class: generate keeps it


def test_static_cache_returns_what_concatenation_returns():
    static, concat = StaticKVCache(9), KVCache()
    for length in (1, 3, 5):
        k, v = torch.randn(2, 3, length, 4), torch.randn(2, 3, length, 4)
        a, b = static.update(k, v), concat.update(k, v)
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    with pytest.raises(ValueError, match="holds 9 tokens; 9 are stored and 1 more came"):
        static.update(k[:, :, :1], v[:, :, :1])
    static.rewind()
    k = torch.randn(2, 3, 1, 4)
    assert torch.equal(static.update(k, k)[0], k)


@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("shared_aln", [False, True])
def test_preallocated_kv_store_gives_the_same_logits_and_tokens(monkeypatch, autocast, shared_aln):
    vae, var = tiny_pair(shared_aln=shared_aln)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        fast = sample(var, vae, monkeypatch)
        use_concatenating_cache(var)
        plain = sample(var, vae, monkeypatch)
    assert torch.equal(fast[0], plain[0])
    for a, b in zip(fast[1] + fast[2], plain[1] + plain[2], strict=True):
        assert torch.equal(a, b)


def test_graphs_off_cuda_fall_back_to_the_same_eager_result(monkeypatch):
    vae, var = tiny_pair()
    reference = var.generate(vae, 2, labels=1, seed=0)
    with pytest.warns(UserWarning, match="not on a CUDA device"):
        assert torch.equal(var.generate(vae, 2, labels=1, seed=0, cuda_graphs=True), reference)


def test_graph_blocker_names_hooks_replaced_layers_and_stores():
    vae, var = tiny_pair()
    blocker = lambda: graph_blocker(var, _PLAIN_LAYERS, KVCache)  # noqa: E731
    assert blocker() == "the model is not on a CUDA device"
    with observe_inputs(var, ["blocks.0.ffn.fc1"], lambda name, step, x: None):
        assert blocker() == "blocks.0.ffn.fc1 has forward hooks"
    var.blocks[1].attn.kv_cache_factory = lambda: KVCache()
    assert blocker() == "blocks.1.attn has a replaced KV cache"
    var.blocks[1].attn.kv_cache_factory = KVCache
    replace_module(var, "blocks.0.attn.proj", torch.nn.Sequential(torch.nn.Identity(), var.blocks[0].attn.proj))
    replace_module(var, "head", torch.nn.Bilinear(2, 2, 2))
    assert blocker() == "head is a Bilinear, not a layer of the plain model"


@cuda
@pytest.mark.parametrize("autocast", [False, True])
def test_cuda_graphs_give_the_eager_tokens(monkeypatch, autocast):
    vae, var = tiny_pair()
    vae, var = vae.cuda(), var.cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        eager = sample(var, vae, monkeypatch)
        for _ in range(2):  # captured at the first call, replayed at the second
            graphed = sample(var, vae, monkeypatch, cuda_graphs=True)
            assert torch.equal(graphed[0], eager[0])
            assert all(torch.equal(a, b) for a, b in zip(graphed[2], eager[2], strict=True))
        cast_linear_weights(var, torch.bfloat16)  # new weight tensors: the graphs must be captured again
        if autocast:
            assert torch.equal(sample(var, vae, monkeypatch, cuda_graphs=True)[0], eager[0])
    assert var in _GRAPHS
    var.release_cuda_graphs()
    assert var not in _GRAPHS


def quantized_tiny_pair(recipe="fp4_fpqvar"):
    vae, var = tiny_pair()
    generator = torch.Generator().manual_seed(1)
    lambdas = {name: torch.rand(128, generator=generator) + 0.5 for name in rotated_layer_names(2)}
    return vae, quantize_model(var, get_recipe(recipe), lambdas)


def test_quantized_linears_may_be_captured_but_quantizing_kv_stores_may_not():
    _, var = quantized_tiny_pair()
    assert graph_blocker(var, _PLAIN_LAYERS, KVCache) == "the model is not on a CUDA device"
    _, var = quantized_tiny_pair("fp4_fpqvar_kv6")
    assert graph_blocker(var, _PLAIN_LAYERS, KVCache) == "blocks.0.attn has a replaced KV cache"


@cuda
def test_cuda_graphs_of_a_quantized_model_give_the_eager_tokens(monkeypatch):
    vae, var = quantized_tiny_pair()
    vae, var = vae.cuda(), var.cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        eager = sample(var, vae, monkeypatch)
        for _ in range(2):
            graphed = sample(var, vae, monkeypatch, cuda_graphs=True)
            assert torch.equal(graphed[0], eager[0])
            assert all(torch.equal(a, b) for a, b in zip(graphed[2], eager[2], strict=True))


@cuda
def test_cuda_graphs_step_aside_for_hooks_and_replaced_layers(monkeypatch):
    vae, var = tiny_pair()
    vae, var = vae.cuda(), var.cuda()
    reference = var.generate(vae, 2, labels=1, seed=0)
    seen = []
    with observe_inputs(var, ["blocks.0.ffn.fc1"], lambda name, step, x: seen.append(step)), \
            pytest.warns(UserWarning, match="forward hooks"):
        assert torch.equal(var.generate(vae, 2, labels=1, seed=0, cuda_graphs=True), reference)
    assert seen == [0, 1, 2, 3]
    replace_module(var, "head", torch.nn.Bilinear(2, 2, 2))
    with pytest.warns(UserWarning, match="head is a Bilinear"), pytest.raises(TypeError):
        var.generate(vae, 2, labels=1, seed=0, cuda_graphs=True)


def test_compiled_quantized_sampling_computes_what_eager_computes(monkeypatch):
    """Whole compiled blocks with the quantizers traced into them (emulating eager's fp16/bf16 roundings).
    Fusion reorders float sums (~1e-6 relative in float32), far below a token's or a grid step's margin here."""
    vae, var = quantized_tiny_pair()
    eager = sample(var, vae, monkeypatch)
    torch._dynamo.reset()
    compile_for_sampling(var, vae)
    compiled = sample(var, vae, monkeypatch)
    torch._dynamo.reset()
    assert torch.allclose(compiled[0], eager[0], atol=1e-4)
    assert all(torch.equal(a, b) for a, b in zip(compiled[2], eager[2], strict=True))
    assert all(torch.allclose(a, b, atol=1e-4, rtol=1e-4) for a, b in zip(compiled[1], eager[1], strict=True))
