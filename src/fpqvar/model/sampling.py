"""Token sampling of VAR (var-spec.md section 4): top-k, then top-p, then one multinomial draw per token."""

from __future__ import annotations

import torch


def top_k_top_p_filter_(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Set filtered logits to -inf, in place. Ties at the top-k threshold survive; top-p always keeps the max."""
    if top_k > 0:
        top_k = min(top_k, logits.shape[-1])  # small vocabularies (our embedded model) keep everything
        threshold = logits.topk(top_k, dim=-1, largest=True, sorted=False).values.amin(dim=-1, keepdim=True)
        logits.masked_fill_(logits < threshold, -torch.inf)
    if top_p > 0:
        ascending, order = logits.sort(dim=-1, descending=False)
        remove = ascending.softmax(dim=-1).cumsum_(dim=-1) <= 1 - top_p
        remove[..., -1:] = False
        logits.masked_fill_(remove.scatter(order.ndim - 1, order, remove), -torch.inf)
    return logits


def sample_top_k_top_p(
    logits_BlV: torch.Tensor, top_k: int, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """One token per position (B, l), drawn from the filtered softmax with ``generator``. Filters in place."""
    B, tokens, V = logits_BlV.shape
    probs = top_k_top_p_filter_(logits_BlV, top_k, top_p).softmax(dim=-1).view(-1, V)
    return torch.multinomial(probs, num_samples=1, replacement=True, generator=generator).view(B, tokens)


def gumbel_softmax(logits: torch.Tensor, tau: float, generator: torch.Generator | None) -> torch.Tensor:
    """Soft Gumbel-softmax with the noise drawn from ``generator`` (the original's `more_smooth` option)."""
    gumbels = -torch.empty_like(logits).exponential_(generator=generator).log()
    return ((logits + gumbels) / tau).softmax(dim=-1)
