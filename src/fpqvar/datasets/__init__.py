"""Image datasets that install offline with a package (the embedded default model trains on them)."""

from .images import images_to_signed_nchw
from .mnist import DatasetMissingError, load_mnist

__all__ = ["DatasetMissingError", "images_to_signed_nchw", "load_mnist"]
