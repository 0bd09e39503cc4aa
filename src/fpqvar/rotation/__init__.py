"""Rotations that spread outliers: full (HT) and group-wise (GHT) Hadamard transforms."""

from .hadamard import block_diagonal_hadamard, hadamard, orthogonal_hadamard, paley_type_1, paley_type_2, sylvester

__all__ = ["block_diagonal_hadamard", "hadamard", "orthogonal_hadamard", "paley_type_1", "paley_type_2", "sylvester"]
