"""A resumable training loop: AdamW, warm-up then linear decay, gradient clipping, atomic checkpoints."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn
from tqdm import tqdm

from ..atomic import atomic_path
from ..errors import UserInputError


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.05
    warmup_fraction: float = 0.02
    final_lr_fraction: float = 0.1
    grad_clip: float = 2.0
    checkpoint_every: int = 500
    seed: int = 0


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """VAR's 'lin0' shape: linear warm-up from 0.5%, flat for the first 5% of the rest, then linear decay
    to final_lr_fraction of the peak."""
    warmup = max(1, round(cfg.warmup_fraction * cfg.steps))
    if step < warmup:
        return cfg.lr * (0.005 + 0.995 * step / warmup)
    flat = round(0.05 * (cfg.steps - warmup))
    progress = max(0, step - warmup - flat) / max(1, cfg.steps - warmup - flat)
    return cfg.lr * (1 - (1 - cfg.final_lr_fraction) * progress)


def no_decay(name: str, parameter: nn.Parameter) -> bool:
    """VAR's rule: no weight decay on 1-d tensors, biases, embeddings of position/level, gains."""
    keywords = ("pos_start", "pos_1LC", "lvl_embed", "gamma", "beta", "ada_gss", "scale_mul")
    return parameter.ndim <= 1 or name.endswith("bias") or any(k in name for k in keywords)


def train(
    model: nn.Module,
    loss_fn: Callable[[int], tuple[torch.Tensor, dict[str, float]]],
    cfg: TrainConfig,
    checkpoint: str | pathlib.Path | None = None,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
    *,
    progress: bool = True,
    settings: dict | None = None,
) -> list[dict[str, float]]:
    """Run ``cfg.steps`` optimiser steps of ``loss_fn(step)``; resume from ``checkpoint`` if it exists.

    ``loss_fn`` must draw its batch from the step number alone (e.g. a generator seeded by the step), so
    that a resumed run takes exactly the steps an uninterrupted one would have. ``settings`` (JSON-like: data,
    batch size, model) are stored in the checkpoint too, and a resume under other settings is refused.
    """
    decay = [p for n, p in model.named_parameters() if p.requires_grad and not no_decay(n, p)]
    plain = [p for n, p in model.named_parameters() if p.requires_grad and no_decay(n, p)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": plain, "weight_decay": 0.0}],
        lr=cfg.lr, betas=cfg.betas,
    )
    start, log = 0, []
    path = pathlib.Path(checkpoint) if checkpoint else None
    if path is not None and path.exists():
        try:  # tensors, numbers, strings, lists and dicts only: weights_only=True reads it, and never runs code
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - whatever torch.load fails with, the file cannot be resumed from
            raise UserInputError(f"{path} (an interrupted run's checkpoint) cannot be read ({type(error).__name__}); "
                                 "delete it to run this stage from the start") from None
        if state["config"] != asdict(cfg) or state.get("settings") != settings:
            raise ValueError(f"{path} was written with other training settings; remove it or use the same ones")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, log = state["step"], state["log"]
    model.train()
    for step in tqdm(range(start, cfg.steps), desc="training", initial=start, total=cfg.steps, disable=not progress):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, cfg)
        loss, metrics = loss_fn(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        log.append({"step": step, "loss": loss.item(), "grad_norm": float(grad_norm), "lr": learning_rate(step, cfg), **metrics})
        if on_log is not None:
            on_log(step, log[-1])
        last = step + 1 == cfg.steps
        if path is not None and (last or (step + 1) % cfg.checkpoint_every == 0):
            with atomic_path(path) as tmp:
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step + 1,
                            "log": log, "config": asdict(cfg), "settings": settings}, tmp)
    model.eval()
    return log


def batches(generator_seed: int, step: int, size: int, total: int, device) -> torch.Tensor:
    """Indices of the batch of ``step``: a function of (seed, step) only, so resumed runs match."""
    g = torch.Generator().manual_seed(generator_seed * 1_000_003 + step)
    return torch.randint(0, total, (size,), generator=g).to(device)
