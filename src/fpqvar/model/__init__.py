"""The VAR model: multi-scale VQVAE, next-scale transformer, sampling and checkpoint loading."""

from .config import (
    PATCH_NUMS_256,
    PATCH_NUMS_512,
    RELEASED_VAE,
    RELEASED_VAR,
    VARConfig,
    VQVAEConfig,
    released_var_config,
)
from .kv_cache import KVCache, StaticKVCache
from .var import VAR
from .vqvae import VQVAE

__all__ = [
    "PATCH_NUMS_256", "PATCH_NUMS_512", "RELEASED_VAE", "RELEASED_VAR", "VARConfig", "VQVAEConfig",
    "released_var_config", "VAR", "KVCache", "StaticKVCache", "VQVAE",
]
