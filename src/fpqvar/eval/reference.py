"""Reference batches in the OpenAI evaluator's `.npz` layout: `arr_0` images and precomputed statistics."""

from __future__ import annotations

import pathlib
import zipfile

import numpy as np

from ..atomic import atomic_path
from ..errors import UserInputError
from .metrics import FeatureStatistics


def load_images(path: str | pathlib.Path) -> np.ndarray:
    """`arr_0` of an `.npz` (N, H, W, 3) uint8, or every PNG of a folder (sorted by name; hidden files, such as an
    interrupted run's temporary files, are skipped). No images at all is an error."""
    path = pathlib.Path(path)
    if path.is_dir():
        from PIL import Image

        files = sorted(f for f in path.glob("*.png") if not f.name.startswith("."))
        if not files:
            raise UserInputError(f"{path} holds no .png files: nothing to evaluate")
        return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; supply a folder of PNGs or an .npz with arr_0")
    if path.suffix != ".npz":
        raise UserInputError(f"{path} is not a folder of PNGs or an .npz; save images with np.savez(path, arr_0=images)")
    with open(path, "rb") as handle:  # closed on every path, also when np.load fails half-way
        try:
            data = np.load(handle)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise UserInputError(f"{path} cannot be read as an .npz (truncated or corrupt: {error})") from None
        with data:
            if "arr_0" not in data:
                raise UserInputError(f"{path} has no arr_0 (keys: {sorted(data.files)}); it is not a sample or reference batch")
            images = data["arr_0"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise UserInputError(f"arr_0 of {path} must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if len(images) == 0:
        raise UserInputError(f"arr_0 of {path} holds 0 images: nothing to evaluate")
    return images


def load_statistics(path: str | pathlib.Path) -> dict[str, FeatureStatistics]:
    """The precomputed `mu`/`sigma` (pool features) and `mu_s`/`sigma_s` (spatial) of a reference batch, if present."""
    with np.load(path) as data:
        found = {}
        for name, (mu, sigma) in {"pool": ("mu", "sigma"), "spatial": ("mu_s", "sigma_s")}.items():
            if mu in data and sigma in data:
                found[name] = FeatureStatistics(data[mu], data[sigma])
        return found


def save_reference(path: str | pathlib.Path, images: np.ndarray, pool: FeatureStatistics, spatial: FeatureStatistics) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, arr_0=images, mu=pool.mu, sigma=pool.sigma, mu_s=spatial.mu, sigma_s=spatial.sigma)
