"""Calibration data (paper Sec. IV-C, Fig. 5b): the inputs of chosen layers at every generation step.

For each step the inputs of all samples are concatenated, giving per layer K tensors of shape
(samples x 2 CFG halves, L_k, C). A store keeps them in the dtype they arrive in, where they are used (the GPU
when they fit there, else pinned host memory), within a memory budget. Disk is used only when asked for
(``spill_dir``), after checking that the estimated size fits the free space; whatever was spilled is deleted on
every exit path. GALT itself does not need a store: it streams the model block by block (``methods.galt``).
"""

from __future__ import annotations

import contextlib
import pathlib
import shutil
import tempfile
import weakref
from collections import defaultdict

import torch
from tqdm import tqdm

from ..model.hooks import observe_inputs
from ..model.var import VAR
from ..model.vqvae import VQVAE

GIB = 2**30


class CalibrationSpaceError(ValueError):
    """The calibration set does not fit where it was asked to go (memory budget, free disk)."""


def calibration_classes(num_samples: int = 100, num_classes: int = 1000, mode: str = "random", seed: int = 0) -> list[int]:
    """The paper draws 100 samples at random; the released code uses classes 0..99, one image each."""
    if mode == "first":
        return list(range(num_samples))
    if mode != "random":
        raise ValueError(f"mode must be 'random' (paper) or 'first' (released code), got {mode!r}")
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_classes, (num_samples,), generator=g).tolist()


def calibration_bytes(var: VAR, names: list[str], num_samples: int) -> int:
    """Upper estimate of a store's size: every named layer's input at every step of ``num_samples`` images
    (both CFG halves), at the element size of the model's parameters (autocast only makes them smaller)."""
    element = next(var.parameters()).element_size()
    tokens = 2 * num_samples * sum(pn * pn for pn in var.patch_nums)
    return sum(tokens * var.get_submodule(name).in_features * element for name in names)


def available_host_bytes() -> int:
    """Host memory the kernel says can be taken without swapping (MemAvailable)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        line = next(line for line in pathlib.Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemAvailable:"))
        return int(line.split()[1]) * 1024
    return 0


def choose_storage(nbytes: int, device: torch.device, *, headroom: float = 0.5) -> torch.device:
    """Where ``nbytes`` of activations should live: ``device`` itself when they fit in ``headroom`` of its free
    memory (CUDA), else the host (pinned when ``device`` is CUDA); one clear error when neither can hold them."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if nbytes <= headroom * free:
            return device
    host = available_host_bytes()
    if host and nbytes > headroom * host:
        raise CalibrationSpaceError(
            f"the calibration activations need {nbytes / GIB:.1f} GiB; {device} and host memory have "
            f"{headroom * host / GIB:.1f} GiB to spare: use fewer calibration samples"
        )
    return torch.device("cpu")


def to_storage(x: torch.Tensor, storage: torch.device | None) -> torch.Tensor:
    """``x`` moved to ``storage`` (None: left where it is); a GPU tensor sent to the host lands in pinned memory,
    so that moving it back for learning is a fast asynchronous copy."""
    if storage is None or x.device == storage:
        return x
    if storage.type == "cpu" and x.is_cuda:
        return torch.empty(x.shape, dtype=x.dtype, pin_memory=True).copy_(x)
    return x.to(storage)


def _remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


class ActivationStore:
    """Inputs per (layer name, step) in their own dtype on ``device`` (default: where they come from), up to
    ``memory_budget`` bytes (default: no limit). Beyond the budget they go to a private folder inside
    ``spill_dir`` when one is given, else the store refuses with :class:`CalibrationSpaceError`. ``close()`` (or
    leaving a ``with`` block, or garbage collection) deletes every spilled file."""

    def __init__(self, memory_budget: int | None = None, spill_dir: str | pathlib.Path | None = None,
                 device: str | torch.device | None = None):
        self.memory_budget, self.in_memory = memory_budget, 0
        self.device = None if device is None else torch.device(device)
        self._spill_root = None if spill_dir is None else pathlib.Path(spill_dir)
        self._spill_dir: pathlib.Path | None = None
        self._parts: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))

    def __enter__(self) -> ActivationStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Delete the spilled files (in-memory tensors stay readable)."""
        if self._spill_dir is not None:
            self._finalizer()
            self._spill_dir = None

    def reserve(self, nbytes: int) -> None:
        """Check before a run that ``nbytes`` more will fit: in the budget, or else on the spill disk."""
        room = float("inf") if self.memory_budget is None else self.memory_budget - self.in_memory
        if nbytes <= room:
            return
        if self._spill_root is None:
            raise CalibrationSpaceError(
                f"the calibration activations need {nbytes / GIB:.2f} GiB, {room / GIB:.2f} GiB left in the memory "
                "budget: raise the budget, use fewer samples, or give a spill folder (spill_dir) with enough space"
            )
        self._spill_root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self._spill_root).free
        if nbytes - room > free:
            raise CalibrationSpaceError(
                f"the calibration activations need {(nbytes - room) / GIB:.2f} GiB on disk beyond the memory budget; "
                f"{self._spill_root} has {free / GIB:.2f} GiB free: free space, choose another spill folder or use fewer samples"
            )

    def add(self, name: str, step: int, x: torch.Tensor) -> None:
        x = to_storage(x.detach(), self.device)
        nbytes = x.numel() * x.element_size()
        if self.memory_budget is None or self.in_memory + nbytes <= self.memory_budget:
            self.in_memory += nbytes
            self._parts[name][step].append(x)
            return
        if self._spill_root is None:
            self.reserve(nbytes)  # raises the error that says what to do
        if self._spill_dir is None:
            self._spill_root.mkdir(parents=True, exist_ok=True)
            self._spill_dir = pathlib.Path(tempfile.mkdtemp(prefix="fpqvar-calibration-", dir=self._spill_root))
            self._finalizer = weakref.finalize(self, _remove_tree, str(self._spill_dir))
        path = self._spill_dir / f"{name}.{step}.{len(self._parts[name][step])}.pt"
        try:
            torch.save(x.cpu(), path)
        except (OSError, RuntimeError) as error:  # a full disk surfaces as either, depending on where it fails
            self.close()
            raise CalibrationSpaceError(f"spilling calibration activations to {self._spill_root} failed ({error}); "
                                        "the spilled files were deleted: free space or use fewer samples") from None
        self._parts[name][step].append(path)

    @property
    def names(self) -> list[str]:
        return list(self._parts)

    def steps(self, name: str) -> list[int]:
        return sorted(self._parts[name])

    def get(self, name: str, step: int, dtype: torch.dtype | None = torch.float32) -> torch.Tensor:
        """All samples' inputs at one step, concatenated along the batch: (N, L_k, C), in ``dtype`` (None: as stored)."""
        parts = [p if isinstance(p, torch.Tensor) else torch.load(p, weights_only=True) for p in self._parts[name][step]]
        x = torch.cat(parts, dim=0)
        return x if dtype is None else x.to(dtype)

    def per_step(self, name: str, dtype: torch.dtype | None = torch.float32) -> list[torch.Tensor]:
        return [self.get(name, step, dtype) for step in self.steps(name)]


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
    the inputs of ``names`` at every step. The model must be the full-precision one. The store's room is
    checked before the first image; on any failure its spilled files are deleted."""
    store = store or ActivationStore()
    store.reserve(calibration_bytes(var, names, len(classes)))
    device = var.pos_1LC.device
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
    batches = [classes[i : i + batch_size] for i in range(0, len(classes), batch_size)]
    try:
        with observe_inputs(var, names, lambda name, step, x: store.add(name, step, x)):
            for labels in tqdm(batches, desc="calibration", disable=not progress):
                with torch.no_grad(), autocast:
                    var.generate(vae, len(labels), labels=torch.tensor(labels, device=device), seed=seed, **sampling)
    except BaseException:
        store.close()
        raise
    return store
