"""A small digit classifier trained by our code: the feature extractor of the embedded model's proxy metrics.

Inception-v3 weights cannot be downloaded here, so metrics of the embedded model use this network in its place,
behind the same interface (uint8 images in; `pool`, `probs`, `spatial` features out). Its numbers are proxies and
are always labelled so ("classifier-FID", "classifier-IS"): they rank models on our dataset, they are not
comparable with any Inception-based number of the paper.

The roles mirror the evaluator's Inception taps: `pool` is the 128-d penultimate layer (pool_3), `probs` the
softmax over the ten digits, `spatial` the first 8 channels of the 8x8 feature map (as mixed_6/conv's first 7).
"""

from __future__ import annotations

import pathlib
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints import check_state_dict, config_from_metadata, load_state_dict, save_safetensors
from ..datasets import images_to_signed_nchw

CONFIG_METADATA_KEY = "fpqvar.classifier_config"


@dataclass(frozen=True)
class ClassifierConfig:
    num_classes: int = 10
    channels: tuple[int, int, int] = (32, 64, 128)
    features: int = 128
    spatial_channels: int = 8
    image_size: int = 32

    def to_dict(self) -> dict:
        return asdict(self)


def _conv_pair(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU())


class DigitClassifier(nn.Module):
    """Three conv stages (32 -> 16 -> 8 -> 4 px), a 128-d feature layer and a linear head."""

    def __init__(self, config: ClassifierConfig | None = None):
        super().__init__()
        self.config = config or ClassifierConfig()
        c1, c2, c3 = self.config.channels
        self.stage1, self.stage2, self.stage3 = _conv_pair(3, c1), _conv_pair(c1, c2), _conv_pair(c2, c3)
        side = self.config.image_size // 8
        self.features = nn.Linear(c3 * side * side, self.config.features)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(self.config.features, self.config.num_classes)

    def taps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits and the feature taps of normalised images (N, 3, H, W)."""
        if x.shape[-2:] != (self.config.image_size,) * 2:
            raise ValueError(f"the classifier takes {self.config.image_size}x{self.config.image_size} images, got {tuple(x.shape[-2:])}")
        spatial_map = F.max_pool2d(self.stage2(F.max_pool2d(self.stage1(x), 2)), 2)  # 8x8
        h = F.max_pool2d(self.stage3(spatial_map), 2)
        pool = F.relu(self.features(h.flatten(1)))
        return {"logits": self.head(self.dropout(pool)), "pool": pool,
                "spatial": spatial_map[:, : self.config.spatial_channels].flatten(1)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.taps(x)["logits"]

    @torch.no_grad()
    def extract(self, images_nhwc_uint8: torch.Tensor) -> dict[str, torch.Tensor]:
        """The evaluator's interface: uint8 (N, H, W, 3) -> pool (N, 128), probs (N, 10), spatial (N, 512)."""
        device = next(self.parameters()).device
        out = self.taps(images_to_signed_nchw(images_nhwc_uint8, device))
        return {"pool": out["pool"], "probs": out["logits"].softmax(dim=-1), "spatial": out["spatial"]}


def save_classifier(model: DigitClassifier, path: str | pathlib.Path, dtype: torch.dtype | None = None) -> None:
    save_safetensors(model, path, dtype=dtype, config_key=CONFIG_METADATA_KEY)


def load_classifier(path: str | pathlib.Path, device: str | torch.device = "cpu") -> DigitClassifier:
    """The classifier of a `.safetensors` file written by `save_classifier`, in float32 and eval mode."""
    path = pathlib.Path(path)
    state = load_state_dict(path, device)
    config = config_from_metadata(path, ClassifierConfig, CONFIG_METADATA_KEY) or ClassifierConfig()
    model = DigitClassifier(config).to(device)
    check_state_dict(model, state, str(path))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval()
