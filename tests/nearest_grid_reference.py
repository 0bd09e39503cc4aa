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
