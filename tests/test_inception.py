"""The FID Inception-v3's architecture against the weight file's layout (src/fpqvar/eval/INCEPTION_SPEC.md),
with random weights: key names, shapes and counts, strict loading, feature shapes, TF1 resize, TF pools."""

import pytest
import torch

from fpqvar.eval.inception import (
    WEIGHTS_FILE,
    FIDInceptionV3,
    load_inception,
    preprocess,
    tf1_resize_bilinear,
    tf_average_pool,
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return FIDInceptionV3().eval()


def test_keys_shapes_and_counts(model):
    state = model.state_dict()
    tracked = [k for k in state if k.endswith("num_batches_tracked")]
    assert len(tracked) == 94 and len(state) - len(tracked) == 472
    assert sum(p.numel() for p in model.parameters()) == 23_850_960
    expected = {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3), "Conv2d_4a_3x3.bn.running_var": (192,),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1), "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
        "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7), "Mixed_6e.branch7x7dbl_4.conv.weight": (192, 192, 7, 1),
        "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3), "Mixed_7b.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
        "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1), "fc.weight": (1008, 2048), "fc.bias": (1008,),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith("AuxLogits") or ".conv.bias" in k for k in state)


@pytest.mark.parametrize("with_tracking", [True, False])
def test_weight_files_load_strictly_with_or_without_num_batches_tracked(model, tmp_path, with_tracking):
    state = {k: v for k, v in model.state_dict().items() if with_tracking or not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / WEIGHTS_FILE)
    loaded = load_inception(tmp_path / WEIGHTS_FILE)
    assert torch.equal(loaded.Mixed_7c.branch_pool.conv.weight, model.Mixed_7c.branch_pool.conv.weight)
    with pytest.raises(FileNotFoundError, match=f"supply {WEIGHTS_FILE}"):
        load_inception(tmp_path / "absent.pth")


def test_feature_shapes(model):
    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        features = model(preprocess(images))
    assert features["pool"].shape == (2, 2048) and features["spatial"].shape == (2, 17 * 17 * 7)
    assert features["probs"].shape == (2, 1008)
    assert torch.allclose(features["probs"].sum(1), torch.ones(2, dtype=features["probs"].dtype))


def test_tf1_resize():
    x = torch.rand(1, 3, 299, 299)
    assert torch.equal(tf1_resize_bilinear(x), x)
    assert torch.equal(tf1_resize_bilinear(torch.full((1, 1, 7, 5), 3.0)), torch.full((1, 1, 299, 299), 3.0))
    # 2 -> 3 samples: source positions 0, 2/3, 4/3 -> the last clamps to index 1 exactly (no half-pixel offset)
    row = torch.tensor([[[[0.0, 3.0]]]])
    out = tf1_resize_bilinear(row.expand(1, 1, 2, 2).contiguous(), size=3)
    assert torch.allclose(out[0, 0, 0], torch.tensor([0.0, 2.0, 3.0]))
    assert preprocess(torch.full((1, 299, 299, 3), 255, dtype=torch.uint8)).max() == 127 / 128


def test_tf_pools(model):
    ones = torch.ones(1, 1, 5, 5)
    assert torch.equal(tf_average_pool(ones), ones)  # corners divide by 4, not 9
    assert model.Mixed_7c.max_pool and not model.Mixed_7b.max_pool


def test_evaluate_command_end_to_end(model, tmp_path):
    import json

    import numpy as np

    from fpqvar.cli import main

    torch.save(model.state_dict(), tmp_path / WEIGHTS_FILE)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "samples.npz", arr_0=rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8))
    np.savez(tmp_path / "reference.npz", arr_0=rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8))
    assert main(["evaluate", str(tmp_path / "samples.npz"), str(tmp_path / "reference.npz"), "--inception",
                 str(tmp_path / WEIGHTS_FILE), "--out", str(tmp_path / "metrics.json"), "--batch-size", "6", "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"inception_score", "fid", "sfid", "precision", "recall"} <= metrics.keys()
    assert metrics["fid"] > 0 and 0 <= metrics["precision"] <= 1 and metrics["num_samples"] == 12
    assert main(["evaluate", str(tmp_path / "samples.npz"), str(tmp_path / "reference.npz"), "--inception", str(tmp_path / "x.pth")]) == 2
