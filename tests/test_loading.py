"""One loader for every checkpoint: plain files through fpqvar.model, quantized ones through fpqvar.methods."""

import pytest
import torch
from tiny_models import tiny_pair

from fpqvar import loading
from fpqvar.checkpoints import CheckpointMismatchError, save_safetensors
from fpqvar.methods import QuantizedLinear, get_recipe, load_quantized_var, quantize_model, save_quantized
from fpqvar.model import loading as plain
from fpqvar.paths import resolve_checkpoint


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoints")
    vae, var = tiny_pair(width=128)
    save_safetensors(var, folder / "var.safetensors")
    save_safetensors(vae, folder / "vae.safetensors")
    torch.save(var.state_dict(), folder / "var.pth")
    quantize_model(var, get_recipe("fp4_dfq_ght"))
    save_quantized(var, folder / "q.safetensors")
    return folder, var


def test_the_dispatching_loader_rebuilds_a_quantized_file_and_loads_plain_ones_plainly(files):
    folder, quantized = files
    q = loading.load_var(folder / "q.safetensors")
    assert q.is_quantized and q.recipe == get_recipe("fp4_dfq_ght")
    assert sum(isinstance(m, QuantizedLinear) for m in q.modules()) == 4 * 2
    assert all(torch.equal(a, b) for a, b in zip(q.state_dict().values(), quantized.state_dict().values(), strict=True))
    for name in ("var.safetensors", "var.pth"):
        var = loading.load_var(folder / name)
        assert not var.is_quantized and not any(isinstance(m, QuantizedLinear) for m in var.modules())


def test_each_layer_refuses_the_other_kind_of_file_with_a_pointer_to_the_dispatching_loader(files):
    folder, _ = files
    with pytest.raises(CheckpointMismatchError, match="is a quantized VAR .*fpqvar.loading.load_var"):
        plain.load_var(folder / "q.safetensors")  # same keys as a plain VAR for a recipe without GALT: must not load
    with pytest.raises(CheckpointMismatchError, match="holds no quantization recipe"):
        load_quantized_var(folder / "var.safetensors")


def test_embedded_spec_and_vae_scales():
    var, vae = loading.load_var_and_vae("embedded", "embedded")
    reference = plain.load_var(resolve_checkpoint("embedded", "var"))
    assert all(torch.equal(a, b) for a, b in zip(var.state_dict().values(), reference.state_dict().values(), strict=True))
    assert tuple(vae.patch_nums) == var.patch_nums
    with pytest.raises(FileNotFoundError, match="does not exist"):
        loading.load_var("no/such/var.safetensors")
