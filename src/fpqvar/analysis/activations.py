"""Layer inputs of a VAR and how quantization grids fit them (paper Sec. III, Fig. 3).

Calibration inputs come from the library's capture (:func:`fpqvar.methods.calibration.capture_activations`)
with the classes drawn as the paper draws its 100 calibration samples (random classes, one image each).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..formats import DualFormat, Format, get_format
from ..methods.calibration import ActivationStore, calibration_classes, capture_activations
from ..model.hooks import block_linear_names
from ..model.var import VAR
from ..model.vqvae import VQVAE

# The paper's "between -0.17 and 0" is GELU's negative range: its minimum, rounded. VAR's FFN uses the tanh form,
# whose minimum is -0.170041 (exact GELU: -0.16997); counting from -0.17 exactly would put the values between
# the two (GELU is flat there, so they are many) outside the range. The shares use the float32 minimum, rounded down.
PAPER_FC2_BOUND = -0.17
GELU_MINIMUM = -0.1700408


def capture_layer_inputs(
    var: VAR, vae: VQVAE, kinds: tuple[str, ...], *, samples: int, seed: int, batch_size: int = 16, progress: bool = False
) -> tuple[ActivationStore, list[int]]:
    """Inputs of every block's ``kinds`` layers at every step, for ``samples`` random classes (paper Sec. IV-C:
    random samples, one image each; the sampler seeded with ``seed``). Returns the store and the classes."""
    classes = calibration_classes(samples, var.num_classes, mode="random", seed=seed)
    store = capture_activations(var, vae, block_linear_names(var, kinds), classes, seed=seed,
                                batch_size=batch_size, progress=progress)
    return store, classes


def flatten_steps(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The values of every step's (N, L_k, C) tensor as one (tokens, C) matrix."""
    return torch.cat([t.reshape(-1, t.shape[-1]) for t in tensors])


@dataclass(frozen=True)
class ValueShares:
    """Where the values of a tensor lie relative to ``low`` and 0 (fractions that sum to 1)."""

    below_low: float
    low_to_zero: float  # low <= x <= 0
    positive: float  # x > 0
    low: float


def value_shares(x: torch.Tensor, low: float = GELU_MINIMUM) -> ValueShares:
    """Shares of values below ``low``, in [low, 0] and above 0 (the paper's FC2 input: 97.6% / 2.4% for [-0.17, 0]
    and > 0)."""
    x = x.reshape(-1)
    n = x.numel()
    if n == 0:
        raise ValueError("value_shares needs a non-empty tensor")
    positive = int((x > 0).sum())
    low_to_zero = int(((x >= low) & (x <= 0)).sum())
    return ValueShares((n - positive - low_to_zero) / n, low_to_zero / n, positive / n, low)


def per_tensor_levels(x: torch.Tensor, fmt: Format | str) -> torch.Tensor:
    """The values a tensor quantized with one absmax scale can take (Fig. 3 draws them over the distribution).

    Single format: grid * max|x| / max_value. Dual format (AFPQ, DFQ): the negative grid scaled by
    max(-x) / -min_value and the positive grid by max(x) / max_value, as Alg. 1 scales the two halves."""
    fmt = get_format(fmt)
    x = x.double()
    grid = fmt.grid.double()
    if isinstance(fmt, DualFormat):
        negative = grid[grid <= 0] * (x.clamp(max=0).abs().max() / -fmt.min_value)
        positive = grid[grid >= 0] * (x.clamp(min=0).max() / fmt.max_value)
        return torch.unique(torch.cat([negative, positive]))
    return torch.unique(grid * (x.abs().max() / fmt.max_value))


def levels_in_range(levels: torch.Tensor, low: float, high: float) -> int:
    """How many of ``levels`` lie in [low, high]: e.g. the levels that serve the FC2 input's dense negative part."""
    return int(((levels >= low) & (levels <= high)).sum())


def kurtosis(x: torch.Tensor) -> float:
    """Pearson kurtosis E[(x - mean)^4] / var^2 of all values (3 for a normal distribution), in float64."""
    x = x.double().reshape(-1)
    centred = x - x.mean()
    variance = centred.pow(2).mean()
    if variance == 0:
        return math.nan
    return float(centred.pow(4).mean() / variance.pow(2))
