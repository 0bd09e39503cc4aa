"""Calibration data (paper Sec. IV-C, Fig. 5b): the inputs of chosen layers at every generation step.

For each step the inputs of all samples are concatenated, giving per layer K tensors of shape
(samples x 2 CFG halves, L_k, C). Tensors stay in memory up to a budget, then spill to disk.
"""

from __future__ import annotations

import contextlib
import pathlib
import tempfile
from collections import defaultdict

import torch
from tqdm import tqdm

from ..model.hooks import observe_inputs
from ..model.var import VAR
from ..model.vqvae import VQVAE


def calibration_classes(num_samples: int = 100, num_classes: int = 1000, mode: str = "random", seed: int = 0) -> list[int]:
    """The paper draws 100 samples at random; the released code uses classes 0..99, one image each."""
    if mode == "first":
        return list(range(num_samples))
    if mode != "random":
        raise ValueError(f"mode must be 'random' (paper) or 'first' (released code), got {mode!r}")
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_classes, (num_samples,), generator=g).tolist()


class ActivationStore:
    """Inputs per (layer name, step), in memory or spilled to disk beyond ``memory_budget`` bytes."""

    def __init__(self, memory_budget: int = 2**31, spill_dir: str | pathlib.Path | None = None):
        self.memory_budget, self.in_memory = memory_budget, 0
        self._spill_dir = pathlib.Path(spill_dir) if spill_dir else None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._parts: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))

    def add(self, name: str, step: int, x: torch.Tensor) -> None:
        x = x.detach().to("cpu", torch.float32)
        if self.in_memory + x.numel() * 4 <= self.memory_budget:
            self.in_memory += x.numel() * 4
            self._parts[name][step].append(x)
            return
        if self._spill_dir is None:
            self._tmp = self._tmp or tempfile.TemporaryDirectory(prefix="fpqvar-calibration-")
            self._spill_dir = pathlib.Path(self._tmp.name)
        path = self._spill_dir / f"{name}.{step}.{len(self._parts[name][step])}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(x, path)
        self._parts[name][step].append(path)

    @property
    def names(self) -> list[str]:
        return list(self._parts)

    def steps(self, name: str) -> list[int]:
        return sorted(self._parts[name])

    def get(self, name: str, step: int) -> torch.Tensor:
        """All samples' inputs at one step, concatenated along the batch: (N, L_k, C)."""
        parts = [p if isinstance(p, torch.Tensor) else torch.load(p, weights_only=True) for p in self._parts[name][step]]
        return torch.cat(parts, dim=0)

    def per_step(self, name: str) -> list[torch.Tensor]:
        return [self.get(name, step) for step in self.steps(name)]


def capture_activations(
    var: VAR,
    vae: VQVAE,
    names: list[str],
    classes: list[int],
    seed: int = 0,
    batch_size: int = 1,
    amp_dtype: torch.dtype | None = None,
    store: ActivationStore | None = None,
    progress: bool = True,
    **sampling,
) -> ActivationStore:
    """Generate one image per class (seed ``seed`` for every batch, as the released calibration) and record
    the inputs of ``names`` at every step. The model must be the full-precision one."""
    store = store or ActivationStore()
    device = var.pos_1LC.device
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
    batches = [classes[i : i + batch_size] for i in range(0, len(classes), batch_size)]
    with observe_inputs(var, names, lambda name, step, x: store.add(name, step, x)):
        for labels in tqdm(batches, desc="calibration", disable=not progress):
            with torch.inference_mode(), autocast:
                var.generate(vae, len(labels), labels=torch.tensor(labels, device=device), seed=seed, **sampling)
    return store
