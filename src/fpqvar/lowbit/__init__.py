"""Real low-bit storage and arithmetic for FP4 recipes: packed checkpoints (CPU) and, on CUDA with Triton,
FP8 tensor-core GEMMs with per-group scales (FP4 values are exact in FP8 E4M3). Triton is optional: without
it this package imports and packs checkpoints; the low-bit backend then refuses with a clear message."""

from .checkpoint import (
    PACKED_FORMAT_VERSION,
    PackedLayer,
    load_packed_var,
    packable_weight,
    packed_layers,
    packed_layout,
    packed_size_bytes,
    packed_state_dict,
    save_packed,
)
from .kernels import HAVE_TRITON
from .linear import BACKENDS, LowBitLinear, to_lowbit, use_backend
from .packing import pack_nibbles, unpack_nibbles

__all__ = [
    "PACKED_FORMAT_VERSION", "PackedLayer", "load_packed_var", "packable_weight", "packed_layers", "packed_layout",
    "packed_size_bytes", "packed_state_dict", "save_packed", "pack_nibbles", "unpack_nibbles", "HAVE_TRITON",
    "BACKENDS", "LowBitLinear", "to_lowbit", "use_backend",
]
