"""GALT, GHT-aware learnable transformation (paper Sec. IV-C, Eq. 5, Alg. 3).

For each block's mat_qkv and fc1, learn lambda in R^C minimising, step by step,
    mean((X_j W^T - Q(X_j lambda R) Q((W / lambda) R)^T)^2)
with straight-through quantizers, AdamW and one update per step (K updates per epoch). Defaults follow the
paper (weight decay 0, the best epoch's lambda); the released code used weight decay 0.01 and kept the
last lambda (``weight_decay=0.01, select="last"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..quant import Tie, fake_quantize_ste
from .calibration import ActivationStore
from .layers import InputTransform, OperandQuant, Rotation


def galt_loss(x: torch.Tensor, weight: torch.Tensor, lam: torch.Tensor, rotation: torch.Tensor | None,
              input_quant: OperandQuant, weight_quant: OperandQuant, tie: Tie) -> torch.Tensor:
    transform = InputTransform(weight.shape[1], None if rotation is None else Rotation(rotation))
    xr = transform(x * lam)
    wr = transform(weight / lam)  # (W / lambda) R: rotating rows of W is the fold along the input dimension
    qx = fake_quantize_ste(xr, input_quant.fmt, input_quant.granularity, tie)
    qw = fake_quantize_ste(wr, weight_quant.fmt, weight_quant.granularity, tie)
    return (F.linear(x, weight) - F.linear(qx, qw)).pow(2).mean()


def learn_lambda(
    steps: list[torch.Tensor],
    weight: torch.Tensor,
    rotation: torch.Tensor | None,
    input_quant: OperandQuant,
    weight_quant: OperandQuant,
    epochs: int = 50,
    lr: float = 0.01,
    weight_decay: float = 0.0,
    select: str = "best",
    tie: Tie = "even",
) -> tuple[torch.Tensor, list[float]]:
    """One layer's lambda and its per-epoch mean loss (paper Fig. 11)."""
    if select not in ("best", "last"):
        raise ValueError(f"select must be 'best' (paper) or 'last' (released code), got {select!r}")
    weight = weight.detach().float()
    lam = torch.nn.Parameter(torch.ones(weight.shape[1], device=weight.device))
    optimizer = torch.optim.AdamW([lam], lr=lr, weight_decay=weight_decay)
    best, best_loss, curve = lam.detach().clone(), float("inf"), []
    for _ in range(epochs):
        total = 0.0
        for x in steps:
            loss = galt_loss(x.to(weight.device).float(), weight, lam, rotation, input_quant, weight_quant, tie)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            total += loss.item()
        curve.append(total / len(steps))
        if curve[-1] < best_loss:
            best_loss, best = curve[-1], lam.detach().clone()  # a copy: the released code kept a reference
    return (best if select == "best" else lam.detach().clone()), curve


def learn_lambdas(
    weights: dict[str, torch.Tensor],
    store: ActivationStore,
    rotation: torch.Tensor | None,
    input_quant: OperandQuant,
    weight_quant: OperandQuant,
    progress: bool = True,
    **options,
) -> tuple[dict[str, torch.Tensor], dict[str, list[float]]]:
    """lambda for every named layer (``blocks.<i>.attn.mat_qkv``, ``blocks.<i>.ffn.fc1``), layers independent."""
    lambdas, curves = {}, {}
    for name, weight in tqdm(weights.items(), desc="GALT", disable=not progress):
        lambdas[name], curves[name] = learn_lambda(store.per_step(name), weight, rotation, input_quant, weight_quant, **options)
    return lambdas, curves
