"""Where attention keeps the keys and values of the steps generated so far."""

from __future__ import annotations

import torch


class KVCache:
    """Keys and values of the steps generated so far. Replace it (e.g. by a quantizing store) per attention layer."""

    def __init__(self):
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's (B, H, l, hd) keys and values; return everything attention should see."""
        if self.keys is None:
            self.keys, self.values = k, v
        else:
            self.keys, self.values = torch.cat((self.keys, k), dim=2), torch.cat((self.values, v), dim=2)
        return self.keys, self.values


class StaticKVCache(KVCache):
    """A KVCache writing into buffers preallocated for ``max_len`` tokens; attention reads the filled prefix.

    The values are those of concatenation, but a step copies only its own keys and values (concatenating
    re-copies the whole cache at every step), and the buffers keep their addresses, so CUDA graphs can
    capture the steps. ``rewind`` starts over in the same buffers.
    """

    def __init__(self, max_len: int):
        super().__init__()
        self.max_len, self.length = max_len, 0
        self.key_buffer: torch.Tensor | None = None
        self.value_buffer: torch.Tensor | None = None

    def rewind(self) -> None:
        self.length = 0

    @torch.compiler.disable  # compiled blocks break here: traced, each fill level would be its own recompilation
    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.key_buffer is None:
            # One slot more than is ever filled: the filled prefix is then never the whole buffer, so it has the
            # same (non-contiguous) layout at every step, and compiled attention needs no variant for the last one.
            self.key_buffer = k.new_empty(*k.shape[:2], self.max_len + 1, k.shape[3])
            self.value_buffer = v.new_empty(*v.shape[:2], self.max_len + 1, v.shape[3])
        if self.length + k.shape[2] > self.max_len:
            raise ValueError(f"the KV store holds {self.max_len} tokens; {self.length} are stored and {k.shape[2]} more came")
        start, self.length = self.length, self.length + k.shape[2]
        self.key_buffer[:, :, start : self.length].copy_(k)
        self.value_buffer[:, :, start : self.length].copy_(v)
        self.keys, self.values = self.key_buffer[:, :, : self.length], self.value_buffer[:, :, : self.length]
        return self.keys, self.values
