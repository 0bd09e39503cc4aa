"""The VAR transformer (var-spec.md section 2) and its sampler (section 4).

Parameter and buffer names follow the released `var_d*.pth`, so they load with strict checking.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import VARConfig
from .kv_cache import KVCache, StaticKVCache
from .precision import autocast_dtype
from .sampling import gumbel_softmax, sample_top_k_top_p
from .steps import kv_cached_steps, release_step_graphs
from .vqvae import VQVAE


class DropPath(nn.Module):
    """Stochastic depth per sample, scaled by 1/keep (training only)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = 1 - self.p
        return x * x.new_empty(x.shape[0], *([1] * (x.dim() - 1))).bernoulli_(keep).div_(keep)


class SelfAttention(nn.Module):
    """L2-normalised q and k with a learned per-head temperature (clamped at 100), softmax scale 1."""

    def __init__(self, C: int, heads: int):
        super().__init__()
        self.C, self.heads, self.head_dim = C, heads, C // heads
        self.scale_mul_1H11 = nn.Parameter(torch.full((1, heads, 1, 1), 4.0).log())
        self.max_scale_mul = math.log(100)
        self.q_bias = nn.Parameter(torch.zeros(C))
        self.v_bias = nn.Parameter(torch.zeros(C))
        self.register_buffer("zero_k_bias", torch.zeros(C))
        self.mat_qkv = nn.Linear(C, 3 * C, bias=False)
        self.proj = nn.Linear(C, C)
        self.kv_cache: KVCache | None = None
        self.kv_cache_factory = KVCache  # what kv_caching(True) installs; swap for a quantizing store

    def kv_caching(self, enable: bool) -> None:
        self.kv_cache = self.kv_cache_factory() if enable else None

    @staticmethod
    def _attention_dtype(q: torch.Tensor, v: torch.Tensor) -> torch.dtype:
        return autocast_dtype(q.device.type) or torch.promote_types(q.dtype, v.dtype)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None) -> torch.Tensor:
        B, L, C = x.shape
        # Bias added after the (replaceable) projection: keys have none.
        qkv = self.mat_qkv(x) + torch.cat((self.q_bias, self.zero_k_bias, self.v_bias))
        q, k, v = qkv.view(B, L, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q = F.normalize(q, dim=-1).mul(self.scale_mul_1H11.clamp_max(self.max_scale_mul).exp())
        k = F.normalize(k, dim=-1)
        if self.kv_cache is not None:
            if isinstance(self.kv_cache, StaticKVCache):
                # Casting commutes with concatenation: store only the dtype attention reads (half the bytes).
                stored = self._attention_dtype(q, v)
                k, v = k.to(stored), v.to(stored)
            k, v = self.kv_cache.update(k, v)
        dtype = self._attention_dtype(q, v)
        mask = None if attn_bias is None else attn_bias.to(dtype)
        out = F.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype), attn_mask=mask, scale=1.0)
        return self.proj(out.transpose(1, 2).reshape(B, L, C))


class FFN(nn.Module):
    def __init__(self, C: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(C, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SharedAdaLin(nn.Linear):
    def forward(self, cond_BD: torch.Tensor) -> torch.Tensor:
        return super().forward(cond_BD).view(-1, 1, 6, self.out_features // 6)


class AdaLNSelfAttn(nn.Module):
    """One block. Its six modulation chunks, in order: gamma1, gamma2, scale1, scale2, shift1, shift2."""

    def __init__(self, cfg: VARConfig, drop_path: float):
        super().__init__()
        C = cfg.C
        self.C, self.shared_aln = C, cfg.shared_aln
        if cfg.shared_aln:
            self.ada_gss = nn.Parameter(torch.randn(1, 1, 6, C) / C**0.5)
        self.attn = SelfAttention(C, cfg.num_heads)
        self.ffn = FFN(C, cfg.hidden)
        self.ln_wo_grad = nn.LayerNorm(C, eps=cfg.norm_eps, elementwise_affine=False)
        if not cfg.shared_aln:
            self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(C, 6 * C))
        # One type in every block (rate 0 is the identity): compiled blocks then share their compiled code.
        self.drop_path = DropPath(drop_path)

    def modulation(self, cond: torch.Tensor) -> torch.Tensor:
        """(B, 1, 6, C) from the class condition (B, D), or from the shared AdaLN output (B, 1, 6, C)."""
        if self.shared_aln:
            return self.ada_gss + cond
        return self.ada_lin(cond).view(-1, 1, 6, self.C)

    def modulate(self, x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        return self.ln_wo_grad(x).mul(scale.add(1)).add_(shift)

    def forward(self, x: torch.Tensor, modulation: torch.Tensor, attn_bias: torch.Tensor | None) -> torch.Tensor:
        gamma1, gamma2, scale1, scale2, shift1, shift2 = modulation.unbind(2)
        x = x + self.drop_path(self.attn(self.modulate(x, scale1, shift1), attn_bias).mul_(gamma1))
        x = x + self.drop_path(self.ffn(self.modulate(x, scale2, shift2)).mul(gamma2))
        return x


class AdaLNBeforeHead(nn.Module):
    def __init__(self, C: int, eps: float):
        super().__init__()
        self.C = C
        self.ln_wo_grad = nn.LayerNorm(C, eps=eps, elementwise_affine=False)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(C, 2 * C))

    def forward(self, x: torch.Tensor, cond_BD: torch.Tensor) -> torch.Tensor:
        scale, shift = self.ada_lin(cond_BD).view(-1, 1, 2, self.C).unbind(2)
        return self.ln_wo_grad(x).mul(scale.add(1)).add_(shift)


class VAR(nn.Module):
    """Next-scale prediction transformer. It holds no VQVAE weights: sampling takes the VQVAE as an argument."""

    def __init__(self, cfg: VARConfig):
        super().__init__()
        self.config = cfg
        C, L = cfg.C, cfg.num_tokens
        self.patch_nums = tuple(cfg.patch_nums)
        self.num_classes, self.Cvae = cfg.num_classes, cfg.latent_channels
        first_l = self.patch_nums[0] ** 2
        self.begin_ends = []
        cursor = 0
        for pn in self.patch_nums:
            self.begin_ends.append((cursor, cursor + pn * pn))
            cursor += pn * pn

        init_std = math.sqrt(1 / C / 3)
        self.pos_start = nn.Parameter(torch.empty(1, first_l, C))
        self.pos_1LC = nn.Parameter(torch.empty(1, L, C))
        nn.init.trunc_normal_(self.pos_start, std=init_std)
        nn.init.trunc_normal_(self.pos_1LC, std=init_std)
        level = self._levels(self.patch_nums).view(1, L, 1)
        self.register_buffer("lvl_1L", level[:, :, 0].contiguous())
        # Block-causal: a query sees every key of its own and earlier scales.
        mask = torch.where(level >= level.transpose(1, 2), 0.0, -torch.inf).reshape(1, 1, L, L)
        self.register_buffer("attn_bias_for_masking", mask.contiguous())

        self.word_embed = nn.Linear(cfg.latent_channels, C)
        self.class_emb = nn.Embedding(cfg.num_classes + 1, C)  # row num_classes: the null class of CFG
        self.lvl_embed = nn.Embedding(len(self.patch_nums), C)
        nn.init.trunc_normal_(self.class_emb.weight, std=init_std)
        nn.init.trunc_normal_(self.lvl_embed.weight, std=init_std)
        self.shared_ada_lin = nn.Sequential(nn.SiLU(), SharedAdaLin(C, 6 * C)) if cfg.shared_aln else nn.Identity()
        rates = [cfg.drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]  # linspace(0, max, depth)
        self.blocks = nn.ModuleList(AdaLNSelfAttn(cfg, rates[i]) for i in range(cfg.depth))
        self.head_nm = AdaLNBeforeHead(C, cfg.norm_eps)
        self.head = nn.Linear(C, cfg.vocab_size)
        self.generation_step: int | None = None  # the scale being generated, for hooks; None outside generate()
        self.recipe = None  # the quantization recipe fpqvar.methods.quantize_model applied; None: full precision

    @property
    def is_quantized(self) -> bool:
        return self.recipe is not None

    @staticmethod
    def _levels(patch_nums: tuple[int, ...]) -> torch.Tensor:
        """(1, L) int64: the scale index of every token position."""
        return torch.cat([torch.full((pn * pn,), k, dtype=torch.int64) for k, pn in enumerate(patch_nums)]).view(1, -1)

    # ---------------------------------------------------------------------------------------- training
    def get_logits(self, h: torch.Tensor, cond_BD: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_nm(h.float(), cond_BD).float()).float()

    def forward(self, label_B: torch.Tensor, x_BLCv_wo_first_l: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, L, V) under the block-causal mask. Condition dropout acts in training only."""
        B = x_BLCv_wo_first_l.shape[0]
        L = self.config.num_tokens
        first_l = self.patch_nums[0] ** 2
        with torch.autocast(x_BLCv_wo_first_l.device.type, enabled=False):
            if self.training and self.config.cond_drop_rate > 0:
                drop = torch.rand(B, device=label_B.device) < self.config.cond_drop_rate
                label_B = torch.where(drop, self.num_classes, label_B)
            cond_BD = self.class_emb(label_B)
            sos = cond_BD.unsqueeze(1).expand(B, first_l, -1) + self.pos_start.expand(B, first_l, -1)
            x = torch.cat((sos, self.word_embed(x_BLCv_wo_first_l.float())), dim=1)
            x = x + self.lvl_embed(self.lvl_1L.expand(B, -1)) + self.pos_1LC
        attn_bias = self.attn_bias_for_masking[:, :, :L, :L]
        shared = self.shared_ada_lin(cond_BD)
        # Under autocast the residual stream runs in the autocast dtype during training (as the original).
        main_dtype = autocast_dtype(x.device.type) or x.dtype
        x, shared, attn_bias = x.to(main_dtype), shared.to(main_dtype), attn_bias.to(main_dtype)
        for block in self.blocks:
            x = block(x, block.modulation(shared), attn_bias)
        return self.get_logits(x.float(), cond_BD)

    # ---------------------------------------------------------------------------------------- sampling
    def step_logits(self, x: torch.Tensor, modulations: list[torch.Tensor], cond_BD: torch.Tensor) -> torch.Tensor:
        """One generation step of the transformer (KV caches on): this scale's input tokens -> their logits."""
        for block, modulation in zip(self.blocks, modulations, strict=True):
            x = block(x, modulation, None)
        return self.get_logits(x, cond_BD)

    @torch.no_grad()
    def generate(
        self,
        vae: VQVAE,
        batch_size: int,
        labels: torch.Tensor | int | None = None,
        seed: int | None = None,
        cfg: float = 1.5,
        top_k: int = 900,
        top_p: float = 0.96,
        *,
        more_smooth: bool = False,
        cuda_graphs: bool = False,
    ) -> torch.Tensor:
        """Class-conditional images (B, 3, H, W) in [0, 1] (``autoregressive_infer_cfg`` of the original).

        ``labels``: a (B,) tensor, one class for all, a negative int for unconditional, or None for uniform
        random classes. ``seed`` re-seeds this model's generator, so random draws come in the original's order
        (labels, then one multinomial per scale); None uses the global RNG. CFG grows linearly from 0 at the
        first scale to ``cfg`` at the last. Run it under ``torch.autocast`` for fp16/bf16 matmuls.

        ``cuda_graphs``: replay the transformer steps as CUDA graphs, captured at the first call for this batch
        size, dtype and set of weights (same logits and tokens; worth it at small batches). A model with hooks,
        replaced layers (other than fpqvar's quantized linears) or KV stores, or off CUDA, samples eagerly
        instead (with a warning).
        """
        self._check_scales(vae)
        rng = None if seed is None else torch.Generator(device=self.pos_1LC.device).manual_seed(seed)
        labels = self._label_tensor(labels, batch_size, rng)
        codebook = vae.quantize.embedding

        def draw(si: int, ratio: float, logits: torch.Tensor) -> torch.Tensor:
            idx_Bl = sample_top_k_top_p(logits, top_k=top_k, top_p=top_p, generator=rng)
            if more_smooth:
                tau = max(0.27 * (1 - ratio * 0.95), 0.005)
                return gumbel_softmax(logits.mul(1 + ratio), tau, generator=rng) @ codebook.weight.unsqueeze(0)
            return codebook(idx_Bl)

        f_hat = self._predict_scales(vae, labels, cfg, draw, cuda_graphs=cuda_graphs)
        return vae.fhat_to_img(f_hat).add_(1).mul_(0.5)

    @torch.no_grad()
    def teacher_forced_logits(
        self, vae: VQVAE, tokens_per_scale: list[torch.Tensor], labels: torch.Tensor | int, *, cfg: float = 1.5
    ) -> list[torch.Tensor]:
        """The sampler's guided logits (B, pn * pn, V) of every scale when the tokens of every scale are given
        (e.g. ``vae.img_to_idxBl(images)``) instead of drawn.

        The same KV-cached steps as `generate`, step by step (hooks see ``generation_step``), with the given
        tokens where `generate` draws: fed the tokens that `generate` drew, it returns the logits it drew them
        from. With ``cfg=0`` the logits are the conditional ones of the teacher-forced ``forward``, computed
        step by step instead of under the block-causal mask.
        """
        self._check_scales(vae)
        B = tokens_per_scale[0].shape[0]
        expected = [(B, pn * pn) for pn in self.patch_nums]
        if [tuple(t.shape) for t in tokens_per_scale] != expected:
            raise ValueError(f"tokens_per_scale must have shapes {expected} (one (B, pn*pn) tensor per scale), "
                             f"got {[tuple(t.shape) for t in tokens_per_scale]}")
        labels = self._label_tensor(labels, B, None)
        codebook, logits_per_scale = vae.quantize.embedding, []

        def given(si: int, ratio: float, logits: torch.Tensor) -> torch.Tensor:
            logits_per_scale.append(logits)
            return codebook(tokens_per_scale[si].to(logits.device))

        self._predict_scales(vae, labels, cfg, given)
        return logits_per_scale

    def _predict_scales(
        self, vae: VQVAE, labels: torch.Tensor, cfg: float, pick: Callable[[int, float, torch.Tensor], torch.Tensor],
        *, cuda_graphs: bool = False,
    ) -> torch.Tensor:
        """The next-scale loop of ``autoregressive_infer_cfg``: at each scale the transformer's guided logits, from
        which ``pick(si, ratio, logits)`` makes the scale's (B, l, Cvae) token embeddings; returns f_hat."""
        B, K = labels.shape[0], len(self.patch_nums)
        first_l = self.patch_nums[0] ** 2
        cond_BD = self.class_emb(torch.cat((labels, torch.full_like(labels, self.num_classes))))  # [cond; uncond]
        lvl_pos = self.lvl_embed(self.lvl_1L) + self.pos_1LC
        next_input = (
            cond_BD.unsqueeze(1).expand(2 * B, first_l, -1) + self.pos_start.expand(2 * B, first_l, -1) + lvl_pos[:, :first_l]
        )
        shared = self.shared_ada_lin(cond_BD)
        # The modulations depend on the class only, not on the step: computed once (numerically identical).
        modulations = [block.modulation(shared) for block in self.blocks]
        f_hat = cond_BD.new_zeros(B, self.Cvae, self.patch_nums[-1], self.patch_nums[-1], dtype=torch.float32)
        with kv_cached_steps(self, next_input, modulations, cond_BD, plain_layers=_PLAIN_LAYERS,
                             cuda_graphs=cuda_graphs) as step_logits:
            for si, pn in enumerate(self.patch_nums):
                ratio = si / max(K - 1, 1)
                logits = step_logits(si, next_input)
                t = cfg * ratio
                logits = (1 + t) * logits[:B] - t * logits[B:]
                h_BChw = pick(si, ratio, logits).transpose(1, 2).reshape(B, self.Cvae, pn, pn)
                f_hat, next_map = vae.quantize.get_next_autoregressive_input(si, f_hat, h_BChw)
                if si < K - 1:
                    begin, end = self.begin_ends[si + 1]
                    next_input = self.word_embed(next_map.reshape(B, self.Cvae, -1).transpose(1, 2)) + lvl_pos[:, begin:end]
                    next_input = next_input.repeat(2, 1, 1)  # both CFG halves continue from the guided sample
        return f_hat

    def _check_scales(self, vae: VQVAE) -> None:
        if tuple(vae.patch_nums) != self.patch_nums:
            raise ValueError(
                f"the VQVAE's scales {tuple(vae.patch_nums)} differ from the VAR's {self.patch_nums}; "
                "build the VQVAE with VQVAEConfig(patch_nums=var.patch_nums) (one VAE file serves every scale list)"
            )

    def _label_tensor(self, labels: torch.Tensor | int | None, B: int, rng: torch.Generator | None) -> torch.Tensor:
        """(B,) class ids on the model's device: drawn uniformly (from ``rng``) for None; a negative int is the
        null class (unconditional)."""
        device = self.pos_1LC.device
        if labels is None:
            uniform = torch.full((self.num_classes,), 1.0 / self.num_classes, device=device)
            return torch.multinomial(uniform, num_samples=B, replacement=True, generator=rng).reshape(B)
        if isinstance(labels, int):
            return torch.full((B,), self.num_classes if labels < 0 else labels, device=device)
        return labels.to(device)

    def release_cuda_graphs(self) -> None:
        """Free the captured step graphs and their memory. Call it after changing the model's code in place
        (compiling, patching): new weight tensors are noticed, new code is not."""
        release_step_graphs(self)

    # ---------------------------------------------------------------------------------------- initialisation
    @torch.no_grad()
    def init_weights(self, init_adaln: float = 0.5, init_adaln_gamma: float = 1e-5, init_head: float = 0.02) -> None:
        """The original's from-scratch initialisation (var-spec.md section 2.8)."""
        init_std = math.sqrt(1 / self.config.C / 3)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=init_std)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.Embedding):
                nn.init.trunc_normal_(module.weight, std=init_std)
        self.head.weight.mul_(init_head)
        self.head.bias.zero_()
        self.head_nm.ada_lin[-1].weight.mul_(init_adaln)
        self.head_nm.ada_lin[-1].bias.zero_()
        depth, C = self.config.depth, self.config.C
        for block in self.blocks:
            block.attn.proj.weight.div_(math.sqrt(2 * depth))
            block.ffn.fc2.weight.div_(math.sqrt(2 * depth))
            block.attn.scale_mul_1H11.fill_(math.log(4.0))
            block.attn.q_bias.zero_()
            block.attn.v_bias.zero_()
            if self.config.shared_aln:
                block.ada_gss.copy_(torch.randn_like(block.ada_gss) / C**0.5)
                block.ada_gss[:, :, 2:].mul_(init_adaln)
                block.ada_gss[:, :, :2].mul_(init_adaln_gamma)
            else:
                block.ada_lin[-1].weight[2 * C :].mul_(init_adaln)
                block.ada_lin[-1].weight[: 2 * C].mul_(init_adaln_gamma)
                block.ada_lin[-1].bias.zero_()


# The layer types whose steps CUDA graphs may capture (fpqvar.model.cuda_graphs.graph_blocker).
_PLAIN_LAYERS = (VAR, AdaLNSelfAttn, SelfAttention, FFN, DropPath, SharedAdaLin, AdaLNBeforeHead, nn.ModuleList,
                 nn.Sequential, nn.Linear, nn.LayerNorm, nn.GELU, nn.SiLU, nn.Identity, nn.Embedding)
