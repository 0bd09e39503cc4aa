"""The online rotation: one tensor shared by every layer, kept out of checkpoints, rebuilt from the recipe on load."""

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tiny_models import tiny_pair

from fpqvar.checkpoints import CheckpointMismatchError
from fpqvar.loading import load_var
from fpqvar.methods import QuantizedLinear, get_recipe, model_rotation, quantize_model, save_quantized
from fpqvar.methods.layers import InputTransform
from fpqvar.rotation import Rotation, block_diagonal_hadamard, group_hadamard, orthogonal_hadamard
from fpqvar.rotation.hadamard import _hadamard_cached

FULL_HT = get_recipe("fp4_dfq_ht").replace(rotation_seed=7)  # seeded sign flips must survive the round trip


def _transforms(var):
    return [m.transform for m in var.modules() if isinstance(m, QuantizedLinear) and m.transform is not None]


def _rotation_pointers(var):
    return {t.rotation.matrix.data_ptr() for t in _transforms(var)}


def _teacher_logits(vae, var):
    torch.manual_seed(0)
    x = vae.quantize.idxBl_to_var_input(vae.img_to_idxBl(torch.rand(2, 3, 8, 8) * 2 - 1))
    with torch.no_grad():
        return var(torch.tensor([1, 6]), x)


def test_full_ht_state_dict_has_no_rotation_and_the_same_keys_as_no_rotation():
    _, rotated = tiny_pair(width=384)
    quantize_model(rotated, FULL_HT)
    _, plain = tiny_pair(width=384)
    quantize_model(plain, get_recipe("fp4_dfq"))
    assert model_rotation(rotated).order == 384
    assert not [k for k in rotated.state_dict() if "rotation" in k]
    assert rotated.state_dict().keys() == plain.state_dict().keys()


@pytest.mark.parametrize("name", ["fp4_dfq_ht", "fp4_dfq_ght"])
def test_every_layer_shares_one_rotation_tensor_after_apply_and_after_conversion(name):
    _, var = tiny_pair(width=384)
    quantize_model(var, get_recipe(name))
    assert len(_transforms(var)) == 2 * len(var.blocks)  # mat_qkv and fc1 of each block
    assert len({id(t.rotation) for t in _transforms(var)}) == 1
    assert len(_rotation_pointers(var)) == 1
    var.to(torch.float64)  # converts each module's buffers: per-layer buffers would become separate copies
    assert len(_rotation_pointers(var)) == 1
    assert model_rotation(var).matrix.dtype == torch.float64
    var.half()
    assert len(_rotation_pointers(var)) == 1 and model_rotation(var).matrix.dtype == torch.float16


def test_save_then_load_rebuilds_the_seeded_rotation_and_gives_identical_outputs(tmp_path):
    vae, var = tiny_pair(width=384)
    quantize_model(var, FULL_HT)
    save_quantized(var, tmp_path / "q.safetensors")
    loaded = load_var(tmp_path / "q.safetensors")
    assert loaded.recipe == FULL_HT
    assert torch.equal(model_rotation(loaded).matrix, orthogonal_hadamard(384, seed=7).float())
    assert torch.equal(model_rotation(loaded).matrix, model_rotation(var).matrix)
    assert len(_rotation_pointers(loaded)) == 1
    assert torch.equal(_teacher_logits(vae, loaded), _teacher_logits(vae, var))


def test_a_full_ht_checkpoint_is_as_small_as_one_without_rotation(tmp_path):
    sizes = {}
    for name, recipe in (("ht", FULL_HT), ("plain", get_recipe("fp4_dfq"))):
        _, var = tiny_pair(width=384)
        quantize_model(var, recipe)
        save_quantized(var, tmp_path / f"{name}.safetensors")
        sizes[name] = (tmp_path / f"{name}.safetensors").stat().st_size
    one_copy = 384 * 384 * 4  # bytes of one float32 rotation matrix
    assert abs(sizes["ht"] - sizes["plain"]) < one_copy / 100  # only the recipe metadata differs


def test_a_checkpoint_with_per_layer_rotations_is_refused_with_advice(tmp_path):
    _, var = tiny_pair(width=384)
    quantize_model(var, FULL_HT)
    save_quantized(var, tmp_path / "q.safetensors")
    with safe_open(str(tmp_path / "q.safetensors"), framework="pt") as f:
        metadata = f.metadata()
    state = load_file(str(tmp_path / "q.safetensors"))
    state["blocks.0.attn.mat_qkv.transform.rotation"] = orthogonal_hadamard(384, seed=7).float()
    save_file(state, str(tmp_path / "old.safetensors"), metadata=metadata)
    with pytest.raises(CheckpointMismatchError, match="stores 1 per-layer rotation matrices.*Quantize the full-precision"):
        load_var(tmp_path / "old.safetensors")


def test_rotation_and_transform_reject_bad_input():
    with pytest.raises(ValueError, match="square matrix, got shape \\(4, 8\\)"):
        Rotation(torch.ones(4, 8))
    with pytest.raises(TypeError, match="must be a Rotation module"):
        InputTransform(8, orthogonal_hadamard(4))
    with pytest.raises(ValueError, match="width 12 is not divisible by the rotation's order 8"):
        InputTransform(12, Rotation(orthogonal_hadamard(8)))
    with pytest.raises(ValueError, match="last dimension 6 is not divisible"):
        Rotation(orthogonal_hadamard(4))(torch.ones(2, 6))


def test_hadamard_matrices_built_under_a_meta_default_device_are_real_and_stay_cached_real():
    _hadamard_cached.cache_clear()  # so that the matrix is built (and cached) under the meta device
    with torch.device("meta"):  # how quantized checkpoints are loaded
        inside = orthogonal_hadamard(384, seed=1)
    assert inside.device.type == "cpu"
    outside = orthogonal_hadamard(384, seed=1)
    assert outside.device.type == "cpu" and torch.equal(outside, inside)


def test_ght_module_multiplies_by_the_papers_block_diagonal_matrix_and_its_transpose_restores_the_product():
    width, group = 384, 128
    H_b = group_hadamard(width, group, seed=5)
    H_B = block_diagonal_hadamard(width, group, seed=5)
    assert torch.equal(H_B[:group, :group], H_b) and torch.equal(H_B[group:2 * group, group:2 * group], H_b)
    assert torch.equal(H_B[:group, group:], torch.zeros(group, width - group, dtype=torch.float64))
    x, W = torch.randn(7, width, dtype=torch.float64), torch.randn(5, width, dtype=torch.float64)
    # the module keeps H_b in float32 (as the model runs it): float32 rounding only, entries of x are O(1)
    assert torch.allclose(Rotation(H_b)(x.float()), (x @ H_B).float(), rtol=0, atol=1e-5)
    assert torch.allclose((x @ H_B) @ (W @ H_B).T, x @ W.T, rtol=0, atol=1e-10)  # Eq. 4: H_B orthogonal
    assert torch.equal(group_hadamard(width, width, seed=5), orthogonal_hadamard(width, seed=5))  # HT: G = C
    with pytest.raises(ValueError, match="not divisible by the GHT group size 100"):
        group_hadamard(width, 100)
