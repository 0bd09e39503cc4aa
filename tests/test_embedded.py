"""The embedded default: its dataset, the classifier, the training stages end to end (tiny, on CPU), the CLI,
and the committed checkpoints (present, intact, loadable, within size, measured)."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from fpqvar.checkpoints import load_state_dict
from fpqvar.cli import main
from fpqvar.datasets import images_to_signed_nchw, load_mnist
from fpqvar.datasets.mnist import to_rgb32
from fpqvar.eval.classifier import DigitClassifier, load_classifier
from fpqvar.eval.evaluate import evaluation_order
from fpqvar.eval.metrics import inception_score
from fpqvar.eval.quality import classifier_accuracy, trusted_metrics
from fpqvar.generation import generate_arrays, plan_batches
from fpqvar.model.loading import load_vae, load_var
from fpqvar.paths import EMBEDDED_FILES, embedded_dir, resolve_checkpoint
from fpqvar.train.embedded import (
    EMBEDDED_VAR,
    EmbeddedRecipe,
    Stage,
    measure_fp16_quality,
    sha256_of,
    shift_images,
    train_embedded,
)
from fpqvar.train.loop import TrainConfig


def test_mnist_splits_are_the_standard_ones():
    train_images, train_labels = load_mnist("train")
    test_images, test_labels = load_mnist("test")
    assert train_images.shape == (60_000, 32, 32, 3) and test_images.shape == (10_000, 32, 32, 3)
    assert train_images.dtype == np.uint8 and train_labels.dtype == np.int64
    assert train_labels[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]  # MNIST's published training order
    assert np.bincount(test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert (train_images[:, :2].max(), train_images[:, :, -2:].max()) == (0, 0)  # the 2-pixel padding is black
    with pytest.raises(ValueError, match="unknown MNIST split"):
        load_mnist("validation")


def test_padding_keeps_every_pixel_exact():
    k = np.arange(784) % 256
    rgb = to_rgb32((k / 256).astype(np.float32)[None])
    assert np.array_equal(rgb[0, 2:30, 2:30, 1].reshape(-1), k.astype(np.uint8))


def test_shift_moves_whole_pixels_and_fills_black():
    x = torch.full((1, 3, 8, 8), -1.0)
    x[0, :, 3, 4] = 1.0
    shifted = shift_images(x, torch.Generator().manual_seed(0), max_shift=2)
    assert set(shifted.unique().tolist()) == {-1.0, 1.0} and int((shifted == 1).sum()) == 3


def test_evaluation_order_gives_every_inception_split_every_class():
    probabilities = np.eye(10)[np.repeat(np.arange(10), 1000)]  # one-hot, class-sorted: plan order
    assert inception_score(probabilities, splits=2)[0] == pytest.approx(5)  # each split sees 5 classes
    assert inception_score(probabilities[evaluation_order(10_000)], splits=2)[0] == pytest.approx(10, abs=0.01)
    assert np.array_equal(evaluation_order(50), evaluation_order(50))


def test_trusted_metrics_drop_inception_score_of_class_sorted_runs():
    old = {"classifier_fid": 1.0, "classifier_is": 5.0, "classifier_is_std": 0.0}
    assert trusted_metrics(old) == {"classifier_fid": 1.0}
    assert trusted_metrics(old | {"sample_order": "mixed"}) == old | {"sample_order": "mixed"}


def test_classifier_features_have_the_evaluator_layout():
    torch.manual_seed(0)
    model = DigitClassifier().eval()
    out = model.extract(torch.randint(0, 256, (5, 32, 32, 3), dtype=torch.uint8))
    assert out["pool"].shape == (5, 128) and out["spatial"].shape == (5, 512) and out["probs"].shape == (5, 10)
    assert torch.allclose(out["probs"].sum(-1), torch.ones(5))
    with pytest.raises(ValueError, match="32x32 images"):
        model.extract(torch.zeros(1, 28, 28, 3, dtype=torch.uint8))


TINY_RECIPE = EmbeddedRecipe(
    vqvae=Stage(TrainConfig(steps=3, lr=5e-4, weight_decay=0.0, checkpoint_every=2, seed=0), 8),
    var=Stage(TrainConfig(steps=3, lr=4e-4, checkpoint_every=2, seed=1), 8),
    classifier=Stage(TrainConfig(steps=3, lr=1e-3, checkpoint_every=2, seed=2), 8),
    train_images=64,
    held_out_images=50,
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("embedded")
    manifest = train_embedded(out, "cpu", TINY_RECIPE, command="test", progress=False)
    return out, manifest


def test_training_writes_fp16_checkpoints_logs_and_a_manifest(tiny_run):
    out, manifest = tiny_run
    for stage, name in EMBEDDED_FILES.items():
        entry = manifest["stages"][stage]
        assert entry["sha256"] == sha256_of(out / name) and entry["steps"] == 3 and entry["command"] == "test"
        assert len((out / "logs" / f"{stage}.jsonl").read_text().splitlines()) == 2  # steps 0 and the last
    assert all(v.dtype != torch.float32 for v in load_state_dict(out / "var.safetensors").values())  # stored fp16
    var = load_var(out / "var.safetensors")
    assert var.config == EMBEDDED_VAR and var.blocks[0].attn.mat_qkv.weight.dtype == torch.float32  # loads fp32
    assert load_vae(out / "vqvae.safetensors").patch_nums == EMBEDDED_VAR.patch_nums
    assert not (out / "work").exists()
    # the recorded held-out accuracy is the shipped (fp16) classifier's on the first 50 test images, recomputed here
    classifier = load_classifier(out / "classifier.safetensors")
    images, labels = load_mnist("test")
    with torch.no_grad():
        predicted = classifier(images_to_signed_nchw(images[:50])).argmax(-1).numpy()
    assert manifest["stages"]["classifier"]["held_out"]["test_accuracy"] == (predicted == labels[:50]).sum() / 50


def test_finished_stages_are_skipped_and_other_recipes_refused(tiny_run):
    out, manifest = tiny_run
    again = train_embedded(out, "cpu", TINY_RECIPE, command="second", progress=False)
    assert again["stages"] == manifest["stages"]
    with pytest.raises(ValueError, match="trained with other settings or another VQVAE"):
        train_embedded(out, "cpu", dataclasses.replace(TINY_RECIPE, train_images=32), progress=False)


def test_stages_run_in_dependency_order_and_a_new_vqvae_makes_the_var_stale(tiny_run, tmp_path):
    out, _ = tiny_run
    for name in ("vqvae.safetensors", "manifest.json"):
        (tmp_path / name).write_bytes((out / name).read_bytes())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["stages"] = {"vqvae": manifest["stages"]["vqvae"]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    trained = train_embedded(tmp_path, "cpu", TINY_RECIPE, stages=("var", "vqvae"), progress=False)  # vqvae kept
    assert trained["stages"]["var"]["settings"]["vqvae_sha256"] == manifest["stages"]["vqvae"]["sha256"]
    (tmp_path / "vqvae.safetensors").write_bytes(b"retrained")
    with pytest.raises(ValueError, match="another VQVAE"):
        train_embedded(tmp_path, "cpu", TINY_RECIPE, stages=("var",), progress=False)


def test_an_interrupted_stage_refuses_to_resume_on_other_data(tmp_path, monkeypatch):
    from fpqvar.train import embedded

    def stop_after_first_checkpoint(step, row):
        if step == 1:
            raise KeyboardInterrupt

    train_every_step = embedded.train
    monkeypatch.setattr(embedded, "train", lambda *a, **k: train_every_step(*a, **{**k, "on_log": stop_after_first_checkpoint}))
    recipe = dataclasses.replace(TINY_RECIPE, vqvae=Stage(dataclasses.replace(TINY_RECIPE.vqvae.train, checkpoint_every=1), 8))
    with pytest.raises(KeyboardInterrupt):
        train_embedded(tmp_path, "cpu", recipe, stages=("vqvae",), progress=False)
    assert (tmp_path / "work" / "vqvae.pt").exists() and not (tmp_path / "manifest.json").exists()
    with pytest.raises(ValueError, match="other training settings"):
        train_embedded(tmp_path, "cpu", dataclasses.replace(recipe, train_images=32), stages=("vqvae",), progress=False)


def test_quality_stage_records_accuracy_and_labelled_proxy_metrics(tiny_run):
    out, _ = tiny_run
    quality = measure_fp16_quality(out, "cpu", per_class=2, batch_size=2, reference_images=40, progress=False)
    assert "proxy" in quality["evaluator"] and "not Inception" in quality["evaluator"]
    for key in ("classifier_accuracy", "classifier_fid", "classifier_sfid", "classifier_is", "classifier_precision"):
        assert key in quality["samples"] and key in quality["real_training_images"]
    assert trusted_metrics(quality["samples"]) == quality["samples"]  # scored in the mixed order
    assert set(quality["samples"]["per_class_accuracy"]) == {str(c) for c in range(10)}
    assert json.loads((out / "quality_fp16.json").read_text()) == quality


def test_sample_cli_and_classifier_evaluate_cli(tiny_run, tmp_path):
    out, _ = tiny_run
    args = ["sample", "--var", str(out / "var.safetensors"), "--vae", str(out / "vqvae.safetensors"),
            "--out", str(tmp_path / "png"), "--classes", "0-9", "--per-class", "1", "--batch-size", "1",
            "--dtype", "fp32", "--device", "cpu", "--quiet"]
    assert main(args) == 0
    assert np.load(tmp_path / "png.npz")["arr_0"].shape == (10, 32, 32, 3)
    assert main(["evaluate", str(tmp_path / "png.npz"), str(tmp_path / "png.npz"), "--classifier",
                 str(out / "classifier.safetensors"), "--out", str(tmp_path / "m.json"), "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["classifier_fid"] == pytest.approx(0, abs=1e-6) and "fid" not in metrics
    assert metrics["evaluator"].startswith("proxy")
    assert main(["evaluate", str(tmp_path / "png.npz"), "mnist-test", "--classifier", str(out / "classifier.safetensors"),
                 "--out", str(tmp_path / "t.json"), "--device", "cpu"]) == 0
    assert json.loads((tmp_path / "t.json").read_text())["num_reference"] == 10_000


# The committed embedded model (data/embedded/): made by `nox -s embedded` on a GPU.

def test_committed_checkpoints_match_their_manifest_and_the_size_budget():
    manifest = json.loads((embedded_dir() / "manifest.json").read_text())
    total = 0
    for stage, name in EMBEDDED_FILES.items():
        path = resolve_checkpoint("embedded", stage)
        assert sha256_of(path) == manifest["stages"][stage]["sha256"], f"{name} differs from manifest.json"
        total += path.stat().st_size
        assert manifest["stages"][stage]["settings"] == EmbeddedRecipe().stage_settings(stage), f"{name}: not the default recipe"
    assert total <= 40e6, f"embedded checkpoints take {total / 1e6:.1f} MB; the budget is 40 MB"


def test_committed_model_draws_recognisable_digits():
    # 3 images per digit on CPU; the recorded 10,000-sample accuracy is in quality_fp16.json. 27 of 30 is the
    # 90% target; this small seeded draw must reach it too.
    var = load_var(resolve_checkpoint("embedded", "var"))
    vae = load_vae(resolve_checkpoint("embedded", "vqvae"), patch_nums=var.patch_nums)
    classifier = load_classifier(resolve_checkpoint("embedded", "classifier"))
    images, labels = generate_arrays(var, vae, plan_batches(list(range(10)), 3, 3, seed=0), progress=False)
    assert classifier_accuracy(classifier, images, labels)["classifier_accuracy"] >= 0.9


def test_recorded_quality_meets_the_target():
    quality = json.loads((embedded_dir() / "quality_fp16.json").read_text())
    manifest = json.loads((embedded_dir() / "manifest.json").read_text())
    for stage, entry in manifest["stages"].items():
        assert quality[f"{stage}_sha256"] == entry["sha256"], f"quality_fp16.json measured another {stage}"
    for scored in (quality["samples"], quality["real_training_images"]):
        assert trusted_metrics(scored) == scored  # scored in the mixed order: the IS splits saw every digit
    assert quality["samples"]["classifier_accuracy"] >= 0.9
    assert manifest["stages"]["classifier"]["held_out"]["test_accuracy"] >= 0.98


def test_embedded_name_errors_say_how_to_recreate(monkeypatch, tmp_path):
    monkeypatch.setenv("FPQVAR_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="nox -s embedded"):
        resolve_checkpoint("embedded", "var")
