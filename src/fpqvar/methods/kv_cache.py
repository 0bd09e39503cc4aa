"""A quantizing KV-cache store (paper Sec. V: FP6-E2M3 per token and head)."""

from __future__ import annotations

import torch

from ..model.var import KVCache
from ..quant import Numerics, Tie
from .layers import OperandQuant

_FP16_MAX = torch.finfo(torch.float16).max


class QuantizedKVCache(KVCache):
    """Stores keys and values fake-quantized along head_dim, one scale per (token, head).

    ``past_only=False`` (the paper's reading): K and V are quantized when written, so every step attends to
    quantized K and V, its own included. ``past_only=True`` (the released code): a step attends to its own
    K and V in full precision and to quantized K and V of earlier steps.
    ``round_to_fp16=True`` (the released code, whose FP6 KV quantizer returns fp16 on any device): quantized
    K and V are rounded to fp16 values (saturating at 65504), kept in the cache's dtype.
    """

    def __init__(self, quant: OperandQuant, past_only: bool = False, tie: Tie | Numerics = "even", *,
                 round_to_fp16: bool = False):
        super().__init__()
        self.quant, self.past_only, self.tie, self.round_to_fp16 = quant, past_only, tie, round_to_fp16
        self.pending: tuple[torch.Tensor, torch.Tensor] | None = None  # past_only: the last step, not yet quantized

    def _quantize(self, t: torch.Tensor) -> torch.Tensor:
        q = self.quant(t, self.tie)
        return q.clamp(-_FP16_MAX, _FP16_MAX).to(torch.float16).to(t.dtype) if self.round_to_fp16 else q

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.past_only:
            return super().update(self._quantize(k), self._quantize(v))
        if self.pending is not None:
            super().update(self._quantize(self.pending[0]), self._quantize(self.pending[1]))
        self.pending = (k, v)
        if self.keys is None:
            return k, v
        return torch.cat((self.keys, k), dim=2), torch.cat((self.values, v), dim=2)
