"""The TF-compatible Inception-v3 of FID (2015-12-05 weights, PyTorch form), implemented from INCEPTION_SPEC.md.

It loads the weight file that pytorch-fid and torch-fidelity use (`pt_inception-2015-12-05-6726825d.pth`,
supplied by the user: nothing is downloaded) strictly, and returns the OpenAI evaluator's features:
pool_3 (2048, FID and precision/recall), the softmax of the bias-free 1008-way logits (IS), and
`mixed_6/conv` = Mixed_6d's 1x1 branch, first 7 channels, channels-last, flattened (2023, sFID).
Inputs follow the TF graph: uint8 images, TF1 bilinear resize to 299 (no half-pixel offset), (x - 128) / 128.
"""

from __future__ import annotations

import pathlib

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints import load_state_dict
from ..errors import UserInputError

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"


class ConvUnit(nn.Module):
    """conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel, stride: int = 1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def tf_average_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride 1 'SAME' average pool dividing by the in-image pixels only, as TF does."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = ConvUnit(cin, 64, 1)
        self.branch5x5_1 = ConvUnit(cin, 48, 1)
        self.branch5x5_2 = ConvUnit(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvUnit(cin, 64, 1)
        self.branch3x3dbl_2 = ConvUnit(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvUnit(96, 96, 3, padding=1)
        self.branch_pool = ConvUnit(cin, pool_features, 1)

    def forward(self, x):
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(tf_average_pool(x)),
        ], 1)


class BlockB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = ConvUnit(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvUnit(cin, 64, 1)
        self.branch3x3dbl_2 = ConvUnit(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvUnit(96, 96, 3, stride=2)

    def forward(self, x):
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, 3, stride=2),
        ], 1)


class BlockC(nn.Module):
    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = ConvUnit(cin, 192, 1)
        self.branch7x7_1 = ConvUnit(cin, c7, 1)
        self.branch7x7_2 = ConvUnit(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvUnit(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvUnit(cin, c7, 1)
        self.branch7x7dbl_2 = ConvUnit(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvUnit(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvUnit(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvUnit(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvUnit(cin, 192, 1)

    def branches(self, x) -> list[torch.Tensor]:
        double = x
        for unit in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            double = unit(double)
        return [
            self.branch1x1(x),
            self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
            double,
            self.branch_pool(tf_average_pool(x)),
        ]

    def forward(self, x):
        return torch.cat(self.branches(x), 1)


class BlockD(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = ConvUnit(cin, 192, 1)
        self.branch3x3_2 = ConvUnit(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvUnit(cin, 192, 1)
        self.branch7x7x3_2 = ConvUnit(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvUnit(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvUnit(192, 192, 3, stride=2)

    def forward(self, x):
        tower = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), tower, F.max_pool2d(x, 3, stride=2)], 1)


class BlockE(nn.Module):
    """Mixed_7b (average pool excluding padding) and Mixed_7c (a max pool: a quirk of the 2015 TF graph)."""

    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = ConvUnit(cin, 320, 1)
        self.branch3x3_1 = ConvUnit(cin, 384, 1)
        self.branch3x3_2a = ConvUnit(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvUnit(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvUnit(cin, 448, 1)
        self.branch3x3dbl_2 = ConvUnit(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvUnit(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvUnit(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvUnit(cin, 192, 1)

    def forward(self, x):
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else tf_average_pool(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(a), self.branch3x3_2b(a),
            self.branch3x3dbl_3a(b), self.branch3x3dbl_3b(b),
            self.branch_pool(pooled),
        ], 1)


class FIDInceptionV3(nn.Module):
    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = ConvUnit(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvUnit(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvUnit(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvUnit(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvUnit(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = BlockA(192, 32), BlockA(256, 64), BlockA(288, 64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e = (BlockC(768, c7) for c7 in (128, 160, 160, 192))
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b, self.Mixed_7c = BlockE(1280, max_pool=False), BlockE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (N, 3, 299, 299) already normalised. Returns pool (N, 2048), probs (N, 1008), spatial (N, 2023)."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)
        x = self.Mixed_6a(self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x))))
        x = self.Mixed_6c(self.Mixed_6b(x))
        branches = self.Mixed_6d.branches(x)
        spatial = branches[0][:, :7].permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # TF mixed_6/conv, NHWC order
        x = self.Mixed_6e(torch.cat(branches, 1))
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
        pool = x.mean(dim=(2, 3))
        probs = (pool @ self.fc.weight.T).softmax(dim=1)  # the evaluator's logits carry no bias
        return {"pool": pool, "probs": probs, "spatial": spatial}


def tf1_resize_bilinear(x: torch.Tensor, size: int = 299) -> torch.Tensor:
    """TF1 `ResizeBilinear` (align_corners=False, no half-pixel centres): source = destination * in / out."""
    def axis(n_in):
        s = torch.arange(size, dtype=torch.float32, device=x.device) * torch.tensor(n_in / size, dtype=torch.float32)
        low = s.floor().long()
        return low, (low + 1).clamp(max=n_in - 1), (s - low).to(x.dtype)

    (y0, y1, fy), (x0, x1, fx) = axis(x.shape[-2]), axis(x.shape[-1])
    top = x[..., y0, :]
    bottom = x[..., y1, :]
    top = top[..., x0] + (top[..., x1] - top[..., x0]) * fx
    bottom = bottom[..., x0] + (bottom[..., x1] - bottom[..., x0]) * fx
    return top + (bottom - top) * fy[:, None]


def preprocess(images_nhwc_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, 299, 299) in the network's input range."""
    x = torch.as_tensor(images_nhwc_uint8).permute(0, 3, 1, 2).float()
    return (tf1_resize_bilinear(x) - 128) / 128


def load_inception(path: str | pathlib.Path, device: str | torch.device = "cpu") -> FIDInceptionV3:
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"Inception weights not found at {path}: supply {WEIGHTS_FILE} (the PyTorch conversion of the TF "
            "2015-12-05 Inception used by pytorch-fid and torch-fidelity); fpqvar never downloads it"
        )
    state = dict(load_state_dict(path, device))  # a plain dict: BatchNorm fills in num_batches_tracked when the file has none
    model = FIDInceptionV3().to(device)
    expected = {k: v.shape for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    found = {k: v.shape for k, v in state.items() if not k.endswith("num_batches_tracked")}
    if expected != found:
        wrong = sorted(set(expected) ^ set(found)) or sorted(k for k in expected if expected[k] != found[k])
        raise UserInputError(f"{path} is not {WEIGHTS_FILE}: {len(wrong)} keys missing, unexpected or of another shape "
                             f"(e.g. {wrong[0]})")
    model.load_state_dict(state, strict=True)
    return model.eval()
