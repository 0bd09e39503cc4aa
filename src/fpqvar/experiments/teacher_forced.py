"""Teacher-forced measures of a quantized VAR against its full-precision original, on held-out images' tokens.

Image-level metrics of a small model saturate (on MNIST every recipe down to INT4 draws recognisable digits), so
every table row also carries three token-level measures, computed with `VAR.forward` (the block-causal
teacher-forced pass, no CFG) on the tokens the VQVAE gives held-out images:

- ``nll``: mean negative log-likelihood per token of the quantized model (the VAR analogue of perplexity's log);
- ``kl``: mean KL(P_full || P_quantized) per token, the next-token distributions of the two models;
- ``top1_agreement``: share of tokens where both models' most likely token is the same.

Each comes with a bootstrap interval over images (the images are the unit that was drawn).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..model import VAR, VQVAE
from ..train.tasks import tokenize

TEACHER_FORCED_METRICS = ("nll", "kl", "top1_agreement")


@dataclass(frozen=True)
class HeldOutTokens:
    """Teacher-forcing inputs (N, L - 1, Cvae), targets (N, L) and class labels (N,) of N held-out images."""

    inputs: torch.Tensor
    targets: torch.Tensor
    labels: torch.Tensor
    source: str

    def __len__(self) -> int:
        return len(self.labels)


def held_out_tokens(vae: VQVAE, images_nchw: torch.Tensor, labels, source: str, chunk: int = 256) -> HeldOutTokens:
    """The VQVAE's token pyramid of images in [-1, 1] (N, 3, H, W), as the VAR was trained on it."""
    inputs, targets = tokenize(vae, images_nchw, chunk=chunk)
    return HeldOutTokens(inputs, targets, torch.as_tensor(labels, dtype=torch.int64), source)


def _autocast(device: torch.device, amp_dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()


@torch.no_grad()
def per_image_measures(
    reference: VAR, quantized: VAR, tokens: HeldOutTokens, batch_size: int = 100, amp_dtype: torch.dtype | None = None,
    reference_logits: dict | None = None,
) -> dict[str, np.ndarray]:
    """Per image: summed NLL of each model, summed KL(reference || quantized), count of agreeing top-1 tokens.

    Sums per image (float64), so that means over tokens and bootstrap resamples over images are exact.
    ``reference_logits``: a dict that keeps the reference model's logits between calls (the reference is the same
    for every recipe of a table), filled on the first call."""
    device = reference.pos_1LC.device
    parts: dict[str, list[np.ndarray]] = {"nll": [], "nll_reference": [], "kl": [], "top1_agreement": []}
    for start in range(0, len(tokens), batch_size):
        end = start + batch_size
        x = tokens.inputs[start:end].to(device)
        y = tokens.labels[start:end].to(device)
        t = tokens.targets[start:end].to(device)
        with _autocast(device, amp_dtype):
            if reference_logits is not None and start in reference_logits:
                logits_p = reference_logits[start].to(device)
            else:
                logits_p = reference(y, x).float()
                if reference_logits is not None:
                    reference_logits[start] = logits_p.cpu()
            logits_q = quantized(y, x)
        # float64: a KL of 1e-6 per token is a real difference here, not rounding
        log_p, log_q = F.log_softmax(logits_p.double(), dim=-1), F.log_softmax(logits_q.double(), dim=-1)
        nll_q = -log_q.gather(-1, t.unsqueeze(-1)).squeeze(-1)
        nll_p = -log_p.gather(-1, t.unsqueeze(-1)).squeeze(-1)
        # KL per token; terms with p = 0 contribute 0 (exp(-inf) * finite), as kl_div with log_target does.
        kl = F.kl_div(log_q, log_p, log_target=True, reduction="none").sum(-1)
        agree = (log_p.argmax(-1) == log_q.argmax(-1)).double()
        for name, value in (("nll", nll_q), ("nll_reference", nll_p), ("kl", kl), ("top1_agreement", agree)):
            parts[name].append(value.double().sum(-1).cpu().numpy())
    return {name: np.concatenate(values) for name, values in parts.items()}


def bootstrap_interval(per_image: np.ndarray, tokens_per_image: int, resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the per-token mean when the images are drawn again with replacement."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(per_image), size=(resamples, len(per_image)))
    means = per_image[picks].sum(1) / (len(per_image) * tokens_per_image)
    low, high = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(low), float(high)


def teacher_forced_metrics(
    reference: VAR, quantized: VAR, tokens: HeldOutTokens, batch_size: int = 100, amp_dtype: torch.dtype | None = None,
    resamples: int = 1000, reference_logits: dict | None = None,
) -> dict:
    """Per-token means (nll, nll_reference, kl, top1_agreement) and each one's 95% bootstrap interval over images."""
    sums = per_image_measures(reference, quantized, tokens, batch_size, amp_dtype, reference_logits)
    per_image_tokens = tokens.targets.shape[1]
    count = len(tokens) * per_image_tokens
    metrics: dict = {name: float(values.sum() / count) for name, values in sums.items()}
    metrics["interval"] = {name: bootstrap_interval(values, per_image_tokens, resamples) for name, values in sums.items()}
    metrics["images"], metrics["tokens"], metrics["source"] = len(tokens), count, tokens.source
    return metrics
