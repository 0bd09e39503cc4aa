"""GALT, GHT-aware learnable transformation (paper Sec. IV-C, Eq. 5-6, Alg. 3): learning, folding, the pipeline.

For each block's mat_qkv and fc1, learn lambda in R^C minimising, step by step,
    mean((X_j W^T - Q(X_j lambda R) Q((W / lambda) R)^T)^2)
with straight-through quantizers, AdamW and one update per step (K updates per epoch). Defaults follow the
paper (weight decay 0, the best epoch's lambda); the released code used weight decay 0.01 and kept the
last lambda (``weight_decay=0.01, select="last"``).

The pipeline (:func:`learn_galt_lambdas`) streams the model block by block: it samples the calibration images
once, keeping only the input of block 0 at every step, then for each block runs that block alone (KV cache and
modulation as in sampling) to get its mat_qkv / fc1 inputs and its output, which is the next block's input.
Lambdas of block i need only block i's inputs, so memory holds a few blocks' activations, never the whole
calibration set, and no disk is used. Layers of equal shape are learned together (stacked, one batched matmul):
their losses are independent, so this equals learning them one after another. Under torchrun the sampling and
the blocks' learning are split over the processes. Progress is saved after each group of blocks
(``state_path``), so an interrupted run resumes there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import pathlib
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from ..atomic import atomic_path
from ..model.hooks import block_layer_name, parse_block_layer_name
from ..model.var import VAR, KVCache, StaticKVCache
from ..model.vqvae import VQVAE
from ..quant import Numerics, PerTensor, Tie, fake_quantize_ste
from ..rotation import Rotation
from .calibration import calibration_classes, choose_storage, to_storage
from .layers import InputTransform, OperandQuant
from .recipe import ROTATED_KINDS, Recipe, recipe_rotation

Lambdas = dict[str, torch.Tensor]  # "blocks.{i}.attn.mat_qkv" / "blocks.{i}.ffn.fc1" -> (C,)
GALT_KINDS = ROTATED_KINDS  # the layers right after the AdaLN modulation (paper Eq. 4)
AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": None}


def galt_layer_names(depth: int) -> list[str]:
    """The lambda keys of a VAR with ``depth`` blocks, block by block."""
    return [f"blocks.{i}.{kind}" for i in range(depth) for kind in GALT_KINDS]


def unit_lambdas(var: VAR) -> Lambdas:
    """lambda = 1 for every layer: "no GALT". fp4_fpqvar with these equals fp4_dfq_ght exactly."""
    return {name: torch.ones(var.config.C) for name in galt_layer_names(len(var.blocks))}


def check_lambdas(lambdas: Lambdas) -> None:
    """Refuse lambdas that cannot be folded (a zero divides the weight, a NaN/Inf spreads): name the layer."""
    for name, lam in lambdas.items():
        if lam.is_meta:  # a structure being rebuilt before its saved tensors are loaded: no values yet
            continue
        if not torch.isfinite(lam).all():
            raise ValueError(f"lambda of {name} has {int((~torch.isfinite(lam)).sum())} non-finite values: learn it again")
        if (lam == 0).any():
            raise ValueError(f"lambda of {name} has {int((lam == 0).sum())} zeros, which W / lambda cannot take: learn it again")


@torch.no_grad()
def fold_lambda_into_ada_lin(var: VAR, lambdas: Lambdas) -> None:
    """Paper Eq. 6: make each block's AdaLN output the mat_qkv / fc1 inputs already multiplied by lambda.

    With scale rows W_s, b_s and shift rows W_h, b_h: W_s' = diag(lambda) W_s, b_s' = lambda b_s + lambda - 1,
    W_h' = diag(lambda) W_h, b_h' = lambda b_h; then LN(x)(1 + s') + h' = lambda (LN(x)(1 + s) + h) exactly.
    """
    if var.config.shared_aln:
        raise ValueError(
            "lambda cannot be folded into a shared AdaLN (d36): the shared MLP feeds every block. "
            "Use the released code's online multiply instead: recipe.replace(galt_fold=False)"
        )
    check_lambdas(lambdas)
    C = var.config.C
    # chunk order: gamma1, gamma2, scale1, scale2, shift1, shift2
    rows = {"attn.mat_qkv": (2, 4), "ffn.fc1": (3, 5)}
    for i, block in enumerate(var.blocks):
        linear = block.ada_lin[1]
        for kind, (scale_chunk, shift_chunk) in rows.items():
            lam = lambdas[block_layer_name(i, kind)].to(linear.weight)
            for chunk, offset in ((scale_chunk, 1.0), (shift_chunk, 0.0)):
                rows_slice = slice(chunk * C, (chunk + 1) * C)
                linear.weight[rows_slice] *= lam[:, None]
                linear.bias[rows_slice] = lam * linear.bias[rows_slice] + offset * (lam - 1)


# ------------------------------------------------------------------------------------------------ learning
def galt_loss(x: torch.Tensor, weight: torch.Tensor, lam: torch.Tensor, transform: InputTransform,
              input_quant: OperandQuant, weight_quant: OperandQuant | None, tie: Tie | Numerics) -> torch.Tensor:
    """Eq. 5 for G stacked layers: x (G, T, C), weight (G, O, C), lam (G, C) -> the G losses (mean squared error)."""
    xr = transform(x * lam[:, None, :])
    wr = transform.fold_into_weight(weight, lam[:, None, :])
    qx = fake_quantize_ste(xr, input_quant.fmt, input_quant.granularity, tie)
    qw = wr if weight_quant is None else fake_quantize_ste(wr, weight_quant.fmt, weight_quant.granularity, tie)
    error = torch.bmm(x, weight.transpose(1, 2)) - torch.bmm(qx, qw.transpose(1, 2))
    return error.pow(2).mean(dim=(1, 2))


def learn_stacked(
    steps: list[torch.Tensor],
    weights: torch.Tensor,
    transform: InputTransform,
    input_quant: OperandQuant,
    weight_quant: OperandQuant | None,
    *,
    epochs: int = 50,
    lr: float = 0.01,
    weight_decay: float = 0.0,
    select: str = "best",
    tie: Tie | Numerics = "even",
) -> tuple[torch.Tensor, list[list[float]]]:
    """lambda (G, C) of G layers of equal shape and their per-epoch mean losses (paper Fig. 11), learned together.

    ``steps``: the layers' inputs at each step, (G, T_k, C) each (any device: moved to the weights'). The sum of
    the G losses has the gradient of each loss with respect to its own lambda, and AdamW acts element by element,
    so each layer's lambda follows the same path as if learned alone.
    """
    if select not in ("best", "last"):
        raise ValueError(f"select must be 'best' (paper) or 'last' (released code), got {select!r}")
    weights = weights.detach().float()
    G, device = weights.shape[0], weights.device
    lam = torch.nn.Parameter(torch.ones(G, weights.shape[2], device=device))
    optimizer = torch.optim.AdamW([lam], lr=lr, weight_decay=weight_decay)
    best, best_loss, curves = lam.detach().clone(), [math.inf] * G, [[] for _ in range(G)]
    for _ in range(epochs):
        total = torch.zeros(G, device=device, dtype=torch.float64)
        for x in steps:
            losses = galt_loss(x.to(device, non_blocking=True).float(), weights, lam, transform, input_quant, weight_quant, tie)
            losses.sum().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            total += losses.detach()
        for g, value in enumerate((total / len(steps)).tolist()):  # one host synchronisation per epoch
            curves[g].append(value)
            if value < best_loss[g]:
                best_loss[g] = value
                best[g] = lam.detach()[g]  # a copy: the released code kept a reference
    return (best if select == "best" else lam.detach().clone()), curves


def learn_lambda(
    steps: list[torch.Tensor],
    weight: torch.Tensor,
    rotation: torch.Tensor | None,
    input_quant: OperandQuant,
    weight_quant: OperandQuant | None,
    **options,
) -> tuple[torch.Tensor, list[float]]:
    """One layer's lambda (C,) and its per-epoch mean loss, from its inputs at each step ((..., C) each)."""
    C = weight.shape[1]
    transform = InputTransform(C, None if rotation is None else Rotation(rotation.to(weight.device)))
    lam, curves = learn_stacked([x.reshape(1, -1, C) for x in steps], weight[None], transform, input_quant, weight_quant, **options)
    return lam[0], curves[0]


# ------------------------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class GaltSettings:
    """Everything that decides GALT's lambdas (``key()``), plus how to run it (``blocks_at_once``, not in the key:
    stacked learning equals one-by-one learning)."""

    samples: int = 100  # calibration images (paper: 100)
    classes: str = "random"  # "random" (paper) or "first" (classes 0..samples-1, released code)
    seed: int = 0  # class draw and the sampling seed of every calibration batch
    batch_size: int = 1  # calibration images per generate call (each call re-seeds, as the released code)
    dtype: str = "fp16"  # autocast of calibration sampling: fp16 (as the original), bf16, fp32 (none)
    epochs: int = 50
    lr: float = 0.01
    weight_decay: float = 0.0  # paper 0; released code 0.01
    select: str = "best"  # paper: the best epoch's lambda; released code: "last"
    precision: str = "tf32"  # float32 matmuls of learning on CUDA: "tf32" (10-bit mantissa) or "fp32"
    blocks_at_once: int = 4  # blocks whose layers are learned stacked (per process); fewer when memory is short

    def __post_init__(self) -> None:
        checks = {"classes": ("random", "first"), "dtype": tuple(AMP_DTYPES), "select": ("best", "last"),
                  "precision": ("tf32", "fp32")}
        for field, allowed in checks.items():
            if getattr(self, field) not in allowed:
                raise ValueError(f"GALT setting {field} must be one of {allowed}, got {getattr(self, field)!r}")
        for field in ("samples", "batch_size", "epochs", "blocks_at_once"):
            if getattr(self, field) < 1:
                raise ValueError(f"GALT setting {field} must be at least 1, got {getattr(self, field)}")

    def key(self) -> str:
        """A stable 12-hex-digit digest of the settings that decide the lambdas."""
        decisive = {k: v for k, v in dataclasses.asdict(self).items() if k != "blocks_at_once"}
        return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class GaltResult:
    lambdas: Lambdas  # layer name -> (C,) float32 on the CPU
    curves: dict[str, list[float]]  # layer name -> per-epoch mean loss
    seconds: dict[str, float]  # phase -> wall time: sampling, propagation, learning, total


def check_galt_recipe(recipe: Recipe, var: VAR) -> InputTransform:
    """Refuse a recipe GALT cannot learn against (before any work); return the input transform it implies."""
    for i in range(len(var.blocks)):
        for kind in GALT_KINDS:
            layer = recipe.layer(i, kind)
            if layer is None or layer.input is None:
                raise ValueError(f"recipe {recipe.name} does not quantize the input of blocks.{i}.{kind}, so GALT has "
                                 "nothing to learn against: use a recipe that does (e.g. fp4_fpqvar)")
    matrix = recipe_rotation(recipe, var.config.C, torch.device("cpu"))
    return InputTransform(var.config.C, None if matrix is None else Rotation(matrix))


# ------------------------------------------------------------------------------------------------ pipeline
@dataclass(frozen=True)
class _Ranks:
    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls) -> _Ranks:
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def _matmul_precision(device: torch.device, precision: str):
    """TF32 float32 matmuls on CUDA when asked: the quantized operands carry at most 3 mantissa bits and the
    scales' 10-bit TF32 rounding is far below FP4's error, so the loss and its gradient barely move."""
    if device.type != "cuda":
        yield
        return
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old)


def _conditions(var: VAR, labels: torch.Tensor) -> torch.Tensor:
    """The shared AdaLN input of a batch, [cond; uncond], as VAR.generate computes it."""
    cond_BD = var.class_emb(torch.cat((labels, torch.full_like(labels, var.num_classes))))
    return var.shared_ada_lin(cond_BD)


def _sample_block0_inputs(var, vae, labels, settings, autocast, storage) -> list[torch.Tensor]:
    """Generate one calibration batch, keeping only the input of block 0 at every step."""
    inputs = []
    handle = var.blocks[0].register_forward_pre_hook(lambda module, args: inputs.append(to_storage(args[0], storage)))
    try:
        with autocast:
            var.generate(vae, len(labels), labels=labels, seed=settings.seed)
    finally:
        handle.remove()
    return inputs


def _run_block(block, steps: list[torch.Tensor], modulation: torch.Tensor, num_tokens: int, device, storage,
               capture: dict | None) -> list[torch.Tensor]:
    """One block over the steps of one batch, KV-cached as in sampling; its outputs (to ``storage``). With
    ``capture``, the inputs of mat_qkv and fc1 are appended to ``capture[kind]`` (to ``storage``)."""
    handles = []
    if capture is not None:
        for kind in GALT_KINDS:
            layer = block.get_submodule(kind)
            handles.append(layer.register_forward_pre_hook(
                lambda module, args, kind=kind: capture[kind].append(to_storage(args[0], storage))))
    block.attn.kv_caching(True)
    if block.attn.kv_cache_factory is KVCache:  # what VAR.generate installs: the same values
        block.attn.kv_cache = StaticKVCache(num_tokens)
    try:
        return [to_storage(block(x.to(device, non_blocking=True), modulation, None), storage) for x in steps]
    finally:
        block.attn.kv_caching(False)
        for handle in handles:
            handle.remove()


def _learn_blocks(var, recipe, transform, inputs: dict[int, dict[str, list[list[torch.Tensor]]]], settings, device,
                  numerics: Numerics) -> tuple[Lambdas, dict[str, list[float]]]:
    """Learn the lambdas of the blocks in ``inputs`` (block -> kind -> per batch, per step), stacking layers
    that share shape and formats."""
    lambdas, curves = {}, {}
    for kind in GALT_KINDS:
        groups: dict[tuple, list[int]] = {}
        for i in inputs:
            layer = recipe.layer(i, kind)
            stackable = not any(isinstance(q.granularity, PerTensor) for q in (layer.input, layer.weight) if q is not None)
            groups.setdefault((layer, None if stackable else i), []).append(i)
        for (layer, _), blocks in groups.items():
            steps = [
                torch.stack([torch.cat([batch[k] for batch in inputs[i][kind]]).flatten(0, -2) for i in blocks]).to(device)
                for k in range(len(var.patch_nums))
            ]
            for i in blocks:
                del inputs[i][kind]  # the stacked copy is all that is needed now
            weights = torch.stack([var.blocks[i].get_submodule(kind).weight.detach().to(device) for i in blocks])
            lam, layer_curves = learn_stacked(
                steps, weights, transform, layer.input, layer.weight, epochs=settings.epochs, lr=settings.lr,
                weight_decay=settings.weight_decay, select=settings.select, tie=numerics,
            )
            for g, i in enumerate(blocks):
                lambdas[f"blocks.{i}.{kind}"] = lam[g].float().cpu()
                curves[f"blocks.{i}.{kind}"] = layer_curves[g]
            del steps, weights
    return lambdas, curves


def _fits(blocks_at_once: int, var: VAR, settings: GaltSettings, device: torch.device) -> int:
    """How many blocks to learn at once on ``device``: the setting, or fewer when the largest step's loss
    tensors (inputs, transformed, quantized; reference and quantized outputs, their difference and gradients)
    of that many layers would not fit in half the free memory."""
    if device.type != "cuda":
        return blocks_at_once
    C = var.config.C
    tokens = 2 * settings.samples * max(pn * pn for pn in var.patch_nums)
    per_layer = 4 * tokens * (6 * C + 5 * var.config.hidden)
    free, _ = torch.cuda.mem_get_info(device)
    return max(1, min(blocks_at_once, int(0.5 * free // per_layer)))


def galt_target(recipe: Recipe) -> str:
    """A 12-hex-digit digest of what GALT's loss depends on in ``recipe``: the formats of the layers it learns
    (GALT_KINDS, block overrides included), the rotation and the numerics. Recipes that differ elsewhere only
    (fp4_fpqvar and fp4_fpqvar_kv6: the KV cache; galt_fold: where lambda goes afterwards) learn the same lambdas,
    so they share a cache entry."""
    raw = recipe.to_dict()
    target = {
        "layers": {kind: layer for kind, layer in raw["layers"].items() if kind in GALT_KINDS},
        "block_overrides": {name: layer for name, layer in raw["block_overrides"].items()
                            if parse_block_layer_name(name)[1] in GALT_KINDS},
        **{k: raw[k] for k in ("rotation", "rotation_group", "rotation_seed", "tie", "int_tie", "scale_dtype", "int_absmax_floor")},
    }
    return hashlib.sha256(json.dumps(target, sort_keys=True).encode()).hexdigest()[:12]


def _run_id(run_id: str, recipe: Recipe, settings: GaltSettings) -> str:
    return f"{run_id}|galt_target={galt_target(recipe)}|settings={settings.key()}"


def _load_state(path: pathlib.Path | None, run: str) -> tuple[Lambdas, dict[str, list[float]]]:
    if path is None or not path.exists():
        return {}, {}
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
        if metadata.get("run") != run:
            raise ValueError(f"{path} holds an unfinished GALT run of another checkpoint, recipe or settings: "
                             "rerun with the same ones to resume it, or delete it to start over")
        lambdas = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    return lambdas, json.loads(metadata["curves"])


def _save_state(path: pathlib.Path, run: str, lambdas: Lambdas, curves: dict[str, list[float]]) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in lambdas.items()}, str(tmp), metadata={"run": run, "curves": json.dumps(curves)})


def _share(batches: list, owner: list[int], ranks: _Ranks, device: torch.device, storage) -> list:
    """Every process gets every batch's block-0 inputs (each sampled by one process)."""
    if ranks.world == 1:
        return batches
    template = [next(b for b in batches if b is not None)[0].dtype] if ranks.rank == owner[0] else [None]
    dist.broadcast_object_list(template, src=owner[0])
    wire = device if dist.get_backend() == "nccl" else torch.device("cpu")
    shared = []
    for j, mine in enumerate(batches):
        shapes = [None]
        if ranks.rank == owner[j]:
            shapes = [[tuple(x.shape) for x in mine]]
        dist.broadcast_object_list(shapes, src=owner[j])
        steps = []
        for k, shape in enumerate(shapes[0]):
            buffer = mine[k].to(wire) if ranks.rank == owner[j] else torch.empty(shape, dtype=template[0], device=wire)
            dist.broadcast(buffer, src=owner[j])
            steps.append(to_storage(buffer, storage))
        shared.append(steps)
    return shared


def learn_galt_lambdas(
    var: VAR,
    vae: VQVAE,
    recipe: Recipe,
    *,
    settings: GaltSettings,
    device: str | torch.device,
    progress: bool = True,
    state_path: str | pathlib.Path | None = None,
    run_id: str = "",
) -> GaltResult:
    """Learn lambda for every block's mat_qkv and fc1 (paper Alg. 3) on calibration images of the full-precision
    ``var`` (on ``device``), against ``recipe``'s formats and rotation.

    ``state_path``: after each group of blocks the lambdas so far are saved there (atomically); a later call
    with the same ``run_id`` (say, the checkpoint's identity), recipe and settings resumes after the last saved
    block. Under torchrun every process calls this with the same arguments and gets the same result.
    """
    device = torch.device(device)
    transform = check_galt_recipe(recipe, var).to(device)
    ranks = _Ranks.current()
    state_path = None if state_path is None else pathlib.Path(state_path)
    run = _run_id(run_id, recipe, settings)
    lambdas, curves = _load_state(state_path, run)
    depth = len(var.blocks)
    todo = [i for i in range(depth) if any(f"blocks.{i}.{kind}" not in lambdas for kind in GALT_KINDS)]
    seconds = dict.fromkeys(("sampling", "propagation", "learning"), 0.0)
    start = time.perf_counter()
    if not todo:
        return GaltResult(lambdas, curves, seconds | {"total": 0.0})

    group = _fits(settings.blocks_at_once, var, settings, device)
    per_block = 2 * settings.samples * var.config.num_tokens * var.config.C * 4
    storage = choose_storage((2 + 2 * group) * per_block, device)
    amp = AMP_DTYPES[settings.dtype]
    autocast = torch.autocast(device.type, dtype=amp) if amp else contextlib.nullcontext()
    classes = calibration_classes(settings.samples, var.num_classes, settings.classes, settings.seed)
    labels = [torch.tensor(classes[i : i + settings.batch_size], device=device)
              for i in range(0, len(classes), settings.batch_size)]
    owner = [j % ranks.world for j in range(len(labels))]

    with torch.no_grad(), _matmul_precision(device, settings.precision):
        tick = time.perf_counter()
        mine = [j for j in range(len(labels)) if owner[j] == ranks.rank]
        states: list = [None] * len(labels)
        for j in tqdm(mine, desc="GALT calibration", disable=not progress or ranks.rank):
            states[j] = _sample_block0_inputs(var, vae, labels[j], settings, autocast, storage)
        states = _share(states, owner, ranks, device, storage)
        _synchronize(device)
        seconds["sampling"] = time.perf_counter() - tick

        round_size = ranks.world * group
        bar = tqdm(total=max(todo) + 1, desc="GALT blocks", disable=not progress or ranks.rank)
        for first in range(0, max(todo) + 1, round_size):
            chunk = [i for i in range(first + ranks.rank * group, first + (ranks.rank + 1) * group) if i in todo]
            captured: dict[int, dict[str, list]] = {}
            tick = time.perf_counter()
            for i in range(first, min(first + round_size, max(todo) + 1)):
                block = var.blocks[i]
                captured_i = {kind: [] for kind in GALT_KINDS} if i in chunk else None
                next_states = []
                for j, steps in enumerate(states):
                    with autocast:
                        modulation = block.modulation(_conditions(var, labels[j]))
                        capture = None if captured_i is None else {kind: [] for kind in GALT_KINDS}
                        next_states.append(_run_block(block, steps, modulation, var.config.num_tokens, device, storage, capture))
                    if capture is not None:
                        for kind in GALT_KINDS:
                            captured_i[kind].append(capture[kind])
                if captured_i is not None:
                    captured[i] = captured_i
                states = next_states
                bar.update()
            _synchronize(device)
            seconds["propagation"] += time.perf_counter() - tick

            tick = time.perf_counter()
            with torch.enable_grad():
                learned, learned_curves = _learn_blocks(var, recipe, transform, captured, settings, device, recipe.numerics)
            del captured
            _synchronize(device)
            seconds["learning"] += time.perf_counter() - tick
            if ranks.world > 1:
                gathered = [None] * ranks.world
                dist.all_gather_object(gathered, (learned, learned_curves))
                for part_lambdas, part_curves in gathered:
                    lambdas |= part_lambdas
                    curves |= part_curves
            else:
                lambdas |= learned
                curves |= learned_curves
            if state_path is not None and ranks.rank == 0:
                _save_state(state_path, run, lambdas, curves)
        bar.close()
    names = galt_layer_names(depth)
    lambdas = {name: lambdas[name] for name in names}
    check_lambdas(lambdas)
    seconds["total"] = time.perf_counter() - start
    return GaltResult(lambdas, {name: curves[name] for name in names}, seconds)


# ------------------------------------------------------------------------------------------------ files
def save_galt_result(result: GaltResult, path: str | pathlib.Path, *, metadata: dict[str, str] | None = None) -> None:
    """Lambdas to ``path`` (.safetensors) and per-epoch losses and phase times to ``path``.curves.json, atomically."""
    check_lambdas(result.lambdas)
    path = pathlib.Path(path)
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in result.lambdas.items()}, str(tmp), metadata=metadata)
    with atomic_path(f"{path}.curves.json") as tmp:
        tmp.write_text(json.dumps({"curves": result.curves, "seconds": result.seconds}) + "\n")


def load_galt_result(path: str | pathlib.Path) -> GaltResult:
    """What :func:`save_galt_result` wrote (curves and times empty when the JSON beside it is missing)."""
    path = pathlib.Path(path)
    with safe_open(str(path), framework="pt") as f:
        lambdas = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    check_lambdas(lambdas)
    side = pathlib.Path(f"{path}.curves.json")
    extra = json.loads(side.read_text()) if side.exists() else {"curves": {}, "seconds": {}}
    return GaltResult(lambdas, extra["curves"], extra["seconds"])


def galt_cache_path(cache_dir: str | pathlib.Path, var_sha256: str, recipe: Recipe, settings: GaltSettings) -> pathlib.Path:
    """Where :func:`cached_galt_lambdas` keeps the lambdas of a checkpoint (sha256), recipe (what of it GALT's loss
    sees: :func:`galt_target`) and settings."""
    return pathlib.Path(cache_dir) / f"galt_{var_sha256[:16]}_{galt_target(recipe)}_{settings.key()}.safetensors"


def is_cached(cache_dir: str | pathlib.Path, var_sha256: str, recipe: Recipe, settings: GaltSettings) -> bool:
    """Whether :func:`cached_galt_lambdas` would read its answer from ``cache_dir`` (same checkpoint, recipe and
    settings) instead of learning."""
    path = galt_cache_path(cache_dir, var_sha256, recipe, settings)
    if not path.exists():
        return False
    with safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get("run") == _run_id(var_sha256, recipe, settings)


def cached_galt_lambdas(
    var: VAR,
    vae: VQVAE,
    recipe: Recipe,
    *,
    settings: GaltSettings,
    var_sha256: str,
    cache_dir: str | pathlib.Path,
    device: str | torch.device,
    progress: bool = True,
) -> GaltResult:
    """:func:`learn_galt_lambdas`, reusing ``galt_cache_path(...)`` (checkpoint sha256, :func:`galt_target`, settings key)
    (lambdas; curves and times beside it) when it was learned for a recipe of the same :func:`galt_target`;
    resumable like the command."""
    path = galt_cache_path(cache_dir, var_sha256, recipe, settings)
    run = _run_id(var_sha256, recipe, settings)
    if is_cached(cache_dir, var_sha256, recipe, settings):
        return load_galt_result(path)
    state = pathlib.Path(f"{path}.partial")
    result = learn_galt_lambdas(var, vae, recipe, settings=settings, device=device, progress=progress,
                                state_path=state, run_id=var_sha256)
    if _Ranks.current().rank == 0:
        save_galt_result(result, path, metadata={"run": run})
        state.unlink(missing_ok=True)
    return result
