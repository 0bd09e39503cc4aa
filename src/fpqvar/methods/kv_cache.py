"""A quantizing KV-cache store (paper Sec. V: FP6-E2M3 per token and head)."""

from __future__ import annotations

import torch

from ..model.var import KVCache
from ..quant import Tie
from .layers import OperandQuant


class QuantizedKVCache(KVCache):
    """Stores keys and values fake-quantized along head_dim, one scale per (token, head).

    ``past_only=False`` (the paper's reading): K and V are quantized when written, so every step attends to
    quantized K and V, its own included. ``past_only=True`` (the released code): a step attends to its own
    K and V in full precision and to quantized K and V of earlier steps.
    """

    def __init__(self, quant: OperandQuant, past_only: bool = False, tie: Tie = "even"):
        super().__init__()
        self.quant, self.past_only, self.tie = quant, past_only, tie
        self.pending: tuple[torch.Tensor, torch.Tensor] | None = None  # past_only: the last step, not yet quantized

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.past_only:
            return super().update(self.quant(k, self.tie), self.quant(v, self.tie))
        if self.pending is not None:
            super().update(self.quant(self.pending[0], self.tie), self.quant(self.pending[1], self.tie))
        self.pending = (k, v)
        if self.keys is None:
            return k, v
        return torch.cat((self.keys, k), dim=2), torch.cat((self.values, v), dim=2)
