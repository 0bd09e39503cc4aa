"""The paper's Hadamard transforms (Sec. IV-B, Eq. 4): HT and GHT, as matrices and as the module the model runs.

HT rotates the C input channels of mat_qkv and fc1 by one orthogonal C x C Hadamard matrix H. GHT (Group-wise
Hadamard Transformation) uses H_B = BlockDiag(H_b, ..., H_b) instead: the same orthogonal G x G Hadamard matrix
H_b (G = 128) on every group of G channels, so rotation, quantization and the matmul can run group by group.
HT is GHT with G = C. The activation is multiplied by H_B online (`Rotation`) and H_B^T is folded into the
weight offline (`fpqvar.methods.layers.InputTransform`), so that x W^T = (x H_B)(W H_B)^T exactly.
Random sign flips (diag(s) H_b, s = +-1) keep H_b orthogonal; the matrices are rebuilt from (G, seed), never stored.
"""

from __future__ import annotations

import torch
from torch import nn

from .hadamard import hadamard


def random_signs(n: int, seed: int) -> torch.Tensor:
    """+-1 entries from a private CPU generator (the global RNG is left alone), on the CPU like the cached matrices."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (n,), generator=g, device="cpu").double().mul_(2).sub_(1)


def orthogonal_hadamard(n: int, seed: int | None = None) -> torch.Tensor:
    """diag(s) H / sqrt(n) on the CPU: orthogonal; random sign flips s when ``seed`` is given, else s = 1."""
    H = hadamard(n) / n**0.5
    return H if seed is None else random_signs(n, seed)[:, None] * H


def group_hadamard(width: int, group_size: int, seed: int | None = None) -> torch.Tensor:
    """H_b: the orthogonal ``group_size`` x ``group_size`` block that GHT applies to every group of a ``width``-
    channel activation (``group_size == width``: HT's full matrix), float64 on the CPU."""
    if width % group_size:
        raise ValueError(f"width {width} is not divisible by the GHT group size {group_size}")
    return orthogonal_hadamard(group_size, seed)


def block_diagonal_hadamard(width: int, group_size: int = 128, seed: int | None = None) -> torch.Tensor:
    """H_B = BlockDiag(H_b, ..., H_b), the dense ``width`` x ``width`` GHT matrix of the paper (for checks and golden
    models; the model multiplies by H_b group by group instead, in `Rotation`)."""
    return torch.block_diag(*[group_hadamard(width, group_size, seed)] * (width // group_size))


class Rotation(nn.Module):
    """GHT online: x -> x H_B = x BlockDiag(H_b, ..., H_b), the G x G matrix H_b (``group_hadamard``) applied to
    each group of G channels of the last dimension (G = C: HT).

    A quantized model holds one Rotation, a submodule of every InputTransform that uses it, so all layers read
    one tensor. A shared module (not a shared buffer of each layer) because ``Module.to`` / ``half`` replace
    each module's buffers: a tensor registered in 60 layers would become 60 converted copies, while a module
    reached through 60 parents keeps one buffer slot, converted once. The buffer is not persistent: R follows
    from the recipe (``recipe_rotation``), so checkpoints do not carry it and loading rebuilds it.
    """

    graph_capturable = True  # CUDA graphs may capture it: fpqvar.model.cuda_graphs.graph_blocker

    def __init__(self, matrix: torch.Tensor):
        super().__init__()
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"a rotation must be a square matrix, got shape {tuple(matrix.shape)}")
        self.register_buffer("matrix", matrix.float(), persistent=False)

    @property
    def order(self) -> int:
        return self.matrix.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate the last dimension of ``x`` in ``x``'s dtype."""
        G, shape = self.order, x.shape
        if shape[-1] % G:
            raise ValueError(f"the last dimension {shape[-1]} is not divisible by the rotation's order {G}")
        return (x.reshape(*shape[:-1], shape[-1] // G, G) @ self.matrix.to(x.dtype)).reshape(shape)

    def extra_repr(self) -> str:
        return f"order={self.order}"
