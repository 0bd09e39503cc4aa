"""The multi-scale residual VQVAE of VAR (var-spec.md section 1): encoder, decoder, shared codebook, Phi convs.

Module and parameter names follow the released `vae_ch160v4096z32.pth`, so it loads with strict checking.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import VQVAEConfig


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1 = _group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.norm2 = _group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.nin_shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head attention over the H*W positions, with one fused 1x1 qkv conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).unbind(1)
        weights = torch.softmax(torch.bmm(q.transpose(1, 2), k) * C**-0.5, dim=2)  # (B, HW query, HW key)
        h = torch.bmm(v, weights.transpose(1, 2)).reshape(B, C, H, W)
        return x + self.proj_out(h)


class Downsample2x(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # asymmetric: right and bottom only


class Upsample2x(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class _Level(nn.Module):
    """One resolution level: `block`, `attn` (only at the lowest resolution) and a resampler."""

    def __init__(self, blocks: list[nn.Module], attns: list[nn.Module], resample: nn.Module | None, name: str):
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attns)
        if resample is not None:
            self.add_module(name, resample)
        self.resample = name if resample is not None else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.block):
            h = block(h)
            if len(self.attn):
                h = self.attn[i](h)
        return getattr(self, self.resample)(h) if self.resample else h


class _Mid(nn.Module):
    def __init__(self, channels: int, attention: bool):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels)
        self.attn_1 = AttnBlock(channels) if attention else nn.Identity()
        self.block_2 = ResnetBlock(channels, channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(h)))


class Encoder(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        ch, mult = cfg.channels, cfg.channel_multipliers
        self.conv_in = nn.Conv2d(cfg.in_channels, ch, 3, 1, 1)
        levels, block_in = [], ch
        for level, m in enumerate(mult):
            last = level == len(mult) - 1
            blocks = []
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResnetBlock(block_in, ch * m))
                block_in = ch * m
            attns = [AttnBlock(block_in) for _ in blocks] if last and cfg.using_sa else []
            levels.append(_Level(blocks, attns, None if last else Downsample2x(block_in), "downsample"))
        self.down = nn.ModuleList(levels)
        self.mid = _Mid(block_in, cfg.using_mid_sa)
        self.norm_out = _group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, cfg.latent_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        ch, mult = cfg.channels, cfg.channel_multipliers
        block_in = ch * mult[-1]
        self.conv_in = nn.Conv2d(cfg.latent_channels, block_in, 3, 1, 1)
        self.mid = _Mid(block_in, cfg.using_mid_sa)
        levels = []
        for level in reversed(range(len(mult))):  # built from the lowest resolution up; `up` is indexed by level
            blocks = []
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResnetBlock(block_in, ch * mult[level]))
                block_in = ch * mult[level]
            attns = [AttnBlock(block_in) for _ in blocks] if level == len(mult) - 1 and cfg.using_sa else []
            levels.insert(0, _Level(blocks, attns, Upsample2x(block_in) if level else None, "upsample"))
        self.up = nn.ModuleList(levels)
        self.norm_out = _group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, cfg.in_channels, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Phi(nn.Conv2d):
    """Phi(h) = (1 - r) h + r conv(h), the residual conv applied after each scale's upsampling."""

    def __init__(self, channels: int, ratio: float):
        super().__init__(channels, channels, 3, 1, 1)
        self.ratio = abs(ratio)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.mul(1 - self.ratio) + super().forward(h).mul_(self.ratio)


def phi_index(scale: int, num_scales: int, num_phi: int) -> int:
    """Which of ``num_phi`` shared Phi convs scale ``scale`` of ``num_scales`` uses (argmin over ticks, float64)."""
    margin = 1 / 3 / num_phi if num_phi == 4 else 1 / 2 / num_phi
    ticks = np.linspace(margin, 1 - margin, num_phi)
    at = scale / (num_scales - 1)
    return int(np.argmin(np.abs(ticks - at)))


class PhiPartiallyShared(nn.Module):
    def __init__(self, phis: list[Phi]):
        super().__init__()
        self.qresi_ls = nn.ModuleList(phis)

    def for_scale(self, scale: int, num_scales: int) -> Phi:
        return self.qresi_ls[phi_index(scale, num_scales, len(self.qresi_ls))]


class MultiScaleQuantizer(nn.Module):
    """Residual quantization over the scales of ``patch_nums`` with one shared codebook (keys `quantize.*`)."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.vocab_size, self.Cvae, self.beta = cfg.vocab_size, cfg.latent_channels, cfg.beta
        self.patch_nums = tuple(cfg.patch_nums)
        self.register_buffer("ema_vocab_hit_SV", torch.zeros(len(self.patch_nums), cfg.vocab_size))
        self.quant_resi = PhiPartiallyShared([Phi(self.Cvae, cfg.quant_resi) for _ in range(cfg.share_quant_resi)])
        self.embedding = nn.Embedding(cfg.vocab_size, self.Cvae)

    def nearest_code(self, z_NC: torch.Tensor) -> torch.Tensor:
        """argmin_j |z - e_j|^2 via |z|^2 + |e|^2 - 2 z.e, in float32 (the official formula, for token-exact ties)."""
        z = z_NC.float()
        e = self.embedding.weight.float()
        distance = z.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1)
        distance.addmm_(z, e.T, alpha=-2, beta=1)
        return distance.argmin(dim=1)

    def hit_counts_for(self, stored: torch.Tensor) -> torch.Tensor:
        """What to load in place of a file's hit-count buffer: the file's when its number of scales matches,
        else this model's own (zeros when this model is still on the meta device). The counts are training
        statistics only, so one VAE file serves every scale list."""
        own = self.ema_vocab_hit_SV
        if stored.shape == own.shape:
            return stored
        return torch.zeros(own.shape, device=stored.device) if own.is_meta else own.clone()

    def phi(self, scale: int) -> Phi:
        return self.quant_resi.for_scale(scale, len(self.patch_nums))

    def upsample(self, h: torch.Tensor, size: int) -> torch.Tensor:
        return h if h.shape[-1] == size else F.interpolate(h, size=(size, size), mode="bicubic")

    @staticmethod
    def downsample(f: torch.Tensor, pn: int) -> torch.Tensor:
        # Always a new tensor (area to the same size is an exact copy): callers keep adding into f in place.
        return F.interpolate(f, size=(pn, pn), mode="area")

    def f_to_idxBl_or_fhat(self, f_BChw: torch.Tensor, to_fhat: bool) -> list[torch.Tensor]:
        """Tokenize a latent: per scale, the token indices (B, pn*pn), or with ``to_fhat`` the running f_hat."""
        B, C, H, W = f_BChw.shape
        f_rest = f_BChw.detach().float().clone()
        f_hat = torch.zeros_like(f_rest)
        out = []
        for k, pn in enumerate(self.patch_nums):
            z = self.downsample(f_rest, pn).permute(0, 2, 3, 1).reshape(-1, C)
            idx = self.nearest_code(z).view(B, pn, pn)
            h = self.embedding(idx).permute(0, 3, 1, 2)
            h = self.phi(k)(self.upsample(h, H))
            f_hat.add_(h)
            f_rest.sub_(h)
            out.append(f_hat.clone() if to_fhat else idx.reshape(B, pn * pn))
        return out

    def idxBl_to_var_input(self, gt_idx_Bl: list[torch.Tensor]) -> torch.Tensor:
        """Teacher-forcing input: for scales 1.., the area-downsampled sum of all earlier scales, (B, L - 1, Cvae)."""
        B, H = gt_idx_Bl[0].shape[0], self.patch_nums[-1]
        f_hat = gt_idx_Bl[0].new_zeros(B, self.Cvae, H, H, dtype=torch.float32)
        next_inputs = []
        for k in range(len(self.patch_nums) - 1):
            pn = self.patch_nums[k]
            h = self.embedding(gt_idx_Bl[k]).transpose(1, 2).reshape(B, self.Cvae, pn, pn)
            f_hat.add_(self.phi(k)(self.upsample(h, H)))
            nxt = self.downsample(f_hat, self.patch_nums[k + 1])
            next_inputs.append(nxt.reshape(B, self.Cvae, -1).transpose(1, 2))
        return torch.cat(next_inputs, dim=1)

    def get_next_autoregressive_input(
        self, scale: int, f_hat: torch.Tensor, h_BChw: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Add scale ``scale``'s embeddings to f_hat (in place); return f_hat and the next scale's input map."""
        H = self.patch_nums[-1]
        if scale < len(self.patch_nums) - 1:
            f_hat.add_(self.phi(scale)(self.upsample(h_BChw, H)))
            return f_hat, self.downsample(f_hat, self.patch_nums[scale + 1])
        f_hat.add_(self.phi(scale)(h_BChw))
        return f_hat, f_hat

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training forward (var-spec.md 1.7), in float32: the residual loop over every scale.

        Returns the straight-through f_hat (values of f_hat, gradients to f), the VQ loss (per scale
        beta * |sg(f_hat_k) - f|^2 + |f_hat_k - sg(f)|^2 on the running sum f_hat_k, averaged over scales)
        and the code usage (scales, vocab) counts of this batch.
        """
        with torch.autocast(f.device.type, enabled=False):
            f = f.float()
            B, C, H, W = f.shape
            f_rest, f_hat = f.detach().clone(), torch.zeros_like(f)
            loss = f.new_zeros(())
            usage = torch.zeros(len(self.patch_nums), self.vocab_size, device=f.device)
            for k, pn in enumerate(self.patch_nums):
                idx = self.nearest_code(self.downsample(f_rest, pn).permute(0, 2, 3, 1).reshape(-1, C))
                usage[k] = torch.bincount(idx, minlength=self.vocab_size).float()
                h = self.embedding(idx.view(B, pn, pn)).permute(0, 3, 1, 2)
                h = self.phi(k)(self.upsample(h, H))
                f_hat = f_hat + h
                f_rest = f_rest - h.detach()
                loss = loss + self.beta * F.mse_loss(f_hat.detach(), f) + F.mse_loss(f_hat, f.detach())
            straight_through = f + (f_hat - f).detach()  # decoder gradients reach the encoder only
        return straight_through, loss / len(self.patch_nums), usage

    def embed_to_fhat(self, h_list: list[torch.Tensor], last_one: bool = False):
        """Sum_k Phi_k(upsample(h_k)): the partial sums, or only the final one."""
        H = self.patch_nums[-1]
        f_hat = h_list[0].new_zeros(h_list[0].shape[0], self.Cvae, H, H, dtype=torch.float32)
        partials = []
        for k, h in enumerate(h_list):
            f_hat = f_hat + self.phi(k)(self.upsample(h, H))
            partials.append(f_hat)
        return partials[-1] if last_one else partials


class VQVAE(nn.Module):
    """Encoder, decoder, multi-scale quantizer and the two 3x3 convs around the latent."""

    def __init__(self, cfg: VQVAEConfig | None = None):
        super().__init__()
        self.config = cfg or VQVAEConfig()
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)
        self.quantize = MultiScaleQuantizer(self.config)
        C = self.config.latent_channels
        self.quant_conv = nn.Conv2d(C, C, 3, 1, 1)
        self.post_quant_conv = nn.Conv2d(C, C, 3, 1, 1)

    @property
    def patch_nums(self) -> tuple[int, ...]:
        return self.quantize.patch_nums

    def encode(self, img: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> continuous latent f (B, Cvae, H/16, W/16)."""
        return self.quant_conv(self.encoder(img))

    def img_to_idxBl(self, img: torch.Tensor) -> list[torch.Tensor]:
        return self.quantize.f_to_idxBl_or_fhat(self.encode(img), to_fhat=False)

    def fhat_to_img(self, f_hat: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(f_hat)).clamp_(-1, 1).contiguous()  # NCHW even from an NHWC decoder

    def idxBl_to_img(self, idx_Bl: list[torch.Tensor], last_one: bool = True):
        B = idx_Bl[0].shape[0]
        h_list = []
        for idx in idx_Bl:
            pn = round(idx.shape[1] ** 0.5)
            h_list.append(self.quantize.embedding(idx).transpose(1, 2).reshape(B, -1, pn, pn))
        f = self.quantize.embed_to_fhat(h_list, last_one=last_one)
        return self.fhat_to_img(f) if last_one else [self.fhat_to_img(x) for x in f]

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training forward: (reconstruction in [-1, 1] unclamped, VQ loss, code usage per scale)."""
        f_hat, vq_loss, usage = self.quantize(self.encode(img))
        return self.decoder(self.post_quant_conv(f_hat)), vq_loss, usage

    def img_to_reconstructed_img(self, img: torch.Tensor, last_one: bool = True):
        f_hats = self.quantize.f_to_idxBl_or_fhat(self.encode(img), to_fhat=True)
        return self.fhat_to_img(f_hats[-1]) if last_one else [self.fhat_to_img(f) for f in f_hats]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "quantize.ema_vocab_hit_SV"
        if key in state_dict:
            state_dict[key] = self.quantize.hit_counts_for(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
