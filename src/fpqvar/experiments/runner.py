"""The experiment runner behind `fpqvar table`: one JSON row per recipe, the paper's tables as data.

For each recipe: GALT lambdas when it needs them (cached by checkpoint sha256 and settings), quantize, sample
the paper's protocol (classes x images per class, in batches seeded ``seed + j``, cfg 1.5, top-k 900, top-p
0.96) once per sampling seed, evaluate each seed's images, measure the teacher-forced metrics on held-out
images' tokens against the unquantized model, and summarise the layer-wise error. The row is written atomically
once everything is measured.

Resuming: a recipe whose row exists (with the same settings) is skipped; sampling skips every batch whose PNGs
exist (`fpqvar.generation`), so an interrupted run continues where it stopped and nothing is computed twice.
Under torchrun the ranks share the sampling (same images for any world size); rank 0 evaluates and writes.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import functools
import hashlib
import itertools
import json
import pathlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from ..atomic import atomic_path
from ..distributed import Process
from ..generation import SampleBatch, batches_for_rank, generate_batches, image_path, plan_batches
from ..methods import Recipe, get_recipe, quantize_model
from ..methods.calibration import ActivationStore, calibration_classes, capture_activations
from ..methods.galt import GaltSettings, cached_galt_lambdas, is_cached
from ..methods.layers import QuantizedLinear
from ..methods.report import layer_error_report
from ..model import VAR, VQVAE
from ..model.hooks import block_linear_names
from ..model.loading import load_vae, load_var
from ..paths import resolve_checkpoint
from .teacher_forced import HeldOutTokens, held_out_tokens, teacher_forced_metrics

ROW_SCHEMA = "fpqvar.table-row/1"
AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": None}
SEED_METRIC_SPREAD = "max - min over sampling seeds"
TEACHER_FORCED_SPREAD = "half-width of the 95% bootstrap interval over held-out images"


@dataclass(frozen=True)
class GaltOptions:
    """The part of :class:`fpqvar.methods.galt.GaltSettings` a table fixes (paper: 100 random-class samples,
    50 epochs, lr 0.01); the calibration dtype is the table's, the rest GaltSettings' defaults."""

    samples: int = 100
    classes: str = "random"
    seed: int = 0
    epochs: int = 50
    lr: float = 0.01
    weight_decay: float = 0.0
    select: str = "best"

    def settings(self, dtype: str) -> GaltSettings:
        return GaltSettings(dtype=dtype, **dataclasses.asdict(self))


@dataclass(frozen=True)
class TableSettings:
    """Everything that fixes a row's numbers. Two runs with equal settings (and checkpoint sha256) write equal rows."""

    var: str = "embedded"
    vae: str = "embedded"
    classes: str = "all"  # "all", or e.g. "0-999" / "1,153,698"
    per_class: int = 50
    batch_size: int = 50
    seeds: tuple[int, ...] = (0,)
    cfg: float = 1.5
    top_k: int = 900
    top_p: float = 0.96
    dtype: str = "fp16"  # autocast dtype of sampling and teacher forcing: fp16 (the original), bf16 or fp32
    evaluator: str = "classifier:embedded"  # classifier:<ckpt|embedded>, inception:<pt_inception.pth>, or none
    reference: str = "mnist-test"  # images the samples are compared with: mnist-test, an .npz or a folder of PNGs
    reference_images: int | None = None  # keep only the first N reference images
    held_out: str = "mnist-test"  # teacher-forcing images: mnist-test, a folder of images, or samples (the FP model's)
    held_out_images: int = 1000
    report_samples: int = 2  # calibration samples for the layer-wise error report (0: no report)
    galt: GaltOptions = field(default_factory=GaltOptions)

    def __post_init__(self) -> None:
        if self.dtype not in AMP_DTYPES:
            raise ValueError(f"dtype must be one of {sorted(AMP_DTYPES)}, got {self.dtype!r}")
        if self.per_class < 1 or self.batch_size < 1 or not self.seeds:
            raise ValueError("per-class count and batch size must be positive and at least one sampling seed is needed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"sampling seeds repeat: {self.seeds}")
        per_class_batches = -(-self.per_class // self.batch_size)
        ordered = sorted(self.seeds)
        if any(b - a < per_class_batches for a, b in itertools.pairwise(ordered)):
            # batch j of seed s is seeded s + j: closer seeds would draw some of the same images twice
            raise ValueError(f"sampling seeds {self.seeds} must lie at least {per_class_batches} apart (the batches per class), "
                             "or two seeds would share images")
        kind = self.evaluator.partition(":")[0]
        if kind not in ("classifier", "inception", "none") or (kind != "none" and ":" not in self.evaluator):
            raise ValueError(f"evaluator must be classifier:<checkpoint|embedded>, inception:<file> or none, got {self.evaluator!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> TableSettings:
        """The settings a row or `run.json` recorded."""
        return cls(**{**raw, "seeds": tuple(raw["seeds"]), "galt": GaltOptions(**raw["galt"])})


def read_settings(folder: str | pathlib.Path) -> TableSettings:
    """The settings of a results folder's rows (its `run.json`)."""
    return TableSettings.from_dict(json.loads((pathlib.Path(folder) / "run.json").read_text())["settings"])


def parse_classes(text: str, num_classes: int) -> list[int]:
    """"all", "0-999", "1,153,698" or a mix ("0-9,500") -> sorted class ids, each checked against the model."""
    if text == "all":
        return list(range(num_classes))
    classes: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ValueError(f"classes {text!r}: use e.g. all, 0-999 or 1,153,698")
        classes.update(range(int(low), int(high or low) + 1))
    bad = sorted(c for c in classes if not 0 <= c < num_classes)
    if bad:
        raise ValueError(f"classes {bad[:5]} are outside this model's 0..{num_classes - 1}")
    return sorted(classes)


def sha256_of(path: str | pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 24), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------ models
def load_models(var_spec: str, vae_spec: str, device: torch.device) -> tuple[VAR, VQVAE, dict]:
    """The full-precision VAR and its VQVAE (paths or ``embedded``), and their files' identities.

    The one place this package loads checkpoints; recipes start from the full-precision model, so the plain
    loader (`fpqvar.model.loading`), not the dispatching one."""
    var_path, vae_path = resolve_checkpoint(var_spec, "var"), resolve_checkpoint(vae_spec, "vqvae")
    var = load_var(var_path, device=device)  # the plain loader: a quantized file is refused with advice
    vae = load_vae(vae_path, device=device, patch_nums=var.patch_nums)
    identity = {"var": str(var_spec), "var_sha256": sha256_of(var_path), "vae": str(vae_spec), "vae_sha256": sha256_of(vae_path),
                "depth": var.config.depth, "width": var.config.C, "patch_nums": list(var.patch_nums),
                "image_size": var.patch_nums[-1] * vae.config.downsample}
    return var.eval(), vae.eval(), identity


# ------------------------------------------------------------------------------------------------ GALT
def galt_lambdas(var: VAR, vae: VQVAE, recipe: Recipe, *, options: GaltOptions, var_sha256: str, cache_dir: pathlib.Path,
                 device: torch.device, amp_dtype: torch.dtype | None, progress: bool = True) -> tuple[dict, dict]:
    """GALT's lambdas for ``recipe`` (paper Alg. 3, `fpqvar.methods.galt.cached_galt_lambdas`), from ``cache_dir``
    when learned before for this checkpoint, recipe and these options; and how they were obtained."""
    dtype = next(name for name, value in AMP_DTYPES.items() if value == amp_dtype)
    settings = options.settings(dtype)
    cached = is_cached(cache_dir, var_sha256, recipe, settings)
    start = time.perf_counter()
    result = cached_galt_lambdas(var, vae, recipe, settings=settings, var_sha256=var_sha256, cache_dir=cache_dir,
                                 device=device, progress=progress)
    seconds = round(time.perf_counter() - start, 2)
    info = {"options": dataclasses.asdict(options), "settings_key": settings.key(), "cached": cached,
            "seconds": seconds, "phases_when_learned": result.seconds}
    return {k: v.to(device) for k, v in result.lambdas.items()}, info


# ------------------------------------------------------------------------------------------------ images
def read_images(folder: pathlib.Path, batches: Sequence[SampleBatch]) -> tuple[np.ndarray, np.ndarray]:
    """The planned PNGs of ``folder`` in plan order, uint8 (N, H, W, 3), and their classes (N,)."""
    from PIL import Image

    files = [(image_path(folder, b.class_id, i), b.class_id) for b in batches for i in b.image_indices()]
    missing = [str(f) for f, _ in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} planned images are missing (e.g. {missing[0]}); run again to finish sampling")
    images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f, _ in files])
    return images, np.array([c for _, c in files], dtype=np.int64)


_CLASS_IN_NAME = re.compile(r"class(\d+)_")


def folder_images(folder: pathlib.Path, size: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` labelled images of a folder (every k-th file), resized (shorter side) and centre-cropped to ``size``.

    The class of an image is read from its name (``class<c>_*``, as `fpqvar sample` writes) or from its
    parent folder's name when that is a number (``<folder>/<c>/*.JPEG``, a class-per-folder layout)."""
    from PIL import Image

    suffixes = {".png", ".jpg", ".jpeg", ".webp"}
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes)
    files = files[:: max(1, len(files) // count)]  # spread over the whole folder (every class), not its first files
    images, labels = [], []
    for path in files:
        found = _CLASS_IN_NAME.match(path.name)
        label = int(found.group(1)) if found else int(path.parent.name) if path.parent.name.isdigit() else None
        if label is None:
            continue
        image = Image.open(path).convert("RGB")
        scale = size / min(image.size)
        image = image.resize((max(size, round(image.width * scale)), max(size, round(image.height * scale))), Image.BICUBIC)
        left, top = (image.width - size) // 2, (image.height - size) // 2
        images.append(np.asarray(image.crop((left, top, left + size, top + size))))
        labels.append(label)
        if len(images) == count:
            break
    if not images:
        raise FileNotFoundError(f"no labelled images in {folder}: name them class<c>_*.png or put them in folders named by class")
    return np.stack(images), np.array(labels, dtype=np.int64)


# ------------------------------------------------------------------------------------------------ evaluators
Evaluator = Callable[[np.ndarray, np.ndarray], dict]


def build_evaluator(settings: TableSettings, device: torch.device) -> tuple[Evaluator, dict]:
    """A function (images, labels) -> metrics, and the evaluator's identity (what, file sha256, reference)."""
    kind, _, spec = settings.evaluator.partition(":")
    if kind == "none":
        return (lambda images, labels: {}), {"kind": "none"}
    from ..eval import load_images, load_statistics

    if settings.reference == "mnist-test":
        from ..datasets import load_mnist

        reference, reference_id = load_mnist("test")[0], "mnist-test (MNIST test images)"
    else:
        reference, reference_id = load_images(settings.reference), sha256_of(settings.reference) if pathlib.Path(settings.reference).is_file() else settings.reference
    reference = reference[: settings.reference_images]
    identity = {"kind": kind, "reference": settings.reference, "reference_id": reference_id, "reference_count": len(reference)}
    if kind == "classifier":
        from ..eval.classifier import load_classifier
        from ..eval.quality import classifier_accuracy, proxy_metrics

        path = resolve_checkpoint(spec, "classifier")
        classifier = load_classifier(path, device)
        identity |= {"what": "proxy: fpqvar DigitClassifier, not Inception-v3; classifier_* numbers are not comparable with the paper's",
                     "file": spec, "sha256": sha256_of(path)}

        def measure(images: np.ndarray, labels: np.ndarray) -> dict:
            accuracy = classifier_accuracy(classifier, images, labels)
            return {"classifier_accuracy": accuracy["classifier_accuracy"]} | proxy_metrics(classifier, images, reference)

        return measure, identity
    from ..eval.evaluate import evaluate
    from ..eval.inception import load_inception, preprocess

    network = load_inception(spec, device)
    statistics = load_statistics(settings.reference) if str(settings.reference).endswith(".npz") else {}
    identity |= {"what": "Inception-v3 2015-12-05 (the OpenAI evaluator's network)", "file": spec, "sha256": sha256_of(spec)}

    def inception_metrics(images: np.ndarray, labels: np.ndarray) -> dict:
        return evaluate(lambda x: network(preprocess(x).to(device)), images, reference, statistics, progress=False)

    return inception_metrics, identity


# ------------------------------------------------------------------------------------------------ the runner
def seed_folder(out: pathlib.Path, recipe: str, seed: int) -> pathlib.Path:
    return out / "images" / recipe / f"seed{seed}"


def row_path(out: pathlib.Path, recipe: str) -> pathlib.Path:
    return out / "rows" / f"{recipe}.json"


def layer_error_summary(reference: VAR, recipe: Recipe, lambdas: dict | None, store: ActivationStore) -> list[dict]:
    """Per quantized layer: mean MSE and SQNR over the steps, and the worst step's SQNR (`layer_error_report`).

    Each layer is fed the full-precision model's inputs. A folded lambda lives in the AdaLN output, outside the
    layer, so GALT recipes are measured with lambda applied online inside the layer (the same product)."""
    quantized = quantize_model(copy.deepcopy(reference), recipe.replace(galt_fold=False) if recipe.galt else recipe, lambdas)
    names = [n for n in store.names if isinstance(quantized.get_submodule(n), QuantizedLinear)]
    summary = []
    for name in names:
        rows = layer_error_report(reference, quantized, store, [name])
        finite = [r["sqnr_db"] for r in rows if np.isfinite(r["sqnr_db"])]
        summary.append({"layer": name, "mse": float(np.mean([r["mse"] for r in rows])),
                        "sqnr_db": float(np.mean(finite)) if finite else None,
                        "worst_step": min(rows, key=lambda r: r["sqnr_db"])["step"],
                        "worst_sqnr_db": min(finite) if finite else None})
    return summary


def _mean_and_spread(by_seed: dict[str, dict]) -> tuple[dict, dict]:
    names = sorted({k for m in by_seed.values() for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.startswith("num_")})
    mean, spread = {}, {}
    for name in names:
        values = [m[name] for m in by_seed.values() if name in m]
        mean[name] = float(np.mean(values))
        spread[name] = float(max(values) - min(values)) if len(values) > 1 else None
    return mean, spread


def run_table(
    settings: TableSettings,
    recipes: Sequence[str | Recipe],
    out: str | pathlib.Path,
    *,
    process: Process | None = None,
    progress: bool = True,
) -> list[dict]:
    """Rows of ``recipes`` in ``out``/rows/ (computing those that are missing); returns them in order."""
    out = pathlib.Path(out)
    process = process or Process(0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    device, amp = process.device, AMP_DTYPES[settings.dtype]
    recipes = [get_recipe(r) if isinstance(r, str) else r for r in recipes]
    var, vae, model = load_models(settings.var, settings.vae, device)
    classes = parse_classes(settings.classes, var.num_classes)
    beyond = [r.name for r in recipes if any(int(n.split(".")[1]) >= len(var.blocks) for n in r.block_overrides)]
    if beyond:
        raise ValueError(f"recipes {beyond} were made for a deeper VAR than this depth-{len(var.blocks)} one; leave them out")
    identity = json.loads(json.dumps({"settings": settings.to_dict(), "model": model}))  # as read back from JSON
    manifest = out / "run.json"
    if manifest.exists() and json.loads(manifest.read_text()) != identity:
        raise ValueError(f"{out} holds rows made with other settings or checkpoints ({manifest}); resume with the same ones or use another --out")
    process.barrier()
    if process.rank == 0:
        with atomic_path(manifest) as tmp:
            tmp.write_text(json.dumps(identity, indent=2) + "\n")

    lazy: dict = {}  # rank 0's evaluator, held-out tokens and calibration store, built when a row needs them

    def evaluator() -> tuple[Evaluator, dict]:
        if "evaluator" not in lazy:
            lazy["evaluator"] = build_evaluator(settings, device)
        return lazy["evaluator"]

    rows = []
    for recipe in tqdm(recipes, desc="recipes", disable=not progress or process.rank != 0, position=process.world_size):
        path = row_path(out, recipe.name)
        if path.exists():
            row = json.loads(path.read_text())
            if row["recipe"] != json.loads(recipe.to_json()):
                raise ValueError(f"{path} holds another recipe under the name {recipe.name}; move it away or use another --out")
            rows.append(row)
            continue
        started, wall = time.perf_counter(), {}
        lambdas, galt = None, None
        if recipe.galt:
            learn = functools.partial(galt_lambdas, var, vae, recipe, options=settings.galt, var_sha256=model["var_sha256"],
                                      cache_dir=out / "galt", device=device, amp_dtype=amp, progress=progress)
            if process.rank == 0:
                lambdas, galt = learn()
            process.barrier()
            if process.rank != 0:  # the others read rank 0's cache
                lambdas, galt = learn()
            wall["galt"] = galt["seconds"]
        tick = time.perf_counter()
        quantized = quantize_model(copy.deepcopy(var), recipe, lambdas)
        wall["quantize"] = round(time.perf_counter() - tick, 3)
        plans = {seed: plan_batches(classes, settings.per_class, settings.batch_size, seed) for seed in settings.seeds}
        tick = time.perf_counter()
        for seed, plan in plans.items():
            generate_batches(quantized, vae, batches_for_rank(plan, process.rank, process.world_size),
                             seed_folder(out, recipe.name, seed), amp_dtype=amp, progress=progress, position=process.rank,
                             cfg=settings.cfg, top_k=settings.top_k, top_p=settings.top_p)
        wall["sampling_this_run"] = round(time.perf_counter() - tick, 2)  # batches found on disk cost nothing
        tokens = _held_out(lazy, settings, var, vae, classes, out, process, progress)
        process.barrier()
        if process.rank == 0:
            measure, evaluator_id = evaluator()
            tick = time.perf_counter()
            by_seed = {}
            for seed, plan in plans.items():
                images, labels = read_images(seed_folder(out, recipe.name, seed), plan)
                by_seed[str(seed)] = measure(images, labels)
            wall["evaluation"] = round(time.perf_counter() - tick, 2)
            tick = time.perf_counter()
            teacher = teacher_forced_metrics(var, quantized, tokens, amp_dtype=amp, reference_logits=_logit_cache(lazy, var, tokens))
            wall["teacher_forced"] = round(time.perf_counter() - tick, 2)
            tick = time.perf_counter()
            store = _report_store(lazy, settings, var, vae, amp)
            layers = layer_error_summary(var, recipe, lambdas, store) if store is not None else []
            wall["layer_report"] = round(time.perf_counter() - tick, 2)
            mean, spread = _mean_and_spread(by_seed)
            wall["total_this_run"] = round(time.perf_counter() - started, 2)
            row = {
                "schema": ROW_SCHEMA,
                "recipe_name": recipe.name,
                "recipe": recipe.to_dict(),
                "model": model,
                "evaluator": evaluator_id,
                "settings": settings.to_dict(),
                "protocol": {"classes": classes, "per_class": settings.per_class, "batch_size": settings.batch_size,
                             "seeds": list(settings.seeds), "cfg": settings.cfg, "top_k": settings.top_k,
                             "top_p": settings.top_p, "dtype": settings.dtype},
                "num_samples": len(classes) * settings.per_class,
                "metrics": mean,
                "metrics_by_seed": by_seed,
                "spread": spread,
                "spread_is": SEED_METRIC_SPREAD,
                "teacher_forced": teacher,
                "teacher_forced_spread_is": TEACHER_FORCED_SPREAD,
                "layer_errors": layers,
                "galt": galt,
                "wall_seconds": wall,
                "run": {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                        "world_size": process.world_size, "torch": torch.__version__,
                        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")},
            }
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(row, indent=1, allow_nan=False) + "\n")
        process.barrier()
        rows.append(json.loads(path.read_text()))
        del quantized
    return rows


def _held_out(lazy: dict, settings: TableSettings, var: VAR, vae: VQVAE, classes: list[int], out: pathlib.Path,
              process: Process, progress: bool) -> HeldOutTokens | None:
    """Rank 0's held-out tokens (None on the other ranks), made once. ``samples``: the full-precision model's
    own images, drawn by every rank (seeds 1,000,000 + j: apart from the table's sampling seeds)."""
    if "tokens" in lazy:
        return lazy["tokens"]
    size = var.patch_nums[-1] * vae.config.downsample
    if settings.held_out == "samples":
        per_class = -(-settings.held_out_images // len(classes))
        plan = plan_batches(classes, per_class, settings.batch_size, 1_000_000)
        folder = out / "held_out_samples"
        generate_batches(var, vae, batches_for_rank(plan, process.rank, process.world_size), folder,
                         amp_dtype=AMP_DTYPES[settings.dtype], progress=progress, position=process.rank,
                         cfg=settings.cfg, top_k=settings.top_k, top_p=settings.top_p)
        process.barrier()
        if process.rank == 0:
            images, labels = read_images(folder, plan)
            source = f"the full-precision model's own samples ({per_class} per class, seeds 1000000+)"
    elif process.rank == 0 and settings.held_out == "mnist-test":
        from ..datasets import load_mnist

        images, labels = load_mnist("test")
        source = "MNIST test images"
    elif process.rank == 0:
        images, labels = folder_images(pathlib.Path(settings.held_out), size, settings.held_out_images)
        source = f"images of {settings.held_out}"
    if process.rank != 0:
        lazy["tokens"] = None
        return None
    from ..datasets import images_to_signed_nchw

    images, labels = images[: settings.held_out_images], labels[: settings.held_out_images]
    if images.shape[1:3] != (size, size):
        raise ValueError(f"held-out images are {images.shape[1]}x{images.shape[2]}; this VQVAE takes {size}x{size}")
    device = var.pos_1LC.device
    vae_input = images_to_signed_nchw(images, device)
    lazy["tokens"] = held_out_tokens(vae, vae_input, labels, f"{source}: first {len(labels)}")
    return lazy["tokens"]


def _logit_cache(lazy: dict, var: VAR, tokens: HeldOutTokens, budget: int = 2**30) -> dict | None:
    """Where rank 0 keeps the reference model's held-out logits for the next recipes, when they fit in ``budget``
    bytes (1,000 images of the embedded model: 0.3 GB; of VAR-d30: 11 GB, recomputed instead)."""
    if tokens.targets.numel() * var.config.vocab_size * 4 > budget:
        return None
    return lazy.setdefault("reference_logits", {})


def _report_store(lazy: dict, settings: TableSettings, var: VAR, vae: VQVAE, amp: torch.dtype | None) -> ActivationStore | None:
    """Inputs of every block linear of the full-precision model on ``report_samples`` calibration samples."""
    if settings.report_samples < 1:
        return None
    if "store" not in lazy:
        names = block_linear_names(var)
        classes = calibration_classes(settings.report_samples, var.num_classes, "random", settings.galt.seed)
        lazy["store"] = capture_activations(var, vae, names, classes, seed=settings.galt.seed, amp_dtype=amp, progress=False)
    return lazy["store"]


def read_rows(folder: str | pathlib.Path) -> list[dict]:
    """Every row of a results folder (``<folder>/rows/*.json``, or the folder's own ``*.json`` rows)."""
    folder = pathlib.Path(folder)
    files = sorted((folder / "rows").glob("*.json")) or sorted(p for p in folder.glob("*.json") if p.name != "run.json")
    rows = [json.loads(p.read_text()) for p in files]
    return [r for r in rows if r.get("schema") == ROW_SCHEMA]
