"""Calibration capture, DFQ and MixedFormat searches, the layer-wise error report, and GALT."""

import math

import pytest
import torch
from tiny_models import tiny_pair

from fpqvar.formats import DualFormat, get_format
from fpqvar.methods import get_recipe, quantize_model
from fpqvar.methods.calibration import ActivationStore, calibration_classes, capture_activations
from fpqvar.methods.galt import galt_loss, learn_lambda
from fpqvar.methods.layers import InputTransform, OperandQuant
from fpqvar.methods.report import layer_error_report
from fpqvar.methods.search import FP6_FORMATS, search_dual_format, search_mixed_formats, search_uniform_formats
from fpqvar.quant import PerGroup, fake_quantize
from fpqvar.rotation import Rotation, orthogonal_hadamard

NAMES = ["blocks.0.attn.mat_qkv", "blocks.1.ffn.fc2"]


@pytest.fixture(scope="module")
def captured():
    vae, var = tiny_pair(width=384)
    store = capture_activations(var, vae, NAMES, classes=[0, 3, 7], progress=False)
    return vae, var, store


def test_calibration_classes():
    assert calibration_classes(5, mode="first") == [0, 1, 2, 3, 4]
    assert calibration_classes(100) == calibration_classes(100) and len(set(calibration_classes(100))) > 50
    with pytest.raises(ValueError, match="'random' \\(paper\\) or 'first'"):
        calibration_classes(3, mode="last")


def test_capture_concatenates_samples_per_step(captured):
    _, var, store = captured
    assert store.steps("blocks.1.ffn.fc2") == [0, 1, 2, 3]
    for step, pn in enumerate(var.patch_nums):
        assert store.get("blocks.1.ffn.fc2", step).shape == (3 * 2, pn * pn, 4 * 384)  # 3 samples x 2 CFG halves


def test_spilling_to_disk_returns_the_same_tensors(captured, tmp_path):
    vae, var, store = captured
    spilled = capture_activations(var, vae, NAMES, classes=[0, 3, 7], store=ActivationStore(memory_budget=10_000, spill_dir=tmp_path), progress=False)
    assert any(tmp_path.rglob("*.pt"))
    for name in NAMES:
        for step in store.steps(name):
            assert torch.equal(spilled.get(name, step), store.get(name, step))


def test_dfq_search_on_gelu_outputs_prefers_a_dual_format_to_afpq():
    g = torch.Generator().manual_seed(0)
    tensors = [torch.nn.functional.gelu(torch.randn(64, 512, generator=g) * 1.5 - 0.5, approximate="tanh") for _ in range(3)]
    best, errors = search_dual_format(tensors)
    assert len(errors) == 9
    # Each pair's error recomputed here, independently of the search's bookkeeping.
    for (negative, positive), error in errors.items():
        fmt = DualFormat(f"{negative}neg_{positive}pos", get_format(negative), get_format(positive))
        expected = sum(float((fake_quantize(x, fmt, PerGroup(128)) - x).double().pow(2).mean()) for x in tensors) / 3
        assert error == pytest.approx(expected, rel=1e-12)
    # GELU outputs lie in [-0.17, inf): the fine E1M2 grid for the negatives, E2M1 for the wide positives.
    assert (best.negative.name, best.positive.name) == ("fp4_e1m2", "fp4_e2m1")
    assert errors[("fp4_e1m2", "fp4_e2m1")] < errors[("fp4_e2m1", "fp4_e2m1")]  # DFQ beats AFPQ on GELU outputs


def test_mixed_format_search_picks_the_least_error_pair(captured):
    _, var, store = captured
    weights = {name: var.get_submodule(name).weight for name in NAMES}
    recipe, errors = search_mixed_formats(get_recipe("fp4_baseline"), store, weights)
    for name in NAMES:
        # Every pair's error recomputed from its definition: mean over steps of mean((x W^T - Q(x) Q(W)^T)^2).
        steps = store.per_step(name)
        for (weight_fmt, input_fmt), error in errors[name].items():
            qw = fake_quantize(weights[name].detach().float(), weight_fmt, PerGroup(128))
            expected = sum(
                float((torch.nn.functional.linear(fake_quantize(x, input_fmt, PerGroup(128)), qw) - x @ weights[name].detach().T).double().pow(2).mean())
                for x in steps
            ) / len(steps)
            assert error == pytest.approx(expected, rel=1e-6)
        chosen = recipe.block_overrides[name]
        others = [e for pair, e in errors[name].items() if pair != (chosen.weight.fmt, chosen.input.fmt)]
        assert errors[name][(chosen.weight.fmt, chosen.input.fmt)] < min(others)
    vae, fresh = tiny_pair(width=384)
    quantize_model(fresh, recipe)
    assert fresh.get_submodule(NAMES[0]).weight_quant.fmt == recipe.block_overrides[NAMES[0]].weight.fmt


def test_layer_error_report(captured):
    _, reference, store = captured
    reports = {}
    for name in ("int8_rtn", "fp4_baseline"):
        _, quantized = tiny_pair(width=384)
        quantize_model(quantized, get_recipe(name))
        reports[name] = layer_error_report(reference, quantized, store)
    assert len(reports["int8_rtn"]) == 2 * len(reference.patch_nums)
    mean_sqnr = {k: sum(r["sqnr_db"] for r in rows) / len(rows) for k, rows in reports.items()}
    assert mean_sqnr["int8_rtn"] > mean_sqnr["fp4_baseline"] > 0
    assert all(r["mse"] > 0 and math.isfinite(r["sqnr_db"]) for r in reports["fp4_baseline"])


def _outlier_layer(seed=0):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(128, 256, generator=g) * 0.05
    channel_scale = torch.ones(256)
    channel_scale[torch.randperm(256, generator=g)[:6]] = 30.0  # outlier channels, as in VAR's QKV / FC1 inputs
    steps = [torch.randn(32, n, 256, generator=g) * channel_scale for n in (1, 4, 16)]
    return weight, steps


def _loss(x, weight, lam, rotation, fp4):
    transform = InputTransform(weight.shape[1], Rotation(rotation))
    return galt_loss(x.reshape(1, -1, x.shape[-1]), weight[None], lam[None], transform, fp4, fp4, "even")[0]


def test_galt_reduces_the_quantization_error():
    weight, steps = _outlier_layer()
    rotation = orthogonal_hadamard(128)
    fp4 = OperandQuant("fp4_e2m1", PerGroup(128))
    lam, curve = learn_lambda(steps, weight, rotation, fp4, fp4, epochs=30, lr=0.01)
    assert lam.shape == (256,) and len(curve) == 30
    assert curve[-1] < 0.8 * curve[0]
    with torch.no_grad():
        before = sum(_loss(x, weight, torch.ones(256), rotation, fp4) for x in steps)
        after = sum(_loss(x, weight, lam, rotation, fp4) for x in steps)
    assert after < 0.8 * before


def test_galt_keeps_the_best_epoch_or_the_last():
    """"best" returns the lambda at the end of the epoch of least mean loss: the same as stopping there."""
    weight, steps = _outlier_layer()
    rotation = orthogonal_hadamard(128)
    fp4 = OperandQuant("fp4_e2m1", PerGroup(128))
    options = {"epochs": 6, "lr": 0.2, "weight_decay": 0.01}  # a large step: the loss goes up again after its minimum
    best, curve = learn_lambda(steps, weight, rotation, fp4, fp4, **options)
    last, _ = learn_lambda(steps, weight, rotation, fp4, fp4, select="last", **options)
    best_epoch = min(range(len(curve)), key=curve.__getitem__)
    assert best_epoch < len(curve) - 1  # otherwise best and last would coincide and the test could not tell
    stopped, _ = learn_lambda(steps, weight, rotation, fp4, fp4, select="last", **{**options, "epochs": best_epoch + 1})
    assert torch.equal(best, stopped)
    assert not torch.equal(best, last)


def test_uniform_baseline_format_search(captured):
    _, var, store = captured
    weights = {name: var.get_submodule(name).weight for name in NAMES}
    best, totals = search_uniform_formats(get_recipe("fp6_baseline"), store, weights, FP6_FORMATS)
    assert len(totals) == 4 and totals[best] == min(totals.values())
