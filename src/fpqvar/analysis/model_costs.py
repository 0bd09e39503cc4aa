"""Parameters and operations of VAR by component, transformer vs VQVAE (paper Fig. 1e), from the model definitions.

Models are built on the meta device (no memory, no weights), so every released size is counted on any machine.
Parameters are counted from the modules. Operations are FLOPs (a multiply-add is 2) of generating one image with
classifier-free guidance, as :meth:`VAR.generate` computes it: the transformer runs both CFG halves (batch 2) at
every step over that step's new tokens, attending to all tokens so far through the KV cache; the VQVAE runs
phi at every step and the decoder once. The transformer's count comes from its linear layers' shapes and the
attention sizes (a small counter: the attention's dtype check does not run on the meta device); the VQVAE's from
``torch.utils.flop_counter`` running it on the meta device (convolutions and matmuls; normalisation, activations
and elementwise operations are not counted on either side).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..model.config import VARConfig, VQVAEConfig
from ..model.var import VAR
from ..model.vqvae import VQVAE


def build_on_meta(var_config: VARConfig, vae_config: VQVAEConfig) -> tuple[VAR, VQVAE]:
    """The models of these configurations without weights (meta device), the VQVAE on the VAR's scale list."""
    with torch.device("meta"):
        return VAR(var_config), VQVAE(VQVAEConfig(**{**vae_config.to_dict(), "patch_nums": var_config.patch_nums}))


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_counts(var: VAR, vae: VQVAE) -> dict[str, int]:
    """Parameters of the transformer and of the VQVAE's parts (encoder side: used in training only)."""
    decoder = _count(vae.decoder) + _count(vae.post_quant_conv)
    quantizer = _count(vae.quantize)
    return {
        "transformer": _count(var),
        "VQVAE decoder": decoder,
        "VQVAE quantizer (codebook, phi)": quantizer,
        "VQVAE encoder": _count(vae) - decoder - quantizer,
    }


def _linear_flops(module: nn.Module, tokens: int) -> int:
    return sum(2 * tokens * m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear))


def transformer_flops(var: VAR) -> dict[str, int]:
    """FLOPs of the transformer for one CFG-guided image (batch 2 inside), by part."""
    C, Cvae = var.config.C, var.config.latent_channels
    rows = 2  # the conditional and the unconditional half
    flops = {"block linears": 0, "attention (QK^T, AV)": 0, "head": 0, "embeddings, AdaLN": 0}
    prefix = 0
    for step, pn in enumerate(var.patch_nums):
        new = pn * pn
        prefix += new
        for block in var.blocks:
            flops["block linears"] += _linear_flops(block.attn, rows * new) + _linear_flops(block.ffn, rows * new)
            flops["attention (QK^T, AV)"] += 2 * (2 * rows * new * prefix * C)
        flops["head"] += _linear_flops(var.head, rows * new) + _linear_flops(var.head_nm, rows)
        if step > 0:  # the next input is embedded once per sample, then repeated for both halves
            flops["embeddings, AdaLN"] += 2 * new * Cvae * C
    # AdaLN modulations: once per image (they depend on the class only)
    flops["embeddings, AdaLN"] += sum(_linear_flops(b.ada_lin, rows) for b in var.blocks if hasattr(b, "ada_lin"))
    flops["embeddings, AdaLN"] += _linear_flops(var.shared_ada_lin, rows)
    return flops


def vqvae_generation_flops(vae: VQVAE) -> dict[str, int]:
    """FLOPs of the VQVAE while generating one image: phi at every step, then the decoder (meta device)."""
    H = vae.patch_nums[-1]
    Cvae = vae.quantize.embedding.weight.shape[1]
    param = next(vae.parameters())
    with FlopCounterMode(display=False) as phi_counter:
        f_hat = torch.zeros(1, Cvae, H, H, device=param.device)
        for scale, pn in enumerate(vae.patch_nums):
            vae.quantize.get_next_autoregressive_input(scale, f_hat, torch.zeros(1, Cvae, pn, pn, device=param.device))
    with FlopCounterMode(display=False) as decoder_counter:
        vae.fhat_to_img(torch.zeros(1, Cvae, H, H, device=param.device))
    return {"VQVAE phi": phi_counter.get_total_flops(), "VQVAE decoder": decoder_counter.get_total_flops()}


def cost_breakdown(var: VAR, vae: VQVAE) -> dict[str, float]:
    """Parameters and FLOPs of transformer and VQVAE, and the transformer's shares (Fig. 1e: ~97% in the paper)."""
    params = parameter_counts(var, vae)
    t_flops = sum(transformer_flops(var).values())
    v_flops = sum(vqvae_generation_flops(vae).values())
    vae_params = sum(v for k, v in params.items() if k.startswith("VQVAE"))
    used_vae_params = params["VQVAE decoder"] + params["VQVAE quantizer (codebook, phi)"]
    return {
        "transformer params (M)": params["transformer"] / 1e6,
        "VQVAE params (M)": vae_params / 1e6,
        "VQVAE params used in generation (M)": used_vae_params / 1e6,
        "transformer GFLOPs / image": t_flops / 1e9,
        "VQVAE GFLOPs / image": v_flops / 1e9,
        "transformer share of params (whole VQVAE)": params["transformer"] / (params["transformer"] + vae_params),
        "transformer share of params (VQVAE generation path)": params["transformer"] / (params["transformer"] + used_vae_params),
        "transformer share of FLOPs": t_flops / (t_flops + v_flops),
    }
