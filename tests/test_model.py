"""The VAR model: official key layout, strict loading, training/sampling agreement, sampler semantics."""

import math

import pytest
import torch
from tiny_models import TINY_VAE, tiny_pair

import fpqvar.model.var as var_module
from fpqvar.checkpoints import CheckpointMismatchError, save_safetensors
from fpqvar.model import RELEASED_VAR, VAR, VQVAE, VARConfig, VQVAEConfig, released_var_config
from fpqvar.model.hooks import observe_inputs
from fpqvar.model.loading import infer_var_config, load_vae, load_var, var_from_state_dict
from fpqvar.model.sampling import sample_top_k_top_p, top_k_top_p_filter_
from fpqvar.model.vqvae import phi_index


def spec_var_shapes(depth: int, shared: bool, L: int, K: int = 10) -> dict[str, tuple[int, ...]]:
    """The VAR key table of var-spec.md section 3.1, written out independently of our model code."""
    C, H, V = 64 * depth, depth, 4096
    shapes = {
        "pos_start": (1, 1, C), "pos_1LC": (1, L, C), "lvl_1L": (1, L), "attn_bias_for_masking": (1, 1, L, L),
        "word_embed.weight": (C, 32), "word_embed.bias": (C,), "class_emb.weight": (1001, C), "lvl_embed.weight": (K, C),
    }
    if shared:
        shapes |= {"shared_ada_lin.1.weight": (6 * C, C), "shared_ada_lin.1.bias": (6 * C,)}
    for i in range(depth):
        b = f"blocks.{i}."
        if shared:
            shapes[b + "ada_gss"] = (1, 1, 6, C)
        shapes |= {
            b + "attn.scale_mul_1H11": (1, H, 1, 1), b + "attn.q_bias": (C,), b + "attn.v_bias": (C,),
            b + "attn.zero_k_bias": (C,), b + "attn.mat_qkv.weight": (3 * C, C), b + "attn.proj.weight": (C, C),
            b + "attn.proj.bias": (C,), b + "ffn.fc1.weight": (4 * C, C), b + "ffn.fc1.bias": (4 * C,),
            b + "ffn.fc2.weight": (C, 4 * C), b + "ffn.fc2.bias": (C,),
        }
        if not shared:
            shapes |= {b + "ada_lin.1.weight": (6 * C, C), b + "ada_lin.1.bias": (6 * C,)}
    shapes |= {"head_nm.ada_lin.1.weight": (2 * C, C), "head_nm.ada_lin.1.bias": (2 * C,), "head.weight": (V, C), "head.bias": (V,)}
    return shapes


BUFFERS = ("lvl_1L", "attn_bias_for_masking", "zero_k_bias")


def _count(shapes):
    return sum(math.prod(s) for k, s in shapes.items() if not k.endswith(BUFFERS))


@pytest.mark.parametrize(
    "name, keys, params", [("d16", 220, 310_283_520), ("d30", 402, 2_010_020_356), ("d36", 446, 2_353_893_904)]
)
def test_synthetic_official_state_dicts_load_strictly(name, keys, params):
    cfg = released_var_config(name)
    shapes = spec_var_shapes(cfg.depth, cfg.shared_aln, cfg.num_tokens)
    assert len(shapes) == keys and _count(shapes) == params
    state = {k: torch.empty(s, device="meta", dtype=torch.int64 if k == "lvl_1L" else torch.float32) for k, s in shapes.items()}
    assert infer_var_config(state) == cfg
    model = var_from_state_dict(state, source=f"synthetic {name}")
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.state_dict()["lvl_1L"].dtype == torch.int64


def test_every_released_config_has_the_spec_parameter_count():
    expected = {"d16": 310_283_520, "d20": 600_917_136, "d24": 1_033_399_360, "d30": 2_010_020_356, "d36": 2_353_893_904}
    for name, cfg in RELEASED_VAR.items():
        with torch.device("meta"):
            assert sum(p.numel() for p in VAR(cfg).parameters()) == expected[name], name


def test_released_vqvae_layout():
    with torch.device("meta"):
        vae = VQVAE()
    state = vae.state_dict()
    assert len(state) == 324
    assert sum(p.numel() for p in vae.parameters()) == 108_948_355
    assert state["decoder.up.4.attn.2.qkv.weight"].shape == (1920, 640, 1, 1)
    assert state["encoder.down.2.block.0.nin_shortcut.weight"].shape == (320, 160, 1, 1)
    assert state["quantize.quant_resi.qresi_ls.3.weight"].shape == (32, 32, 3, 3)
    assert "decoder.up.0.upsample.conv.weight" not in state and "encoder.down.4.downsample.conv.weight" not in state


def test_corrupted_checkpoint_lists_every_problem():
    cfg = released_var_config("d16")
    state = {k: torch.empty(s, device="meta") for k, s in spec_var_shapes(16, False, 680).items()}
    state.pop("head.bias")
    state["module.extra"] = torch.empty(3, device="meta")
    state["blocks.3.ffn.fc1.weight"] = torch.empty(10, 10, device="meta")
    with pytest.raises(CheckpointMismatchError) as error:
        var_from_state_dict(state, cfg, source="var_d16.pth")
    message = str(error.value)
    assert "1 missing keys: head.bias" in message
    assert "1 unexpected keys: module.extra" in message
    assert "blocks.3.ffn.fc1.weight: file (10, 10), model (4096, 1024)" in message
    assert "released VAR-d16" in message


def test_a_vae_file_given_as_var_is_named(tmp_path):
    torch.manual_seed(0)
    vae = VQVAE(TINY_VAE)
    torch.save(vae.state_dict(), tmp_path / "vae.pth")
    with pytest.raises(CheckpointMismatchError, match="looks like a VQVAE"):
        load_var(tmp_path / "vae.pth")
    with pytest.raises(FileNotFoundError, match="supply the file"):
        load_var(tmp_path / "missing.pth")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_save_and_load_round_trip(tmp_path, suffix):
    vae, var = tiny_pair()
    if suffix == ".pth":
        torch.save(var.state_dict(), tmp_path / f"var{suffix}")
        torch.save(vae.state_dict(), tmp_path / f"vae{suffix}")
    else:
        save_safetensors(var, tmp_path / f"var{suffix}")
        save_safetensors(vae, tmp_path / f"vae{suffix}")
    var2 = load_var(tmp_path / f"var{suffix}")
    vae2 = load_vae(tmp_path / f"vae{suffix}", TINY_VAE if suffix == ".pth" else None)
    for a, b in ((var, var2), (vae, vae2)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    a = var.generate(vae, 2, labels=3, seed=1)
    b = var2.generate(vae2, 2, labels=3, seed=1)
    assert torch.equal(a, b)


def test_phi_index_map():
    assert [phi_index(k, 10, 4) for k in range(10)] == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]


def test_teacher_forcing_input_equals_iterative_reconstruction():
    vae, _ = tiny_pair()
    img = torch.rand(3, 3, 8, 8) * 2 - 1
    idx = vae.img_to_idxBl(img)
    teacher = vae.quantize.idxBl_to_var_input(idx)
    f_hat = torch.zeros(3, 8, 4, 4)
    pieces = []
    for k, pn in enumerate(vae.patch_nums):
        h = vae.quantize.embedding(idx[k]).transpose(1, 2).reshape(3, 8, pn, pn)
        f_hat, nxt = vae.quantize.get_next_autoregressive_input(k, f_hat, h)
        if k < len(vae.patch_nums) - 1:
            pieces.append(nxt.reshape(3, 8, -1).transpose(1, 2))
    assert torch.equal(torch.cat(pieces, 1), teacher)
    fhats = vae.quantize.f_to_idxBl_or_fhat(vae.encode(img), to_fhat=True)
    assert torch.allclose(f_hat, fhats[-1], atol=1e-6)


@pytest.mark.parametrize("shared_aln", [False, True])
def test_kv_cached_sampling_agrees_with_teacher_forcing(monkeypatch, shared_aln):
    """Greedy sampling with cfg 0 (pure conditional logits), then the same tokens through the masked forward."""
    vae, var = tiny_pair(shared_aln=shared_aln)
    seen_logits, seen_tokens = [], []
    real_sample = var_module.sample_top_k_top_p

    def recording_sample(logits, top_k, top_p, generator):
        seen_logits.append(logits.clone())
        tokens = real_sample(logits, top_k, top_p, generator)
        seen_tokens.append(tokens)
        return tokens

    monkeypatch.setattr(var_module, "sample_top_k_top_p", recording_sample)
    labels = torch.tensor([1, 7, 3])
    var.generate(vae, 3, labels=labels, seed=0, cfg=0.0, top_k=1, top_p=0.0)
    teacher = var(labels, vae.quantize.idxBl_to_var_input(seen_tokens))
    cached = torch.cat(seen_logits, dim=1)
    assert (teacher - cached).abs().max() < 1e-5
    assert torch.equal(teacher.argmax(-1), torch.cat(seen_tokens, dim=1))


@pytest.mark.parametrize("shared_aln", [False, True])
def test_teacher_forced_kv_cached_pass_equals_the_masked_forward(shared_aln):
    """cfg 0: the conditional logits of real images' tokens, scale by scale through the KV caches, against all
    scales at once under the block-causal mask. Float32, the same operations grouped differently (attention per
    scale over the cache vs one masked attention): agreement to 1e-5 on logits of size ~1, as in the test above."""
    vae, var = tiny_pair(shared_aln=shared_aln)
    tokens = vae.img_to_idxBl(torch.rand(3, 3, 8, 8) * 2 - 1)
    labels = torch.tensor([1, 7, 3])
    steps = []
    with observe_inputs(var, ["blocks.0.ffn.fc1"], lambda name, step, x: steps.append(step)):
        cached = var.teacher_forced_logits(vae, tokens, labels, cfg=0.0)
    assert steps == [0, 1, 2, 3] and var.generation_step is None  # hooks see the steps, as in sampling
    teacher = var(labels, vae.quantize.idxBl_to_var_input(tokens))
    assert [c.shape for c in cached] == [(3, pn * pn, 64) for pn in var.patch_nums]
    assert (teacher - torch.cat(cached, dim=1)).abs().max() < 1e-5
    with pytest.raises(ValueError, match="one \\(B, pn\\*pn\\) tensor per scale"):
        var.teacher_forced_logits(vae, tokens[:-1], labels)


def test_sampling_draws_its_tokens_from_the_teacher_forced_logits_of_those_tokens():
    vae, var = tiny_pair()
    labels, K = torch.tensor([1, 7, 3]), len(var.patch_nums)
    drawn, raw = [], []  # the tokens generate embeds, and the transformer's logits (both CFG halves)
    hooks = [vae.quantize.embedding.register_forward_pre_hook(lambda m, args: drawn.append(args[0].clone())),
             var.head.register_forward_hook(lambda m, args, out: raw.append(out.clone()))]
    var.generate(vae, 3, labels=labels, seed=4, cfg=1.5, top_k=20, top_p=0.9)
    for hook in hooks:
        hook.remove()
    assert len(drawn) == len(raw) == K
    logits = var.teacher_forced_logits(vae, drawn, labels, cfg=1.5)
    rng = torch.Generator().manual_seed(4)  # labels given: the generator draws one multinomial per scale
    for si in range(K):
        t = 1.5 * si / (K - 1)
        assert torch.equal(logits[si], (1 + t) * raw[si][:3] - t * raw[si][3:])  # the very logits sampling saw
        assert torch.equal(sample_top_k_top_p(logits[si].clone(), 20, 0.9, rng), drawn[si])


def test_same_seed_same_images_and_different_seed_different_images():
    vae, var = tiny_pair()
    a = var.generate(vae, 4, labels=torch.arange(4), seed=5)
    b = var.generate(vae, 4, labels=torch.arange(4), seed=5)
    c = var.generate(vae, 4, labels=torch.arange(4), seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (4, 3, 8, 8) and 0 <= a.min() and a.max() <= 1


def test_random_labels_are_drawn_first_from_the_seeded_generator():
    vae, var = tiny_pair()
    g = torch.Generator().manual_seed(9)
    expected_labels = torch.multinomial(torch.full((10,), 0.1), 5, replacement=True, generator=g)
    recorded = {}
    original = var.class_emb.forward
    var.class_emb.forward = lambda idx: recorded.setdefault("labels", idx.clone()) is not None and original(idx)
    var.generate(vae, 5, labels=None, seed=9)
    assert torch.equal(recorded["labels"][:5], expected_labels)
    assert torch.equal(recorded["labels"][5:], torch.full((5,), 10))


def test_cfg_is_linear_in_the_scale(monkeypatch):
    vae, var = tiny_pair()
    ratios = []
    real_get_logits = var.get_logits

    def get_logits(h, cond):
        logits = real_get_logits(h, cond)
        ratios.append(logits)
        return logits

    seen = []
    monkeypatch.setattr(var, "get_logits", get_logits)
    monkeypatch.setattr(var_module, "sample_top_k_top_p", lambda logits, top_k, top_p, generator: seen.append(logits.clone()) or logits.argmax(-1))
    var.generate(vae, 2, labels=1, seed=0, cfg=3.0, top_k=0, top_p=0.0)
    for si, (raw, guided) in enumerate(zip(ratios, seen, strict=True)):
        t = 3.0 * si / 3
        assert torch.allclose(guided, (1 + t) * raw[:2] - t * raw[2:], atol=1e-6)


def test_top_k_keeps_ties_and_top_p_keeps_the_maximum():
    logits = torch.tensor([[[5.0, 3.0, 3.0, 1.0, 0.0]]])
    kept = top_k_top_p_filter_(logits.clone(), top_k=2, top_p=0.0)
    assert torch.isfinite(kept).tolist() == [[[True, True, True, False, False]]]  # tie at the threshold survives
    kept = top_k_top_p_filter_(torch.tensor([[[10.0, 0.0, 0.0]]]), top_k=0, top_p=0.01)
    assert torch.isfinite(kept).tolist() == [[[True, False, False]]]
    # probabilities 0.5, 0.25, 0.125, 0.125: cumulative from the smallest 0.125, 0.25, 0.5, 1.0;
    # top_p 0.8 removes entries with cumsum <= 0.2: only the first of the two smallest.
    p = torch.tensor([0.5, 0.25, 0.125, 0.125]).log().view(1, 1, 4)
    kept = torch.isfinite(top_k_top_p_filter_(p.clone(), top_k=0, top_p=0.8))
    assert kept.sum() == 3 and kept[0, 0, :2].all()


def test_condition_dropout_only_in_training():
    vae, var = tiny_pair()
    var.config = VARConfig(**{**var.config.to_dict(), "cond_drop_rate": 1.0})
    x = vae.quantize.idxBl_to_var_input(vae.img_to_idxBl(torch.rand(2, 3, 8, 8)))
    labels = torch.tensor([1, 2])
    with torch.no_grad():
        eval_out = var(labels, x)
        var.train()
        for block in var.blocks:
            block.drop_path = torch.nn.Identity()
        train_out = var(labels, x)
        null_out = var.eval()(torch.tensor([10, 10]), x)
    assert not torch.allclose(eval_out, train_out)
    assert torch.allclose(train_out, null_out)


def test_low_precision_linear_storage_changes_nothing_under_autocast():
    from fpqvar.model.precision import cast_linear_weights

    vae, var = tiny_pair()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reference = var.generate(vae, 2, labels=torch.tensor([1, 2]), seed=3, top_k=0, top_p=0.0)
        cast_linear_weights(var, torch.bfloat16)
        stored = var.generate(vae, 2, labels=torch.tensor([1, 2]), seed=3, top_k=0, top_p=0.0)
    assert var.blocks[0].attn.mat_qkv.weight.dtype == torch.bfloat16 and var.pos_1LC.dtype == torch.float32
    assert torch.equal(reference, stored)


def test_a_vae_with_other_scales_is_refused_and_one_file_serves_any_scale_list(tmp_path):
    vae, var = tiny_pair()
    torch.save(vae.state_dict(), tmp_path / "vae.pth")
    other = VQVAE(VQVAEConfig(**{**TINY_VAE.to_dict(), "patch_nums": (1, 2, 4)}))
    with pytest.raises(ValueError, match="differ from the VAR's"):
        var.generate(other, 1, labels=0, seed=0)
    reloaded = load_vae(tmp_path / "vae.pth", TINY_VAE, patch_nums=(1, 2, 4))
    assert reloaded.patch_nums == (1, 2, 4)
    other.load_state_dict(vae.state_dict())  # a plain load too: the hit counts of another scale list are replaced
    assert other.quantize.ema_vocab_hit_SV.shape == (3, TINY_VAE.vocab_size)
