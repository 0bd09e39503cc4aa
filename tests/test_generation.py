"""`fpqvar sample`: the batch plan, its split over ranks, resuming, and 1 vs 2 processes (gloo on CPU)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from tiny_models import tiny_pair

from fpqvar.atomic import atomic_path
from fpqvar.checkpoints import save_safetensors
from fpqvar.cli import parse_classes
from fpqvar.errors import UserInputError
from fpqvar.generation import batches_for_rank, plan_batches


def test_paper_protocols_fit_the_plan():
    at_256 = plan_batches(list(range(1000)), 50, 50, seed=0)
    assert len(at_256) == 1000 and {b.seed for b in at_256} == {0}
    at_512 = plan_batches([3], 50, 10, seed=10)
    assert [b.seed for b in at_512] == [10, 11, 12, 13, 14] and at_512[2].image_indices() == range(20, 30)


@pytest.mark.parametrize("world_size", [1, 2, 3, 7])
def test_ranks_cover_every_batch_once(world_size):
    batches = plan_batches(list(range(13)), 7, 3, seed=0)
    shares = [batches_for_rank(batches, r, world_size) for r in range(world_size)]
    flat = [b for share in shares for b in share]
    assert sorted(flat, key=batches.index) == batches and len(set(flat)) == len(batches)


def test_parse_classes():
    assert parse_classes("0-3,7,2", 10) == [0, 1, 2, 3, 7]
    with pytest.raises(UserInputError, match=r"outside this model.s classes 0..9"):
        parse_classes("5-12", 10)


def test_atomic_path_leaves_nothing_behind_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "x.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    vae, var = tiny_pair()
    save_safetensors(var, folder / "var.safetensors")
    save_safetensors(vae, folder / "vae.safetensors")
    return folder


def _sample(ckpt, out, processes=1, extra=()):
    # One thread per process in every run: CPU matmul results depend on the thread count, not on the split.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["sample", "--var", str(ckpt / "var.safetensors"), "--vae", str(ckpt / "vae.safetensors"), "--out", str(out),
            "--classes", "0-2", "--per-class", "5", "--batch-size", "2", "--dtype", "fp32", "--device", "cpu", "--quiet", *extra]
    if processes == 1:
        command = [sys.executable, "-m", "fpqvar.cli", *args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", "fpqvar.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_one_and_two_processes_give_the_same_images(tiny_checkpoints, tmp_path):
    single = _sample(tiny_checkpoints, tmp_path / "one")
    assert single.returncode == 0, single.stderr
    double = _sample(tiny_checkpoints, tmp_path / "two", processes=2)
    assert double.returncode == 0, double.stderr
    a, b = np.load(tmp_path / "one.npz")["arr_0"], np.load(tmp_path / "two.npz")["arr_0"]
    assert a.shape == (15, 8, 8, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert len(list((tmp_path / "one").glob("*.png"))) == 15


def test_an_interrupted_run_resumes_without_loss_or_duplicates(tiny_checkpoints, tmp_path):
    out = tmp_path / "run"
    assert _sample(tiny_checkpoints, out).returncode == 0
    reference = np.load(tmp_path / "run.npz")["arr_0"]
    untouched = (out / "class0_img0.png").stat().st_mtime_ns
    # Simulate an interruption: two images of one batch never written, a temporary file left behind.
    (out / "class1_img2.png").unlink()
    (out / "class1_img3.png").unlink()
    (out / ".class1_img2.png.tmp123.png").write_bytes(b"partial")
    (tmp_path / "run.npz").unlink()
    again = _sample(tiny_checkpoints, out)
    assert again.returncode == 0, again.stderr
    assert np.array_equal(np.load(tmp_path / "run.npz")["arr_0"], reference)
    assert len(list(out.glob("class*.png"))) == 15
    assert not (out / ".class1_img2.png.tmp123.png").exists()  # the resume removed the interrupted write's temp file
    assert (out / "class0_img0.png").stat().st_mtime_ns == untouched  # finished batches are skipped
    assert json.loads((out / "run.json").read_text())["per_class"] == 5
    other = _sample(tiny_checkpoints, out, extra=("--seed", "3"))
    assert other.returncode != 0 and "holds a run with other settings" in other.stderr
