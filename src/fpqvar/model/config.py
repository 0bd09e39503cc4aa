"""Configurations of the released VAR models and of small ones (ours and tests'). var-spec.md sections 1.1, 2.1."""

from __future__ import annotations

from dataclasses import asdict, dataclass

PATCH_NUMS_256 = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
PATCH_NUMS_512 = (1, 2, 3, 4, 6, 9, 13, 18, 24, 32)


@dataclass(frozen=True)
class VQVAEConfig:
    """The multi-scale VQVAE. The released `vae_ch160v4096z32.pth` is the default."""

    vocab_size: int = 4096
    latent_channels: int = 32
    channels: int = 160
    channel_multipliers: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    patch_nums: tuple[int, ...] = PATCH_NUMS_256
    quant_resi: float = 0.5
    share_quant_resi: int = 4
    beta: float = 0.25
    in_channels: int = 3
    using_sa: bool = True
    using_mid_sa: bool = True

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.channel_multipliers) - 1)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class VARConfig:
    """The VAR transformer: width 64 * depth and one head per 64 channels unless given."""

    depth: int = 16
    width: int | None = None
    heads: int | None = None
    patch_nums: tuple[int, ...] = PATCH_NUMS_256
    vocab_size: int = 4096
    latent_channels: int = 32
    num_classes: int = 1000
    shared_aln: bool = False
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6
    cond_drop_rate: float = 0.1
    drop_path_rate: float | None = None  # default 0.1 * depth / 24, as build_vae_var

    @property
    def C(self) -> int:
        return self.width if self.width is not None else 64 * self.depth

    @property
    def num_heads(self) -> int:
        return self.heads if self.heads is not None else self.C // 64

    @property
    def hidden(self) -> int:
        return round(self.C * self.mlp_ratio)

    @property
    def drop_path(self) -> float:
        return 0.1 * self.depth / 24 if self.drop_path_rate is None else self.drop_path_rate

    @property
    def num_tokens(self) -> int:
        return sum(pn * pn for pn in self.patch_nums)

    def to_dict(self) -> dict:
        return asdict(self)


RELEASED_VAR = {
    "d16": VARConfig(depth=16),
    "d20": VARConfig(depth=20),
    "d24": VARConfig(depth=24),
    "d30": VARConfig(depth=30),
    "d36": VARConfig(depth=36, shared_aln=True, patch_nums=PATCH_NUMS_512),
}
RELEASED_VAE = VQVAEConfig()


def released_var_config(name: str) -> VARConfig:
    """``d16``, ``d20``, ``d24``, ``d30`` (256 px) or ``d36`` (512 px, shared AdaLN)."""
    key = name.removeprefix("var_")
    if key not in RELEASED_VAR:
        raise ValueError(f"unknown released VAR {name!r}; choose one of {sorted(RELEASED_VAR)}")
    return RELEASED_VAR[key]
