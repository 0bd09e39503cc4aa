"""Small random VAR + VQVAE pairs for tests (8x8 images, latent 4x4, 4 scales)."""

import torch

from fpqvar.model import VAR, VQVAE, VARConfig, VQVAEConfig

TINY_VAE = VQVAEConfig(vocab_size=64, latent_channels=8, channels=32, channel_multipliers=(1, 2), patch_nums=(1, 2, 3, 4))
TINY_VAR = VARConfig(depth=2, width=128, heads=2, patch_nums=(1, 2, 3, 4), vocab_size=64, latent_channels=8, num_classes=10)


def tiny_pair(seed: int = 0, shared_aln: bool = False, gamma: float = 1.0, width: int = 128, depth: int = 2):
    """A random VQVAE and VAR; ``gamma`` scales the AdaLN gates so that every block matters."""
    torch.manual_seed(seed)
    vae = VQVAE(TINY_VAE).eval()
    cfg = VARConfig(**{**TINY_VAR.to_dict(), "shared_aln": shared_aln, "width": width, "heads": width // 64, "depth": depth})
    var = VAR(cfg)
    var.init_weights(init_adaln=0.5, init_adaln_gamma=gamma)
    with torch.no_grad():  # non-trivial biases and temperatures, which the from-scratch init leaves at zero / ln 4
        for block in var.blocks:
            block.attn.q_bias.normal_(0, 0.1)
            block.attn.v_bias.normal_(0, 0.1)
            block.attn.scale_mul_1H11.uniform_(0.5, 2.0)
    return vae, var.eval()
