"""Rotations that spread outliers: the full (HT) and group-wise (GHT) Hadamard transforms of the paper (`ght`),
built on Hadamard matrices from Sylvester's and Paley's constructions (`hadamard`)."""

from .ght import Rotation, block_diagonal_hadamard, group_hadamard, orthogonal_hadamard, random_signs
from .hadamard import hadamard, paley_type_1, paley_type_2, sylvester

__all__ = ["Rotation", "block_diagonal_hadamard", "group_hadamard", "orthogonal_hadamard", "random_signs", "hadamard",
           "paley_type_1", "paley_type_2", "sylvester"]
