"""Generating many images: a deterministic plan of batches, split over ranks, written resumably.

Every image is fixed by its batch (class, batch index, seed, batch size), never by which rank drew it,
so 1 or N processes produce the same files. The seed of batch j of a class is ``seed + j``, which covers
both of the paper's protocols: 256 px is one batch of 50 per class with seed 0; 512 px is five batches of
10 with seeds 10..14. Each PNG is written to a temporary file and renamed, and a batch whose files all
exist is skipped, so an interrupted run resumes without losing or duplicating an image. Temporary files are
hidden and end in `.tmp` (never `.png`), and `remove_partial_images` deletes those a killed run left behind.
"""

from __future__ import annotations

import contextlib
import pathlib
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .atomic import atomic_path, remove_leftovers
from .eval.evaluate import evaluation_order
from .model import VAR, VQVAE


@dataclass(frozen=True)
class SampleBatch:
    class_id: int
    batch_index: int
    seed: int
    first_image: int
    count: int

    def image_indices(self) -> range:
        return range(self.first_image, self.first_image + self.count)


def plan_batches(classes: list[int], images_per_class: int, batch_size: int, seed: int) -> list[SampleBatch]:
    """Every batch of the run, class by class."""
    if images_per_class < 1 or batch_size < 1:
        raise ValueError("images per class and batch size must be positive")
    batches = []
    for class_id in classes:
        for j, first in enumerate(range(0, images_per_class, batch_size)):
            batches.append(SampleBatch(class_id, j, seed + j, first, min(batch_size, images_per_class - first)))
    return batches


def batches_for_rank(batches: list[SampleBatch], rank: int, world_size: int) -> list[SampleBatch]:
    """Round-robin share of one rank: together the ranks cover every batch exactly once."""
    return batches[rank::world_size]


IMAGE_NAME = r"class\d+_img\d+\.png"  # the regex every `image_path` name matches


def image_path(out_dir: pathlib.Path, class_id: int, image_index: int) -> pathlib.Path:
    return out_dir / f"class{class_id}_img{image_index}.png"


def remove_partial_images(out_dir: str | pathlib.Path) -> int:
    """Delete the half-written images an interrupted run left in ``out_dir`` (its temp files); returns how many.
    Call it before any process starts writing there."""
    return len(remove_leftovers(out_dir, IMAGE_NAME))


def is_done(out_dir: pathlib.Path, batch: SampleBatch) -> bool:
    return all(image_path(out_dir, batch.class_id, i).exists() for i in batch.image_indices())


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8 by truncation, as the original's `mul(255)` + cast."""
    return images.mul(255).permute(0, 2, 3, 1).float().cpu().numpy().astype(np.uint8)


def save_png(array: np.ndarray, path: pathlib.Path) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def _autocast(var: VAR, amp_dtype: torch.dtype | None):
    """Autocast to ``amp_dtype`` on the model's device, or nothing for float32."""
    return torch.autocast(var.pos_1LC.device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()


def generate_batches(
    var: VAR,
    vae: VQVAE,
    batches: list[SampleBatch],
    out_dir: str | pathlib.Path,
    amp_dtype: torch.dtype | None = None,
    *,
    progress: bool = True,
    position: int = 0,
    **sampling,
) -> int:
    """Generate and write every batch not already on disk; returns how many batches were generated."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = [b for b in batches if not is_done(out_dir, b)]
    autocast = _autocast(var, amp_dtype)
    for batch in tqdm(todo, desc=f"sampling (rank {position})", position=position, disable=not progress):
        with torch.inference_mode(), autocast:
            images = var.generate(vae, batch.count, labels=batch.class_id, seed=batch.seed, **sampling)
        for index, array in zip(batch.image_indices(), to_uint8(images), strict=True):
            save_png(array, image_path(out_dir, batch.class_id, index))
    return len(todo)


def generate_arrays(
    var: VAR,
    vae: VQVAE,
    batches: list[SampleBatch],
    amp_dtype: torch.dtype | None = None,
    *,
    progress: bool = True,
    **sampling,
) -> tuple[np.ndarray, np.ndarray]:
    """The planned images in memory, in plan order: uint8 (N, H, W, 3) and their class labels (N,).

    The same images as `generate_batches` writes for the same plan (each batch seeded alike)."""
    autocast = _autocast(var, amp_dtype)
    images, labels = [], []
    for batch in tqdm(batches, desc="sampling", disable=not progress):
        with torch.inference_mode(), autocast:
            images.append(to_uint8(var.generate(vae, batch.count, labels=batch.class_id, seed=batch.seed, **sampling)))
        labels.append(np.full(batch.count, batch.class_id, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def pack_npz(out_dir: str | pathlib.Path, batches: list[SampleBatch], path: str | pathlib.Path) -> int:
    """Pack every planned image into `arr_0` (N, H, W, 3) uint8, the OpenAI evaluator's input, in
    `evaluation_order` (the same for every run of the same plan)."""
    from PIL import Image

    out_dir = pathlib.Path(out_dir)
    files = [image_path(out_dir, b.class_id, i) for b in batches for i in b.image_indices()]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} planned images are missing (e.g. {missing[0]}); run the sampling again to finish")
    images = np.stack([np.asarray(Image.open(files[i]).convert("RGB")) for i in evaluation_order(len(files))])
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, arr_0=images)
    return len(files)
