"""The experiment runner (`fpqvar table`): teacher-forced metrics, row schema, resume, torchrun, comparisons."""

import copy
import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_models import tiny_pair

from fpqvar.checkpoints import save_safetensors
from fpqvar.experiments import (
    GaltOptions,
    TableSettings,
    compare,
    held_out_tokens,
    read_rows,
    run_table,
    runner,
    teacher_forced_metrics,
)
from fpqvar.experiments.teacher_forced import bootstrap_interval
from fpqvar.methods import Recipe, get_recipe

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def pair():
    vae, var = tiny_pair()
    with torch.no_grad():
        var.head.weight.mul_(50)  # the from-scratch head is near zero: every next-token distribution near uniform
    return vae, var


def _tokens(vae, count=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(count, 3, 8, 8, generator=g) * 2 - 1
    return held_out_tokens(vae, images, torch.arange(count) % 10, "random test images")


# ------------------------------------------------------------------------------------------ teacher-forced
def test_a_model_against_itself_has_zero_kl_and_full_agreement(pair):
    vae, var = pair
    metrics = teacher_forced_metrics(var, copy.deepcopy(var), _tokens(vae), batch_size=4)
    assert metrics["kl"] == 0.0
    assert metrics["top1_agreement"] == 1.0
    assert metrics["nll"] == metrics["nll_reference"]
    assert metrics["tokens"] == 6 * var.config.num_tokens and metrics["images"] == 6


def test_nll_and_kl_match_a_hand_computation(pair):
    vae, var = pair
    other = copy.deepcopy(var)
    with torch.no_grad():
        other.head.weight.add_(torch.randn_like(other.head.weight) * 0.5)  # a different next-token distribution
    tokens = _tokens(vae, count=5)
    metrics = teacher_forced_metrics(var, other, tokens, batch_size=2)  # batches of 2, 2, 1: sums must add up
    nll = kl = agree = 0.0
    with torch.no_grad():
        for i in range(len(tokens)):
            p = var(tokens.labels[i : i + 1], tokens.inputs[i : i + 1])[0].double().softmax(-1)
            q = other(tokens.labels[i : i + 1], tokens.inputs[i : i + 1])[0].double().softmax(-1)
            for position, target in enumerate(tokens.targets[i].tolist()):
                nll -= math.log(q[position, target])
                kl += float((p[position] * (p[position].log() - q[position].log())).sum())
                agree += float(p[position].argmax() == q[position].argmax())
    count = tokens.targets.numel()
    assert metrics["nll"] == pytest.approx(nll / count, rel=1e-5)
    assert metrics["kl"] == pytest.approx(kl / count, rel=1e-4)
    assert metrics["kl"] > 1e-3
    assert metrics["top1_agreement"] == pytest.approx(agree / count)
    for name in ("nll", "kl", "top1_agreement"):
        low, high = metrics["interval"][name]
        assert low <= metrics[name] <= high


def test_teacher_forced_targets_are_the_vqvae_tokens(pair):
    vae, var = pair
    images = torch.rand(3, 3, 8, 8) * 2 - 1
    tokens = held_out_tokens(vae, images, [1, 2, 3], "x")
    assert torch.equal(tokens.targets, torch.cat(vae.img_to_idxBl(images), dim=1))
    assert tokens.inputs.shape == (3, var.config.num_tokens - 1, var.Cvae)


def test_bootstrap_interval_is_the_spread_of_the_resampled_mean():
    per_image = np.arange(100, dtype=float)
    low, high = bootstrap_interval(per_image, tokens_per_image=1, resamples=2000)
    # the mean of 100 draws of 0..99: sd 28.9 / 10 = 2.9, so the 95% interval is about 49.5 +- 5.7
    assert 43 < low < 45 and 54 < high < 56
    assert bootstrap_interval(np.full(10, 3.0), 3) == (1.0, 1.0)


# ------------------------------------------------------------------------------------------ the runner
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, pair):
    vae, var = pair
    folder = tmp_path_factory.mktemp("ckpt")
    save_safetensors(var, folder / "var.safetensors")
    save_safetensors(vae, folder / "vae.safetensors")
    return folder


def _settings(folder, **changes):
    base = dict(var=str(folder / "var.safetensors"), vae=str(folder / "vae.safetensors"), classes="0-2", per_class=3,
                batch_size=2, seeds=(0, 5), dtype="fp32", evaluator="none", held_out="samples", held_out_images=6,
                report_samples=1, galt=GaltOptions(samples=2, epochs=2))
    return TableSettings(**{**base, **changes})


def _comparable(row):
    """A row without what depends on the machine and the run: wall times, date, world size."""
    return {k: v for k, v in row.items() if k not in ("wall_seconds", "run")} | {"galt": row["galt"] and row["galt"]["options"]}


def test_rows_have_the_schema_the_notebook_reads(checkpoints, tmp_path):
    rows = run_table(_settings(checkpoints), ["fp16", "fp4_fpqvar"], tmp_path, progress=False)
    assert [r["recipe_name"] for r in rows] == ["fp16", "fp4_fpqvar"]
    row = json.loads((tmp_path / "rows" / "fp4_fpqvar.json").read_text())
    for key in ("recipe", "model", "evaluator", "settings", "protocol", "num_samples", "metrics", "metrics_by_seed", "spread",
                "teacher_forced", "layer_errors", "galt", "wall_seconds", "run"):
        assert key in row, key
    assert Recipe.from_dict(row["recipe"]) == get_recipe("fp4_fpqvar")  # the recipe as saved, in full
    assert row["model"]["var_sha256"] == runner.sha256_of(checkpoints / "var.safetensors")
    assert row["num_samples"] == 9 and row["protocol"]["seeds"] == [0, 5] and row["protocol"]["cfg"] == 1.5
    assert set(row["metrics_by_seed"]) == {"0", "5"}
    assert row["galt"]["options"]["samples"] == 2 and not row["galt"]["cached"]
    assert list((tmp_path / "galt").glob("galt_*.safetensors"))
    tf = row["teacher_forced"]
    assert tf["kl"] > 0 and 0 < tf["top1_agreement"] < 1 and tf["images"] == 6
    assert rows[0]["teacher_forced"]["kl"] == 0.0  # fp16: nothing quantized
    quantized_layers = {e["layer"] for e in row["layer_errors"]}
    assert "blocks.0.attn.mat_qkv" in quantized_layers and "blocks.1.ffn.fc2" in quantized_layers
    assert all(e["mse"] > 0 for e in row["layer_errors"]) and rows[0]["layer_errors"] == []
    assert len(list((tmp_path / "images" / "fp4_fpqvar" / "seed5").glob("*.png"))) == 9
    assert read_rows(tmp_path) == rows


def test_layer_report_of_a_folded_galt_recipe_matches_the_online_one(checkpoints, pair):
    vae, var = pair
    lambdas = {f"blocks.{i}.{k}": torch.rand(var.config.C) + 0.5 for i in range(2) for k in ("attn.mat_qkv", "ffn.fc1")}
    from fpqvar.methods.calibration import capture_activations

    store = capture_activations(var, vae, ["blocks.0.attn.mat_qkv", "blocks.0.ffn.fc1"], [1], progress=False)
    folded = runner.layer_error_summary(var, get_recipe("fp4_fpqvar"), lambdas, store)
    online = runner.layer_error_summary(var, get_recipe("fp4_fpqvar").replace(galt_fold=False), lambdas, store)
    assert folded == online
    plain = runner.layer_error_summary(var, get_recipe("fp4_dfq_ght"), None, store)
    assert [e["mse"] for e in plain] != [e["mse"] for e in folded]  # lambda does change the error


def test_an_interrupted_run_continues_without_computing_anything_twice(checkpoints, tmp_path, monkeypatch):
    settings = _settings(checkpoints, report_samples=0)
    reference = run_table(settings, ["fp16", "int8_rtn"], tmp_path / "reference", progress=False)

    out = tmp_path / "run"
    generated, measured = [], []
    real_generate, real_measure = runner.generate_batches, runner.teacher_forced_metrics

    def counting_generate(var, vae, batches, folder, **kwargs):
        done = real_generate(var, vae, batches, folder, **kwargs)
        generated.append((folder.parent.name, folder.name, done))
        return done

    def interrupting_measure(reference_model, quantized, tokens, **kwargs):
        measured.append(quantized.recipe.name)
        if quantized.recipe.name == "int8_rtn" and measured.count("int8_rtn") == 1:
            raise KeyboardInterrupt  # killed after int8_rtn's images, before its row
        return real_measure(reference_model, quantized, tokens, **kwargs)

    monkeypatch.setattr(runner, "generate_batches", counting_generate)
    monkeypatch.setattr(runner, "teacher_forced_metrics", interrupting_measure)
    with pytest.raises(KeyboardInterrupt):
        run_table(settings, ["fp16", "int8_rtn"], out, progress=False)
    assert [p.name for p in (out / "rows").iterdir()] == ["fp16.json"]  # no half-written row
    fp16_written = (out / "rows" / "fp16.json").stat().st_mtime_ns
    # Also lose two images of one int8 batch, as a kill in the middle of a batch's PNGs would.
    (out / "images" / "int8_rtn" / "seed5" / "class1_img2.png").unlink()
    generated.clear()
    rows = run_table(settings, ["fp16", "int8_rtn"], out, progress=False)
    assert (out / "rows" / "fp16.json").stat().st_mtime_ns == fp16_written  # the finished row is not recomputed
    assert measured == ["fp16", "int8_rtn", "int8_rtn"]  # fp16 measured once, int8 once more after the interrupt
    # only int8's seed-5 batch with the lost image was drawn again: 1 batch (held-out samples were all on disk)
    assert ("int8_rtn", "seed5", 1) in generated and sum(n for *_, n in generated) == 1
    assert [_comparable(r) for r in rows] == [_comparable(r) for r in reference]
    assert list(out.rglob(".*")) == []  # no temporary file left


def test_a_folder_with_other_settings_is_refused_not_overwritten(checkpoints, tmp_path):
    run_table(_settings(checkpoints, report_samples=0), ["fp16"], tmp_path, progress=False)
    before = (tmp_path / "rows" / "fp16.json").read_text()
    with pytest.raises(ValueError, match="other settings"):
        run_table(_settings(checkpoints, report_samples=0, per_class=4), ["fp16"], tmp_path, progress=False)
    assert (tmp_path / "rows" / "fp16.json").read_text() == before


def test_settings_refuse_seeds_that_would_share_images():
    TableSettings(per_class=4, batch_size=2, seeds=(0, 2))
    with pytest.raises(ValueError, match="share images"):
        TableSettings(per_class=4, batch_size=2, seeds=(0, 1))  # seed 0's batch 1 is seed 1's batch 0
    with pytest.raises(ValueError, match="evaluator"):
        TableSettings(evaluator="fid")


def test_recipes_for_a_deeper_model_are_refused(checkpoints, tmp_path):
    with pytest.raises(ValueError, match="deeper"):
        run_table(_settings(checkpoints), ["fp16", "fp4_mixedformat_d30"], tmp_path, progress=False)


def test_folder_images_read_classes_from_names_and_folders(tmp_path):
    from PIL import Image

    (tmp_path / "7").mkdir()
    Image.new("RGB", (12, 10), (255, 0, 0)).save(tmp_path / "7" / "a.png")
    Image.new("RGB", (8, 8), (0, 255, 0)).save(tmp_path / "class3_img0.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "unlabelled.png")
    images, labels = runner.folder_images(tmp_path, 8, 10)
    assert images.shape == (2, 8, 8, 3) and sorted(labels.tolist()) == [3, 7]


def _cli_table(ckpt, out, processes):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["table", "--var", str(ckpt / "var.safetensors"), "--vae", str(ckpt / "vae.safetensors"), "--out", str(out),
            "--recipes", "fp16", "fp4_dfq", "--classes", "0-2", "--per-class", "3", "--batch-size", "2", "--seeds", "0", "2",
            "--evaluator", "none", "--held-out", "samples", "--held-out-images", "6", "--report-samples", "1",
            "--dtype", "fp32", "--device", "cpu", "--quiet"]
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] if processes > 1 else []
    return subprocess.run([sys.executable, *launcher, "-m", "fpqvar.cli", *args], env=env, capture_output=True, text=True, timeout=600)


def test_two_processes_give_the_rows_and_images_of_one(checkpoints, tmp_path):
    single = _cli_table(checkpoints, tmp_path / "one", 1)
    assert single.returncode == 0, single.stderr
    double = _cli_table(checkpoints, tmp_path / "two", 2)
    assert double.returncode == 0, double.stderr
    assert "fp4_dfq: KL" in single.stdout
    one, two = read_rows(tmp_path / "one"), read_rows(tmp_path / "two")
    assert [r["run"]["world_size"] for r in one + two] == [1, 1, 2, 2]
    assert [_comparable(r) for r in one] == [_comparable(r) for r in two]
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one" / "images").rglob("*.png"))
    assert len(files) == 2 * 2 * 9
    from PIL import Image

    for f in files:
        assert np.array_equal(np.asarray(Image.open(tmp_path / "one" / f)), np.asarray(Image.open(tmp_path / "two" / f)))


def test_the_command_reports_bad_input_in_one_line(tmp_path):
    from fpqvar.cli import main

    assert main(["table", "--recipes", "no_such_recipe", "--out", str(tmp_path), "--device", "cpu", "--quiet"]) == 2


# ------------------------------------------------------------------------------------------ comparisons
def _frame(values: dict[str, float], spread: float, metric="kl"):
    return pd.DataFrame({metric: values, f"{metric}_spread": {k: spread for k in values}})


def test_spearman_ranks():
    assert compare.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1)
    assert compare.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    assert math.isnan(compare.spearman([1, 1, 1], [1, 2, 3]))


def test_gains_carry_their_sign_and_a_not_significant_mark():
    ours = _frame({"fp4_baseline": 0.10, "fp4_dfq": 0.05, "fp4_dfq_ght": 0.049}, spread=0.005)
    better = compare.gain(ours, "fp4_dfq", "fp4_baseline", "kl")
    assert better["gain"] == pytest.approx(0.05) and better["significant"]  # lower KL is better: a positive gain
    within = compare.gain(ours, "fp4_dfq_ght", "fp4_dfq", "kl")
    assert within["gain"] == pytest.approx(0.001) and not within["significant"]
    paper = pd.DataFrame({"row": ["a", "b", "c"], "recipe": ["fp4_baseline", "fp4_dfq", "fp4_dfq_ght"], "FID": [10.72, 8.25, 5.18]})
    table = compare.gains_table(ours, paper, [("fp4_dfq", "fp4_baseline"), ("fp4_dfq_ght", "fp4_dfq")], ["kl"])
    assert table["kl verdict"].tolist() == ["better", "n.s."]
    assert table["paper gain (FID)"].tolist() == pytest.approx([2.47, 3.07])
    order = compare.quality_order_correlation(ours, paper)
    assert order.loc["kl"].iloc[0] == pytest.approx(1.0)  # same best-to-worst order as the paper's FID
    assert compare.separation(ours, ["kl"]).loc["kl", "pairs apart"] == 2


def test_paper_tables_name_recipes_that_exist(repo_root):
    from fpqvar.methods import RECIPES
    from fpqvar.paper import load_table

    for name, rows in (("table2_preliminary", 8), ("table3_256", 13), ("table4_512", 11), ("table7_ablation", 5)):
        table = load_table(name)
        assert len(table) == rows and set(table["recipe"]) <= set(RECIPES), name
    table3 = load_table("table3_256").set_index("recipe")
    assert table3.loc["fp4_fpqvar", "IS"] - table3.loc["int4_litevar", "IS"] == pytest.approx(65.6)  # as the text says


def test_side_by_side_keeps_the_paper_order_and_leaves_missing_rows_empty():
    ours = _frame({"fp4_dfq": 0.05, "fp4_baseline": 0.1}, spread=0.01)
    paper = pd.DataFrame({"row": ["FP4 baseline", "+ DFQ", "+ DFQ & HT"], "recipe": ["fp4_baseline", "fp4_dfq", "fp4_dfq_ht"],
                          "FID": [10.72, 8.25, 4.69]})
    table = compare.side_by_side(ours, paper, ["kl"], "ours", "paper")
    assert list(table.index) == ["FP4 baseline", "+ DFQ", "+ DFQ & HT"]
    assert table[("paper", "FID")].tolist() == [10.72, 8.25, 4.69]
    assert table[("ours", "kl")].tolist()[:2] == [0.1, 0.05] and math.isnan(table[("ours", "kl")].iloc[2])
