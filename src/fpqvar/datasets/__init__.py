"""Image datasets that install offline with a package (the embedded default model trains on them)."""

from .mnist import DatasetMissingError, load_mnist

__all__ = ["DatasetMissingError", "load_mnist"]
