"""The work of generating one VAR image, step by step: every matrix product, element-wise operation and byte of
weights and KV cache, with classifier-free guidance doubling the token rows (var-spec.md sections 2 and 4).

A step k runs every block on the 2 B l_k new tokens (conditional and unconditional halves) with a KV cache of
cum_k positions, then the head. The condition MLP (``ada_lin``) sees the 2 B condition vectors once per block and
step, as the official sampler recomputes it (var-spec.md 4.6). Counts follow the model; which hardware unit runs what
is fpqvar.hw.performance's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate

from ..model.config import VARConfig

GHT_GROUP = 128  # the paper's GHT group and quantization group (Sec. IV-B)


@dataclass(frozen=True)
class MatMul:
    """One matrix product (m x k) @ (k x n). ``weight`` says whether the (k x n) operand is a stored weight
    (streamed from memory) or an activation (attention's K and V)."""

    name: str
    m: int
    k: int
    n: int
    weight: bool = True

    @property
    def macs(self) -> int:
        return self.m * self.k * self.n


@dataclass(frozen=True)
class BlockStep:
    """What one transformer block does at one step."""

    tokens: int  # rows: 2 B l_k
    kv_length: int  # cached positions the new queries attend to: cum_k
    matmuls: tuple[MatMul, ...]
    layernorm_elements: int
    gelu_elements: int
    softmax_elements: int
    kv_bytes_read: int
    kv_bytes_written: int


@dataclass(frozen=True)
class Step:
    """One sampling step: ``depth`` identical-shaped blocks, the condition MLP shared by all blocks where the
    model shares AdaLN (d36-s), and the head."""

    index: int
    new_tokens: int  # l_k, per image
    block: BlockStep
    depth: int
    extra: tuple[MatMul, ...]  # word_embed of this step's input, head_nm's ada_lin, the head, a shared ada_lin

    def matmuls(self) -> list[MatMul]:
        return [m for _ in range(self.depth) for m in self.block.matmuls] + list(self.extra)


def step_workload(config: VARConfig, step: int, batch: int = 1, kv_bytes_per_value: float = 2.0) -> Step:
    """Step ``step`` (0-based) of one batch of ``batch`` images with CFG (2 x batch rows)."""
    if not 0 <= step < len(config.patch_nums):
        raise ValueError(f"step must lie in [0, {len(config.patch_nums) - 1}], got {step}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    lengths = [pn * pn for pn in config.patch_nums]
    kv = list(accumulate(lengths))[step]
    c, h, rows = config.C, config.num_heads, 2 * batch
    t = rows * lengths[step]
    matmuls = [
        MatMul("qkv", t, c, 3 * c),
        MatMul("attn_qk", t * h, c // h, kv, weight=False),  # per row and head: (l_k, 64) @ (64, kv)
        MatMul("attn_av", t * h, kv, c // h, weight=False),
        MatMul("proj", t, c, c),
        MatMul("fc1", t, c, config.hidden),
        MatMul("fc2", t, config.hidden, c),
    ]
    if not config.shared_aln:
        matmuls.append(MatMul("ada_lin", rows, c, 6 * c))
    block = BlockStep(
        tokens=t,
        kv_length=kv,
        matmuls=tuple(matmuls),
        layernorm_elements=2 * t * c,
        gelu_elements=t * config.hidden,
        softmax_elements=t * h * kv,
        kv_bytes_read=int(2 * rows * kv * c * kv_bytes_per_value),
        kv_bytes_written=int(2 * t * c * kv_bytes_per_value),
    )
    extra = [MatMul("head_ada_lin", rows, c, 2 * c), MatMul("head", t, c, config.vocab_size)]
    if step > 0:  # step 0's input is the class embedding, no word_embed
        extra.insert(0, MatMul("word_embed", t, config.latent_channels, c))
    if config.shared_aln:
        extra.insert(0, MatMul("shared_ada_lin", rows, c, 6 * c))
    return Step(step, lengths[step], block, config.depth, tuple(extra))


def image_workload(config: VARConfig, batch: int = 1) -> list[Step]:
    return [step_workload(config, k, batch) for k in range(len(config.patch_nums))]


def block_weight_count(config: VARConfig) -> dict[str, int]:
    """Weights of the block's linear layers (the ones the accelerator streams per block), by layer."""
    c = config.C
    counts = {"qkv": 3 * c * c, "proj": c * c, "fc1": c * config.hidden, "fc2": config.hidden * c}
    if not config.shared_aln:
        counts["ada_lin"] = 6 * c * c
    return counts


def image_macs(config: VARConfig, batch: int = 1) -> dict[str, int]:
    """Multiply-accumulates of one batch by operation name, summed over steps and blocks."""
    totals: dict[str, int] = {}
    for step in image_workload(config, batch):
        for m in step.matmuls():
            totals[m.name] = totals.get(m.name, 0) + m.macs
    return totals


def flops_conventions(config: VARConfig) -> dict[str, float]:
    """Floating-point operations of one image (2 per multiply-accumulate) under the counting conventions a paper
    might use, to reconcile with the FPQVAR paper's "5.6 TFLOPs per image" for d30 (Sec. I):

    - ``cfg``: what the sampler computes, CFG doubling every row; the condition MLP on the 2 condition vectors;
    - ``no_cfg``: one image's rows only;
    - ``cfg_condition_per_token``: as ``cfg`` but the condition MLP counted once per token row, as a counter that
      treats ada_lin like the other linear layers (over the (2, l_k, C) token tensor) would count it.
    Element-wise operations (LayerNorm, GELU, softmax) are left out of all three: under 0.1% here.
    """
    macs = image_macs(config, 1)
    cfg = 2 * sum(macs.values())
    condition = macs.get("ada_lin", 0) + macs.get("shared_ada_lin", 0)
    tokens = 2 * config.num_tokens
    per_token = 2 * (6 * config.C * config.C) * tokens * (1 if config.shared_aln else config.depth)
    return {
        "cfg": float(cfg),
        "no_cfg": float(cfg / 2),
        "cfg_condition_per_token": float(cfg - 2 * condition + per_token),
    }


def hadamard_flops(channels: int, group: int = GHT_GROUP) -> dict[str, float]:
    """Operations per token of the full Hadamard transform (HT) against the group-wise one (GHT), as dense
    matrix products (2 C^2 against 2 C group: the paper's "15x fewer at C = 1920" is C / group) and as fast
    transforms (butterflies: P log2 P over the padded power of two P >= C, against C log2 group)."""
    if channels % group:
        raise ValueError(f"the channel count {channels} is not a multiple of the group size {group}")
    padded = 1 << (channels - 1).bit_length()
    return {
        "ht_dense": 2.0 * channels * channels,
        "ght_dense": 2.0 * channels * group,
        "dense_ratio": channels / group,
        "ht_fast": float(padded * (padded.bit_length() - 1)),  # P log2 P additions
        "ght_fast": float(channels * (group.bit_length() - 1)),
        "fast_ratio": padded * (padded.bit_length() - 1) / (channels * (group.bit_length() - 1)),
    }
