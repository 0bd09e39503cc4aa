"""Brute-force nearest-grid rounding: the definition the closed-form quantizer is tested against."""

import torch

from fpqvar.formats import DualFormat


def nearest_on_grid(y: torch.Tensor, grid: torch.Tensor, codes: torch.Tensor, tie: str) -> torch.Tensor:
    """For each y (float64), the nearest grid value; ties by code parity ("even") or direction."""
    distance = (y[:, None] - grid[None, :]).abs()
    candidates = distance == distance.min(1, keepdim=True).values
    first = candidates.float().argmax(1)
    last = grid.numel() - 1 - candidates.flip(1).float().argmax(1)
    if tie == "up":
        pick = last
    elif tie == "down":
        pick = first
    else:
        pick = torch.where(codes[first] % 2 == 0, first, last)
    return grid[pick]


def round_reference(y: torch.Tensor, fmt, tie: str) -> torch.Tensor:
    y = y.to(torch.float64).reshape(-1)
    y = torch.where(torch.isfinite(y), y, 0.0)
    if isinstance(fmt, DualFormat):
        out = torch.empty_like(y)
        for half, grid in ((y <= 0, fmt.negative_grid), (y > 0, fmt.positive_grid)):
            out[half] = nearest_on_grid(y[half], grid, fmt.encode(grid), tie)
        return out
    return nearest_on_grid(y, fmt.grid, fmt.encode(fmt.grid), tie)


def _nearest_by_midpoints(y: torch.Tensor, grid: torch.Tensor, codes: torch.Tensor, tie: str) -> torch.Tensor:
    """Nearest grid value by comparing y with the midpoints (exact in float64): no arithmetic on y at all."""
    midpoints = (grid[1:] + grid[:-1]) / 2
    below = torch.searchsorted(midpoints, y, side="left")  # midpoints strictly below y
    tied = (below < midpoints.numel()) & (midpoints[below.clamp(max=midpoints.numel() - 1)] == y)
    if tie == "up":
        pick = below + tied.long()
    elif tie == "down":
        pick = below
    else:
        pick = torch.where(tied & (codes[below] % 2 == 1), below + 1, below)
    return grid[pick]


def round_exact(y: torch.Tensor, fmt, tie: str) -> torch.Tensor:
    """Exact nearest grid value of each element of y (any float dtype, widened to float64 exactly); +0 for zero."""
    y = y.to(torch.float64).reshape(-1)
    y = torch.where(torch.isfinite(y), y, 0.0)
    if isinstance(fmt, DualFormat):
        out = torch.empty_like(y)
        for half, grid in ((y <= 0, fmt.negative_grid), (y > 0, fmt.positive_grid)):
            out[half] = _nearest_by_midpoints(y[half], grid, fmt.encode(grid), tie)
    else:
        out = _nearest_by_midpoints(y, fmt.grid, fmt.encode(fmt.grid), tie)
    return out + 0.0  # -0.0 -> +0.0


def _round_to(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """float64 -> dtype, correctly rounded (one rounding), back in float64."""
    return x.to(dtype).to(torch.float64)


def fake_quantize_reference(x: torch.Tensor, fmt, tie: str, work: torch.dtype) -> torch.Tensor:
    """What fake_quantize must return for rows ``x`` (one scale per row) with the scale and x / s in ``work``,
    from the definitions alone: each division is formed in float64 and rounded once to ``work`` (for operands
    of at most 24 bits that is the correctly rounded quotient), the grid value is exact (``round_exact``), the
    product level x s is rounded once to float32, saturated at the dtype's largest value, and cast."""
    rows = x.to(torch.float64)
    finite = torch.where(torch.isfinite(rows), rows, 0.0)
    if isinstance(fmt, DualFormat):
        negative = _round_to(finite.clamp(max=0).abs().amax(-1, keepdim=True) / -fmt.min_value, work)
        positive = _round_to(finite.clamp(min=0).amax(-1, keepdim=True) / fmt.max_value, work)
        scale = torch.where(rows > 0, positive, negative)
        levels = round_exact(_round_to(rows / scale, work), fmt, tie).reshape(rows.shape)
    elif getattr(fmt, "symmetric", True):
        scale = _round_to(finite.abs().amax(-1, keepdim=True) / fmt.max_value, work)
        levels = round_exact(_round_to(rows / scale, work), fmt, tie).reshape(rows.shape)
    else:  # asymmetric INT
        low, high = finite.amin(-1, keepdim=True), finite.amax(-1, keepdim=True)
        n = fmt.max_value - fmt.min_value
        scale = _round_to(_round_to(high - low, work).clamp(min=1e-5) / n, work)
        zero_point = round_exact(_round_to(fmt.min_value - _round_to(low / scale, work), work), _INTEGERS, tie)
        zero_point = zero_point.reshape(low.shape)
        levels = round_exact(_round_to(rows / scale, work), _INTEGERS, tie).reshape(rows.shape) + zero_point
        levels = torch.where(torch.isfinite(rows), levels, zero_point).clamp(fmt.min_value, fmt.max_value)
        levels = levels - zero_point
    largest = torch.finfo(x.dtype).max
    return _round_to(levels * scale, torch.float32).clamp(-largest, largest).to(x.dtype)


class _Integers:
    """Every integer in [-2**10, 2**10] as a grid (round_exact on it is round-to-integer)."""

    grid = torch.arange(-(2**10), 2**10 + 1, dtype=torch.float64)

    @staticmethod
    def encode(grid: torch.Tensor) -> torch.Tensor:
        return grid.long()


_INTEGERS = _Integers()
