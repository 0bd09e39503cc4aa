"""The two training tasks: a multi-scale VQVAE on images, then VAR on the VQVAE's token pyramids."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model import VAR, VQVAE
from .loop import batches


@torch.no_grad()
def init_codebook_from_data(vae: VQVAE, images: torch.Tensor, seed: int = 0) -> None:
    """Codebook rows drawn from encoder outputs (with a little noise), so no code starts far from the data."""
    f = vae.encode(images)
    vectors = f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])
    g = torch.Generator().manual_seed(seed)
    pick = torch.randint(0, len(vectors), (vae.quantize.vocab_size,), generator=g)
    noise = torch.randn(vae.quantize.vocab_size, f.shape[1], generator=g).to(vectors.device) * vectors.std() * 0.1
    vae.quantize.embedding.weight.copy_(vectors[pick.to(vectors.device)] + noise)


def vqvae_task(vae: VQVAE, images: torch.Tensor, batch_size: int, seed: int = 0):
    """Loss of step s: L2 reconstruction + the VQ loss, on a batch drawn from (seed, s)."""

    def loss_fn(step: int):
        x = images[batches(seed, step, batch_size, len(images), images.device)]
        reconstruction, vq_loss, usage = vae(x)
        recon = F.mse_loss(reconstruction, x)
        metrics = {"recon": recon.item(), "vq": vq_loss.item(), "codes_used": int((usage.sum(0) > 0).sum())}
        return recon + vq_loss, metrics

    return loss_fn


@torch.no_grad()
def tokenize(vae: VQVAE, images: torch.Tensor, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forcing inputs (N, L - 1, Cvae) and targets (N, L) of a whole dataset, computed once."""
    inputs, targets = [], []
    for start in range(0, len(images), chunk):
        idx = vae.img_to_idxBl(images[start : start + chunk])
        inputs.append(vae.quantize.idxBl_to_var_input(idx))
        targets.append(torch.cat(idx, dim=1))
    return torch.cat(inputs), torch.cat(targets)


def var_task(var: VAR, inputs: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor, batch_size: int,
             seed: int = 0, amp_dtype: torch.dtype | None = None):
    """Loss of step s: cross-entropy over every token of every scale, each token weighted alike (as VAR)."""
    last = var.begin_ends[-1][0]

    def loss_fn(step: int):
        pick = batches(seed, step, batch_size, len(targets), targets.device)
        torch.manual_seed(seed * 1_000_003 + step)  # condition dropout and drop-path: a function of the step, so resuming is exact
        with torch.autocast(targets.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = var(labels[pick], inputs[pick])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets[pick].reshape(-1))
        correct = logits.argmax(-1) == targets[pick]
        return loss, {"accuracy": float(correct.float().mean()), "accuracy_last_scale": float(correct[:, last:].float().mean())}

    return loss_fn
