"""GALT's pipeline (methods/galt.py): streamed == all-at-once, stacked == one by one, resume, torchrun, cache,
"no GALT" == fp4_dfq_ght, refusals; the calibration store's budget and cleanup."""

import errno
import json
import os
import shutil

import pytest
import torch
import torch.multiprocessing as mp
from tiny_models import tiny_pair

from fpqvar.checkpoints import save_safetensors
from fpqvar.cli import main
from fpqvar.methods import galt as galt_module
from fpqvar.methods import get_recipe, quantize_model
from fpqvar.methods.calibration import ActivationStore, CalibrationSpaceError, calibration_classes, capture_activations
from fpqvar.methods.galt import (
    GaltSettings,
    cached_galt_lambdas,
    check_lambdas,
    galt_layer_names,
    learn_galt_lambdas,
    learn_lambda,
    save_galt_result,
    unit_lambdas,
)
from fpqvar.rotation import orthogonal_hadamard

# Tiny but complete: 3 blocks, 3 calibration images (batches of 2 and 1), 3 epochs, fp32 sampling (CPU).
SETTINGS = GaltSettings(samples=3, batch_size=2, epochs=3, dtype="fp32", blocks_at_once=1)
RECIPE = get_recipe("fp4_fpqvar")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: threads only add contention on a shared CI machine
    yield
    torch.set_num_threads(threads)


def _pair():
    return tiny_pair(width=128, depth=3)  # 3 blocks, so groups of 2 leave a remainder


@pytest.fixture(scope="module")
def reference():
    vae, var = _pair()
    return learn_galt_lambdas(var, vae, RECIPE, settings=SETTINGS, device="cpu", progress=False)


def test_streamed_galt_equals_learning_on_the_whole_calibration_set(reference):
    """Block by block (each block re-run on its own) gives the same activations as one sampling pass with every
    layer hooked, hence the same lambdas and curves, bit for bit (same operations on the same CPU)."""
    vae, var = _pair()
    names = galt_layer_names(3)
    classes = calibration_classes(SETTINGS.samples, var.num_classes, SETTINGS.classes, SETTINGS.seed)
    store = capture_activations(var, vae, names, classes, seed=SETTINGS.seed, batch_size=SETTINGS.batch_size, progress=False)
    rotation = orthogonal_hadamard(128)
    for name in names:
        layer = RECIPE.layers[name.split(".", 2)[2]]
        lam, curve = learn_lambda(store.per_step(name), var.get_submodule(name).weight, rotation, layer.input, layer.weight,
                                  epochs=SETTINGS.epochs, lr=SETTINGS.lr)
        assert torch.equal(lam, reference.lambdas[name]), name
        assert curve == reference.curves[name]
    assert sorted(reference.seconds) == ["learning", "propagation", "sampling", "total"]
    assert all(not torch.equal(lam, torch.ones_like(lam)) for lam in reference.lambdas.values())  # something was learned


def test_stacked_learning_equals_one_layer_at_a_time(reference):
    """Blocks learned 2 at a time (stacked matmuls, one optimizer) == one at a time: each lambda gets only its own
    loss's gradient and AdamW is elementwise; on the CPU the batched matmul computes each slice alone, so exact."""
    vae, var = _pair()
    stacked = learn_galt_lambdas(var, vae, RECIPE, settings=SETTINGS.__class__(**{**SETTINGS.__dict__, "blocks_at_once": 2}),
                                 device="cpu", progress=False)
    for name, lam in reference.lambdas.items():
        assert torch.equal(stacked.lambdas[name], lam), name
        assert stacked.curves[name] == reference.curves[name]


def test_an_interrupted_run_resumes_after_the_last_saved_block(reference, tmp_path, monkeypatch):
    vae, var = _pair()
    state = tmp_path / "lambdas.safetensors.partial"
    learned_blocks, real = [], galt_module._learn_blocks

    def interrupted(var, recipe, transform, inputs, *args):
        if 2 in inputs:
            raise KeyboardInterrupt  # the user stops the run while block 2 is being learned
        learned_blocks.extend(inputs)
        return real(var, recipe, transform, inputs, *args)

    monkeypatch.setattr(galt_module, "_learn_blocks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        learn_galt_lambdas(var, vae, RECIPE, settings=SETTINGS, device="cpu", progress=False, state_path=state, run_id="ckpt")
    assert learned_blocks == [0, 1] and state.exists()
    with pytest.raises(ValueError, match="another checkpoint, recipe or settings"):
        learn_galt_lambdas(var, vae, RECIPE, settings=GaltSettings(samples=3, epochs=4), device="cpu", progress=False,
                           state_path=state, run_id="ckpt")

    learned_blocks.clear()
    monkeypatch.setattr(galt_module, "_learn_blocks", lambda *a: (learned_blocks.extend(a[3]), real(*a))[1])
    resumed = learn_galt_lambdas(var, vae, RECIPE, settings=SETTINGS, device="cpu", progress=False, state_path=state, run_id="ckpt")
    assert learned_blocks == [2]  # blocks 0 and 1 came from the saved state
    for name, lam in reference.lambdas.items():
        assert torch.equal(resumed.lambdas[name], lam), name
        assert resumed.curves[name] == reference.curves[name]


def _distributed_worker(rank, world, init_file, out):
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        vae, var = _pair()
        result = learn_galt_lambdas(var, vae, RECIPE, settings=SETTINGS, device="cpu", progress=False)
        save_galt_result(result, f"{out}.rank{rank}.safetensors")
    finally:
        torch.distributed.destroy_process_group()


def test_two_processes_learn_the_same_lambdas_as_one(reference, tmp_path):
    """torchrun-style: the processes share the sampling (batches) and the blocks (rank r learns its blocks), and every
    process ends with all lambdas, equal to one process's."""
    out = tmp_path / "lambdas"
    mp.start_processes(_distributed_worker, args=(2, tmp_path / "init", out), nprocs=2, join=True, start_method="spawn")
    for rank in range(2):
        result = galt_module.load_galt_result(f"{out}.rank{rank}.safetensors")
        for name, lam in reference.lambdas.items():
            assert torch.equal(result.lambdas[name], lam), (rank, name)
            assert result.curves[name] == reference.curves[name]


def test_cached_lambdas_are_reused_for_the_same_checkpoint_galt_target_and_settings(reference, tmp_path, monkeypatch):
    vae, var = _pair()
    first = cached_galt_lambdas(var, vae, RECIPE, settings=SETTINGS, var_sha256="ab" * 32, cache_dir=tmp_path, device="cpu", progress=False)
    files = sorted(p.name for p in tmp_path.iterdir())
    cache_name = galt_module.galt_cache_path(tmp_path, "ab" * 32, RECIPE, SETTINGS).name
    assert cache_name == f"galt_{'ab' * 8}_{galt_module.galt_target(RECIPE)}_{SETTINGS.key()}.safetensors"
    assert files == [cache_name, f"{cache_name}.curves.json"]

    def fail(*args, **kwargs):
        raise AssertionError("learned again although cached")

    monkeypatch.setattr(galt_module, "learn_galt_lambdas", fail)
    again = cached_galt_lambdas(var, vae, RECIPE, settings=SETTINGS, var_sha256="ab" * 32, cache_dir=tmp_path, device="cpu", progress=False)
    for name in reference.lambdas:
        assert torch.equal(again.lambdas[name], first.lambdas[name]) and again.curves[name] == first.curves[name]
    # a recipe that differs only where GALT's loss does not look (the KV cache, where lambda is folded) is served
    # from the same entry; one whose learned layers, rotation or rounding differ is learned again
    kv6 = RECIPE.replace(name="with_kv6", kv_cache=get_recipe("fp4_fpqvar_kv6").kv_cache, galt_fold=False)
    shared = cached_galt_lambdas(var, vae, kv6, settings=SETTINGS, var_sha256="ab" * 32, cache_dir=tmp_path, device="cpu", progress=False)
    assert all(torch.equal(shared.lambdas[name], first.lambdas[name]) for name in reference.lambdas)
    for other in (RECIPE.replace(tie="up"), RECIPE.replace(rotation="full"), RECIPE.replace(scale_dtype="input"),
                  RECIPE.replace(layers={**RECIPE.layers, "ffn.fc1": get_recipe("fp6_baseline").layers["ffn.fc1"]})):
        with pytest.raises(AssertionError, match="learned again"):
            cached_galt_lambdas(var, vae, other, settings=SETTINGS, var_sha256="ab" * 32, cache_dir=tmp_path,
                                device="cpu", progress=False)
    with pytest.raises(AssertionError, match="learned again"):  # another checkpoint
        cached_galt_lambdas(var, vae, RECIPE, settings=SETTINGS, var_sha256="cd" * 32, cache_dir=tmp_path, device="cpu", progress=False)


def test_settings_key_is_stable_and_covers_what_decides_the_lambdas():
    assert GaltSettings().key() == GaltSettings().key() and len(GaltSettings().key()) == 12
    assert GaltSettings(blocks_at_once=9).key() == GaltSettings().key()  # how, not what
    keys = {GaltSettings(**{field: value}).key() for field, value in
            [("samples", 7), ("classes", "first"), ("seed", 1), ("batch_size", 2), ("dtype", "bf16"), ("epochs", 3),
             ("lr", 0.002), ("weight_decay", 0.01), ("select", "last"), ("precision", "fp32")]}
    assert len(keys | {GaltSettings().key()}) == 11
    with pytest.raises(ValueError, match="select must be one of"):
        GaltSettings(select="first")


def test_no_galt_equals_fp4_dfq_ght_exactly():
    """fp4_fpqvar with lambda = 1 (explicit "no GALT") folds nothing: the same quantized weights and logits."""
    vae, plain = tiny_pair(width=256)
    _, ones = tiny_pair(width=256)
    quantize_model(plain, get_recipe("fp4_dfq_ght"))
    quantize_model(ones, RECIPE, lambdas=unit_lambdas(ones))
    state = ones.state_dict()
    for key, value in plain.state_dict().items():
        assert torch.equal(state[key], value), key
    torch.manual_seed(0)
    x = vae.quantize.idxBl_to_var_input(vae.img_to_idxBl(torch.rand(2, 3, 8, 8) * 2 - 1))
    labels = torch.tensor([1, 2])
    with torch.no_grad():
        assert torch.equal(plain(labels, x), ones(labels, x))


@pytest.mark.parametrize("bad, message", [(float("nan"), "non-finite"), (float("inf"), "non-finite"), (0.0, "zeros")])
def test_unfoldable_lambdas_are_refused_with_the_layer_named(bad, message, tmp_path, capsys):
    _, var = tiny_pair(width=128)
    lambdas = unit_lambdas(var)
    lambdas["blocks.1.ffn.fc1"][5] = bad
    with pytest.raises(ValueError, match=f"blocks.1.ffn.fc1 has 1 {message}"):
        check_lambdas(lambdas)
    with pytest.raises(ValueError, match="blocks.1.ffn.fc1"):
        quantize_model(var, RECIPE, lambdas=lambdas)
    from safetensors.torch import save_file

    save_safetensors(tiny_pair(width=128)[1], tmp_path / "var.safetensors")
    save_file(lambdas, tmp_path / "lambdas.safetensors")
    code = main(["quantize", "--var", str(tmp_path / "var.safetensors"), "--recipe", "fp4_fpqvar",
                 "--lambdas", str(tmp_path / "lambdas.safetensors"), "--out", str(tmp_path / "q.safetensors")])
    assert code == 2 and "blocks.1.ffn.fc1" in capsys.readouterr().err and not (tmp_path / "q.safetensors").exists()


def test_galt_command_checks_the_recipe_before_sampling(tmp_path, monkeypatch, capsys):
    vae, var = tiny_pair(width=128)
    save_safetensors(var, tmp_path / "var.safetensors")
    save_safetensors(vae, tmp_path / "vae.safetensors")
    monkeypatch.setattr(galt_module, "_sample_block0_inputs", lambda *a: pytest.fail("sampled before checking the recipe"))
    code = main(["galt", "--var", str(tmp_path / "var.safetensors"), "--vae", str(tmp_path / "vae.safetensors"),
                 "--out", str(tmp_path / "l.safetensors"), "--recipe", "fp16", "--device", "cpu", "--quiet"])
    assert code == 2 and "fp16 does not quantize the input of blocks.0.attn.mat_qkv" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["vae.safetensors", "var.safetensors"]


def test_galt_command_then_quantize_with_lambdas_or_ones(tmp_path):
    from fpqvar.loading import load_var

    vae, var = tiny_pair(width=384)  # three GHT groups per layer
    save_safetensors(var, tmp_path / "var.safetensors")
    save_safetensors(vae, tmp_path / "vae.safetensors")
    common = ["--var", str(tmp_path / "var.safetensors")]
    assert main(["galt", *common, "--vae", str(tmp_path / "vae.safetensors"), "--out", str(tmp_path / "lambdas.safetensors"),
                 "--samples", "2", "--epochs", "2", "--dtype", "fp32", "--device", "cpu", "--quiet"]) == 0
    side = json.loads((tmp_path / "lambdas.safetensors.curves.json").read_text())
    assert sorted(side["curves"]) == galt_layer_names(2) and all(len(c) == 2 for c in side["curves"].values())
    assert not (tmp_path / "lambdas.safetensors.partial").exists()  # the resume state goes once the output is written
    for lambdas in (str(tmp_path / "lambdas.safetensors"), "ones"):
        assert main(["quantize", *common, "--recipe", "fp4_fpqvar", "--lambdas", lambdas, "--out", str(tmp_path / "q.safetensors")]) == 0
        assert load_var(tmp_path / "q.safetensors").recipe.galt


# ------------------------------------------------------------------------------------------------ the store
def test_a_store_without_room_refuses_before_sampling(monkeypatch):
    vae, var = tiny_pair(width=128)
    monkeypatch.setattr(var, "generate", lambda *a, **k: pytest.fail("sampled although the store cannot hold the result"))
    with pytest.raises(CalibrationSpaceError, match="need 0.00 GiB.*raise the budget.*spill folder"):
        capture_activations(var, vae, ["blocks.0.attn.mat_qkv"], [0, 1], store=ActivationStore(memory_budget=1000), progress=False)


def test_a_full_disk_gives_one_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    vae, var = tiny_pair(width=128)
    names = ["blocks.0.attn.mat_qkv", "blocks.1.ffn.fc1"]
    # Estimated before the run: not enough free space -> refused, nothing written.
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(CalibrationSpaceError, match="on disk beyond the memory budget; .* has 0.00 GiB free"):
        capture_activations(var, vae, names, [0, 1], store=ActivationStore(memory_budget=1000, spill_dir=tmp_path), progress=False)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    # The disk fills up during the run (the estimate said it would fit): one clear error, spilled files deleted.
    written, real_save = [], torch.save

    def filling_save(obj, path):
        if len(written) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(path)
        real_save(obj, path)

    monkeypatch.setattr(torch, "save", filling_save)
    with pytest.raises(CalibrationSpaceError, match="No space left on device.*spilled files were deleted"):
        capture_activations(var, vae, names, [0, 1], store=ActivationStore(memory_budget=1000, spill_dir=tmp_path), progress=False)
    assert len(written) == 3 and list(tmp_path.iterdir()) == []

    # Any other failure during capture (here an interrupt) cleans up too.
    monkeypatch.setattr(torch, "save", real_save)
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_generate(*args, **kwargs)

    real_generate = var.generate
    monkeypatch.setattr(var, "generate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        capture_activations(var, vae, names, [0, 1], store=ActivationStore(memory_budget=1000, spill_dir=tmp_path), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_spilled_store_returns_the_same_tensors_and_deletes_them_on_close(tmp_path):
    vae, var = tiny_pair(width=128)
    names = ["blocks.0.attn.mat_qkv", "blocks.1.ffn.fc2"]
    kept = capture_activations(var, vae, names, [0, 3], progress=False)
    with capture_activations(var, vae, names, [0, 3], store=ActivationStore(memory_budget=5_000, spill_dir=tmp_path), progress=False) as spilled:
        assert len(list(tmp_path.rglob("*.pt"))) > 0
        for name in names:
            for step in kept.steps(name):
                assert torch.equal(spilled.get(name, step), kept.get(name, step))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------ chapter 06's measurements
def test_loss_reductions_and_lambda_statistics():
    from fpqvar.analysis.galt import lambda_statistics, loss_reductions

    rows = loss_reductions({"blocks.2.ffn.fc1": [4.0, 2.0, 1.0, 3.0]})
    assert rows == [{"block": 2, "layer": "ffn.fc1", "first_epoch_loss": 4.0, "best_loss": 1.0, "best_epoch": 2, "reduction": 4.0}]
    (stats,) = lambda_statistics({"blocks.0.attn.mat_qkv": torch.tensor([0.25, 1.0, 1.5, 4.0])})
    assert (stats["min"], stats["max"], stats["median"]) == (0.25, 4.0, 1.0)  # torch's median: the lower middle value
    assert stats["share_beyond_2x"] == 0.5 and stats["block"] == 0 and stats["layer"] == "attn.mat_qkv"


def test_folding_difference_is_float_rounding_without_quantization():
    from fpqvar.analysis.galt import folding_difference
    from fpqvar.methods import Recipe

    vae, var = tiny_pair(width=256)
    g = torch.Generator().manual_seed(0)
    lambdas = {name: torch.rand(256, generator=g) + 0.5 for name in galt_layer_names(2)}
    rows = folding_difference(var, vae, Recipe("galt only", rotation="group", galt=True), lambdas, classes=[1, 2])
    assert [r["block"] for r in rows] == [0, 1]
    assert all(0 <= r["relative"] < 1e-5 for r in rows)
    assert not var.is_quantized  # the model given stays full precision
    wrong = folding_difference(var, vae, Recipe("galt only", rotation="group", galt=True),
                               {**lambdas, "blocks.1.ffn.fc1": -lambdas["blocks.1.ffn.fc1"]}, classes=[1, 2])
    assert wrong[1]["relative"] < 1e-5  # a negative lambda folds exactly too: Eq. 6 holds for any non-zero lambda
