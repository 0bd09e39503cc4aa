"""The one mapping from stored images to model input, shared by the VQVAE, the VAR's tokens and the classifier."""

from __future__ import annotations

import numpy as np
import torch


def images_to_signed_nchw(images_nhwc_uint8: np.ndarray | torch.Tensor, device=None) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [-1, 1]."""
    return torch.as_tensor(images_nhwc_uint8).to(device).permute(0, 3, 1, 2).float().div(127.5).sub(1).contiguous()
