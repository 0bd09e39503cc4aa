"""Bad input to every command: exit code 2, one line naming the problem, and no file changed (issue #13).

Each case runs the real command line in-process (`fpqvar.cli.main`) in a folder of tiny models and damaged files,
and compares the hash of every file there (and under a second, unrelated folder) before and after. The
fault-injection test at the end kills a `sample` subprocess with SIGKILL in the middle of writing a PNG, resumes, and
checks the result against an uninterrupted run byte for byte.
"""

import hashlib
import json
import os
import pathlib
import pickle
import re
import signal
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import tiny_pair

from fpqvar import cli
from fpqvar.atomic import atomic_path, remove_leftovers, writable_target
from fpqvar.checkpoints import save_safetensors
from fpqvar.errors import UserInputError
from fpqvar.eval import load_images
from fpqvar.generation import remove_partial_images
from fpqvar.methods import get_recipe

SRC = pathlib.Path(__file__).resolve().parents[1] / "src"
TINY_SAMPLE = ["--classes", "0-1", "--per-class", "2", "--batch-size", "2", "--device", "cpu", "--quiet"]


class CodePayload:
    """Unpickling this would create the file `payload-ran` (it must never happen)."""

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path("payload-ran"),))


def _recipe_file(path: pathlib.Path, base: str, **changes) -> str:
    raw = json.loads(get_recipe(base).to_json())
    raw.update(changes)
    path.write_text(json.dumps(raw))
    return path.name


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Tiny models, a finished sample run, and every kind of damaged file the cases below feed the commands."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("bad_inputs")
    vae, var = tiny_pair()
    save_safetensors(var, root / "var.safetensors")
    save_safetensors(vae, root / "vae.safetensors")
    torch.save(var.state_dict(), root / "var.pth")
    good = (root / "var.pth").read_bytes()
    (root / "truncated.pth").write_bytes(good[: len(good) // 2])
    (root / "truncated.safetensors").write_bytes((root / "var.safetensors").read_bytes()[:100_000])
    random = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    (root / "random.pth").write_bytes(random)
    (root / "random.safetensors").write_bytes(random)
    torch.save({"weight": CodePayload()}, root / "code.pth")
    with open(root / "code_legacy.pth", "wb") as f:  # a bare pickle, not torch.save's zip
        pickle.dump({"weight": CodePayload()}, f)
    torch.save({"model": var.state_dict()}, root / "nested.pth")
    state = var.state_dict()
    state["blocks.0.attn.mat_qkv.weight"] = state["blocks.0.attn.mat_qkv.weight"].clone()
    state["blocks.0.attn.mat_qkv.weight"][3, 5] = float("nan")
    torch.save(state, root / "nan_var.pth")
    with torch.no_grad():
        vae.decoder.conv_in.weight[0, 0, 0, 0] = float("inf")
    save_safetensors(vae, root / "inf_vae.safetensors")
    np.save(root / "images.npy", np.zeros((2, 8, 8, 3), np.uint8))
    np.savez(root / "empty.npz", arr_0=np.zeros((0, 8, 8, 3), np.uint8))
    (root / "truncated.npz").write_bytes(b"PK\x03\x04" + random[:100])
    (root / "ckpt_folder").mkdir()
    (root / "out_folder.safetensors").mkdir()
    (root / "only_hidden").mkdir()
    Image.new("RGB", (8, 8)).save(root / "only_hidden" / ".class0_img0.png.x1y2.tmp", format="PNG")
    Image.new("RGB", (8, 8)).save(root / "only_hidden" / ".hidden.png")
    (root / "foreign_images").mkdir()
    Image.new("RGB", (8, 8)).save(root / "foreign_images" / "class0_img0.png")
    (root / "a_file.txt").write_text("not a folder\n")
    (root / "link_to_var.safetensors").symlink_to("var.safetensors")
    os.mkfifo(root / "fifo.json")
    os.mkfifo(root / "fifo.npz")
    _recipe_file(root / "unknown_field.json", "int4_rtn", bogus=1)
    _recipe_file(root / "bad_granularity.json", "int4_rtn", layers={"attn.proj": {"weight": {"fmt": "int4", "granularity": "per_block"}, "input": None}})
    kv = json.loads(get_recipe("fp4_fpqvar_kv6").to_json())["kv_cache"]
    _recipe_file(root / "kv_group48.json", "int4_rtn", kv_cache={**kv, "granularity": "per_group:48"})
    (root / "not_json.json").write_text("{ layers: \n")
    C = var.config.C
    lambdas = {f"blocks.{i}.{k}": torch.ones(C + 1) for i in range(len(var.blocks)) for k in ("attn.mat_qkv", "ffn.fc1")}
    torch.save(lambdas, root / "lambdas_wrong_shape.pth")
    (root / "unrelated.npz").write_bytes(b"someone else's results")
    old = os.getcwd()
    os.chdir(root)
    try:
        assert cli.main(["sample", "--var", "var.safetensors", "--vae", "vae.safetensors", "--out", "run", *TINY_SAMPLE]) == 0
    finally:
        os.chdir(old)
    return root


def _hashes(*folders: pathlib.Path) -> dict[str, str]:
    found = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink():
                found[str(path)] = "link -> " + os.readlink(path)
            elif path.is_file():
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISFIFO(path.lstat().st_mode) or path.is_dir():
                found[str(path)] = stat.filemode(path.lstat().st_mode)
    return found


SAMPLE = ["sample", "--var", "var.safetensors", "--vae", "vae.safetensors", "--out", "new_run", *TINY_SAMPLE]
QUANTIZE = ["quantize", "--var", "var.safetensors", "--recipe", "int4_rtn", "--out", "q.safetensors"]
EVALUATE = ["evaluate", "run", "run", "--classifier", "embedded"]


def _with(argv: list[str], **changes: str) -> list[str]:
    """``argv`` with options replaced (``out="x"`` sets --out x) or added."""
    argv = list(argv)
    for key, value in changes.items():
        flag = "--" + key.replace("_", "-")
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    return argv


CUDA = torch.cuda.is_available()
CASES = {
    # checkpoints
    "var missing": (_with(SAMPLE, var="nope.pth"), r"--var: checkpoint nope.pth does not exist"),
    "var is a folder": (_with(SAMPLE, var="ckpt_folder"), r"--var: checkpoint ckpt_folder is a directory"),
    "var truncated .pth": (_with(SAMPLE, var="truncated.pth"), r"--var: truncated.pth cannot be read as a PyTorch checkpoint"),
    "var truncated .safetensors": (_with(QUANTIZE, var="truncated.safetensors"), r"--var: .*not a readable .safetensors file"),
    "var random bytes .pth": (_with(QUANTIZE, var="random.pth"), r"--var: random.pth cannot be read as a plain state dict: it is corrupt"),
    "var pickles code (bare pickle)": (_with(QUANTIZE, var="code_legacy.pth"), r"--var: code_legacy.pth cannot be read .*never unpickles"),
    "var random bytes .safetensors": (_with(SAMPLE, var="random.safetensors"), r"not a readable .safetensors file"),
    "var pickles code": (_with(QUANTIZE, var="code.pth"), r"not a plain state dict of tensors.*never unpickles code"),
    "var nested dict": (_with(SAMPLE, var="nested.pth"), r"not a plain state dict of tensors.*\['model'\]"),
    "var .npy": (_with(SAMPLE, var="images.npy"), r"--var: images.npy is a NumPy file, not a checkpoint"),
    "var is the vqvae": (_with(SAMPLE, var="vae.safetensors"), r"--var: vae.safetensors does not fit this model.*looks like a VQVAE"),
    "vae is the var": (_with(SAMPLE, vae="var.safetensors"), r"--vae: var.safetensors does not fit this model.*looks like a VAR"),
    "var with a NaN weight (quantize)": (_with(QUANTIZE, var="nan_var.pth"), r"--var: nan_var.pth: tensor blocks.0.attn.mat_qkv.weight has 1 NaN"),
    "var with a NaN weight (sample)": (_with(SAMPLE, var="nan_var.pth"), r"tensor blocks.0.attn.mat_qkv.weight has 1 NaN"),
    "vae with an Inf weight": (_with(SAMPLE, vae="inf_vae.safetensors"), r"--vae: .*tensor decoder.conv_in.weight has 1 NaN or infinite"),
    # sampling parameters
    "classes huge range": (_with(SAMPLE, classes="0-9999999999"), r"--classes: 0-9999999999 reaches outside this model's classes 0..9"),
    "classes open range": (_with(SAMPLE, classes="3-"), r"--classes: '3-' is not a class id or a range"),
    "classes reversed": (_with(SAMPLE, classes="5-2"), r"--classes: range 5-2 ends before it starts"),
    "classes empty part": (_with(SAMPLE, classes="1,,2"), r"--classes: '' is not a class id"),
    "classes negative": (_with(SAMPLE, classes="-1"), r"--classes: '-1' is not a class id"),
    "classes outside": (_with(SAMPLE, classes="10"), r"--classes: 10 reaches outside this model's classes 0..9"),
    "top-p zero": (_with(SAMPLE, top_p="0"), r"argument --top-p: must be in \(0, 1\], got 0"),
    "top-p above one": (_with(SAMPLE, top_p="1.5"), r"argument --top-p: must be in \(0, 1\]"),
    "top-k negative": (_with(SAMPLE, top_k="-1"), r"argument --top-k: must be 0 or more"),
    "cfg nan": (_with(SAMPLE, cfg="nan"), r"argument --cfg: must be a finite number, got nan"),
    "cfg inf": (_with(SAMPLE, cfg="inf"), r"argument --cfg: must be a finite number"),
    "cfg not a number": (_with(SAMPLE, cfg="high"), r"argument --cfg: invalid finite_float value: 'high'"),
    "per-class zero": (_with(SAMPLE, per_class="0"), r"argument --per-class: must be 1 or more"),
    "batch-size zero": (_with(SAMPLE, batch_size="0"), r"argument --batch-size: must be 1 or more"),
    "device unknown": (_with(SAMPLE, device="gpu"), r"--device: 'gpu' is not a device name"),
    "device cuda without a GPU": (_with(SAMPLE, device="cuda"), r"--device cuda: no CUDA GPU is visible"),
    "dtype unknown": (_with(SAMPLE, dtype="fp8"), r"argument --dtype: invalid choice: 'fp8'"),
    # sample's outputs
    "sample out is a file": (_with(SAMPLE, out="a_file.txt"), r"--out a_file.txt is a file, not a folder"),
    "sample out holds foreign images": (_with(SAMPLE, out="foreign_images"), r"--out foreign_images holds images but no run.json"),
    "sample resumed with other settings": (_with(SAMPLE, out="run", seed="5"), r"--out run holds a run with other settings"),
    "sample default npz is someone else's": (_with(SAMPLE, out="unrelated"), r"--npz unrelated.npz exists and was not packed by the run in unrelated; pass --force"),
    "sample npz is the var": (_with(SAMPLE, npz="var.safetensors"), r"--npz: var.safetensors must end in .npz"),
    "sample npz is a FIFO": (_with(SAMPLE, npz="fifo.npz"), r"--npz: .*fifo.npz is a FIFO"),
    # quantize
    "quantize out is the var": (_with(QUANTIZE, out="var.safetensors"), r"--out var.safetensors is the --var input"),
    "quantize out links to the var": (_with(QUANTIZE, out="link_to_var.safetensors"), r"--out link_to_var.safetensors is the --var input"),
    "quantize out .pth": (_with(QUANTIZE, out="q.pth"), r"--out: q.pth must end in .safetensors"),
    "quantize out under a file": (_with(QUANTIZE, out="a_file.txt/q.safetensors"), r"--out: cannot write .*a_file.txt is a file, not a folder"),
    "quantize out is a folder": (_with(QUANTIZE, out="out_folder.safetensors"), r"--out: .*out_folder.safetensors is a directory"),
    "quantize out unwritable": (_with(QUANTIZE, out="/proc/fpqvar-test.safetensors"), r"--out: cannot write /proc/fpqvar-test.safetensors: /proc does not accept new files"),
    "recipe unknown name": (_with(QUANTIZE, recipe="int3_magic"), r"--recipe: unknown recipe 'int3_magic'; named recipes: "),
    "recipe unknown field": (_with(QUANTIZE, recipe="unknown_field.json"), r"--recipe: unknown_field.json has unknown fields \['bogus'\]"),
    "recipe bad granularity": (_with(QUANTIZE, recipe="bad_granularity.json"), r"--recipe: bad_granularity.json is not a valid recipe"),
    "recipe not JSON": (_with(QUANTIZE, recipe="not_json.json"), r"--recipe: Expecting property name"),
    "recipe missing": (_with(QUANTIZE, recipe="missing.json"), r"--recipe: .*No such file or directory"),
    "kv cache groups do not divide a head": (_with(QUANTIZE, recipe="kv_group48.json"), r"--recipe: the KV cache's group size 48 does not divide this model's head width 64"),
    "lambdas of the wrong shape": (_with(QUANTIZE, recipe="fp4_fpqvar", lambdas="lambdas_wrong_shape.pth"), r"--lambdas: 4 tensors are not vectors of this model's width 128"),
    "lambdas missing for a GALT recipe": (_with(QUANTIZE, recipe="fp4_fpqvar"), r"recipe fp4_fpqvar uses GALT: pass lambdas"),
    "lambdas file is the out": (_with(QUANTIZE, lambdas="q2.safetensors", out="q2.safetensors"), r"--lambdas: checkpoint q2.safetensors does not exist"),
    # evaluate
    "evaluate .npy samples": (["evaluate", "images.npy", "run", "--classifier", "embedded"], r"samples: images.npy is not a folder of PNGs or an .npz"),
    "evaluate 0 images": (["evaluate", "empty.npz", "run", "--classifier", "embedded"], r"samples: arr_0 of empty.npz holds 0 images: nothing to evaluate"),
    "evaluate only hidden files": (["evaluate", "only_hidden", "run", "--classifier", "embedded"], r"samples: only_hidden holds no .png files"),
    "evaluate truncated npz": (["evaluate", "truncated.npz", "run", "--classifier", "embedded"], r"samples: truncated.npz cannot be read as an .npz"),
    "evaluate reference missing": (["evaluate", "run", "nope.npz", "--classifier", "embedded"], r"reference: nope.npz does not exist"),
    "evaluate wrong inception file": (["evaluate", "run", "run", "--inception", "var.pth"], r"--inception: var.pth is not pt_inception-2015-12-05-6726825d.pth"),
    "evaluate inception missing": (["evaluate", "run", "run", "--inception", "nope.pth"], r"--inception: Inception weights not found at nope.pth"),
    "evaluate wrong classifier": (["evaluate", "run", "run", "--classifier", "var.safetensors"], r"--classifier: var.safetensors does not fit this model"),
    "evaluate out is a device": (_with(EVALUATE, out="/dev/null"), r"--out: /dev/null is a character device"),
    "evaluate out is a FIFO": (_with(EVALUATE, out="fifo.json"), r"--out: .*fifo.json is a FIFO"),
    "evaluate out is the samples": (_with(["evaluate", "run.npz", "run", "--classifier", "embedded"], out="run.npz"), r"--out run.npz is the samples input"),
    "evaluate images of the wrong size": (EVALUATE, r"the classifier takes 32x32 images, got \(8, 8\)"),
    # galt
    "galt out .pth": (["galt", "--var", "var.safetensors", "--vae", "vae.safetensors", "--out", "l.pth", "--device", "cpu"], r"--out: l.pth must end in .safetensors"),
    "galt epochs zero": (["galt", "--var", "var.safetensors", "--vae", "vae.safetensors", "--out", "l.safetensors", "--epochs", "0"], r"argument --epochs: must be 1 or more"),
    "galt out is the var": (["galt", "--var", "var.safetensors", "--vae", "vae.safetensors", "--out", "var.safetensors", "--device", "cpu"], r"--out var.safetensors is the --var input"),
    "galt samples zero": (["galt", "--var", "var.safetensors", "--vae", "vae.safetensors", "--out", "l.safetensors", "--samples", "0"], r"argument --samples: must be 1 or more"),
    "galt lr zero": (["galt", "--var", "var.safetensors", "--vae", "vae.safetensors", "--out", "l.safetensors", "--lr", "0"], r"argument --lr: must be more than 0"),
    "galt device cuda without a GPU": (["galt", "--var", "var.safetensors", "--vae", "vae.safetensors", "--out", "l.safetensors", "--device", "cuda"], r"--device cuda: no CUDA GPU is visible"),
    "galt var truncated": (["galt", "--var", "truncated.pth", "--vae", "vae.safetensors", "--out", "l.safetensors", "--device", "cpu"], r"--var: truncated.pth cannot be read"),
    # train
    "train scale zero": (["train", "--out", "t", "--scale", "0"], r"argument --scale: must be more than 0"),
    "train device cuda without a GPU": (["train", "--out", "t", "--device", "cuda"], r"--device cuda: no CUDA GPU is visible"),
    "evaluate batch-size zero": (EVALUATE + ["--batch-size", "0"], r"argument --batch-size: must be 1 or more"),
    # no command at all
    "unknown command": (["sampel"], r"argument command: invalid choice: 'sampel'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gives_one_line_exit_2_and_changes_nothing(case, workdir, tmp_path, monkeypatch, capsys, recwarn):
    argv, expected = CASES[case]
    if "cuda without a GPU" in case and CUDA:
        pytest.skip("this machine has a GPU")
    unrelated = tmp_path / "unrelated"  # a folder of someone's files that no command names
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("mine\n")
    monkeypatch.chdir(workdir)
    before = _hashes(workdir, unrelated)
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip() and "%|" not in line]  # tqdm bars aside
    assert code == 2, captured
    assert len(lines) == 1, captured.err
    assert re.search(expected, lines[0]), lines[0]
    assert lines[0].startswith("fpqvar"), lines[0]
    assert "Traceback" not in captured.err and "weights_only" not in captured.err
    assert _hashes(workdir, unrelated) == before
    assert not (workdir / "payload-ran").exists()
    assert [str(w.message) for w in recwarn] == []  # a warning would be more lines on the user's terminal


def test_a_bug_keeps_its_traceback(monkeypatch):
    """Only user errors become one line: an internal error (here a TypeError) propagates."""

    def broken(args):
        raise TypeError("a bug")

    monkeypatch.setattr(cli, "_formats", broken)
    with pytest.raises(TypeError, match="a bug"):
        cli.main(["formats"])


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_formats", interrupted)
    assert cli.main(["formats"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fpqvar formats: interrupted; no file is half-written")


def test_sample_force_overwrites_a_foreign_npz_and_a_rerun_its_own(workdir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name in ("var.safetensors", "vae.safetensors"):
        (tmp_path / name).symlink_to(workdir / name)
    (tmp_path / "s.npz").write_bytes(b"foreign")
    argv = ["sample", "--var", "var.safetensors", "--vae", "vae.safetensors", "--out", "s", *TINY_SAMPLE]
    assert cli.main(argv) == 2
    assert (tmp_path / "s.npz").read_bytes() == b"foreign"
    assert cli.main([*argv, "--force"]) == 0
    assert np.load(tmp_path / "s.npz")["arr_0"].shape == (4, 8, 8, 3)
    assert cli.main(argv) == 0  # its own npz: rewritten without --force
    assert "4 images in s" in capsys.readouterr().out


def test_atomic_path_follows_a_symlink_and_keeps_it(tmp_path):
    (tmp_path / "target.json").write_text("old")
    (tmp_path / "link.json").symlink_to("target.json")
    with atomic_path(tmp_path / "link.json") as tmp:
        tmp.write_text("new")
    assert (tmp_path / "link.json").is_symlink() and (tmp_path / "target.json").read_text() == "new"
    (tmp_path / "dangling.json").symlink_to("made/by/the/write.json")
    with atomic_path(tmp_path / "dangling.json") as tmp:
        tmp.write_text("x")
    assert (tmp_path / "dangling.json").is_symlink() and (tmp_path / "made/by/the/write.json").read_text() == "x"


def test_atomic_path_permissions_follow_the_umask_or_the_replaced_file(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "new.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o640
    (tmp_path / "private.txt").write_text("x")
    os.chmod(tmp_path / "private.txt", 0o600)
    with atomic_path(tmp_path / "private.txt") as tmp:
        tmp.write_text("y")
    assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600


@pytest.mark.parametrize("kind", ["folder", "fifo", "device"])
def test_atomic_path_refuses_non_regular_targets(kind, tmp_path):
    path = {"folder": tmp_path / "d", "fifo": tmp_path / "f", "device": pathlib.Path("/dev/null")}[kind]
    if kind == "folder":
        path.mkdir()
    if kind == "fifo":
        os.mkfifo(path)
    mode = path.lstat().st_mode
    with pytest.raises(UserInputError, match={"folder": "a directory", "fifo": "a FIFO", "device": "a character device"}[kind]):
        with atomic_path(path) as tmp:
            tmp.write_text("x")
    assert path.lstat().st_mode == mode
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_writable_target_refuses_a_read_only_folder(tmp_path):
    os.chmod(tmp_path, 0o500)
    try:
        with pytest.raises(UserInputError, match="does not accept new files"):
            writable_target(tmp_path / "x" / "out.json")
    finally:
        os.chmod(tmp_path, 0o700)


def test_temp_files_are_hidden_never_png_and_skipped_by_readers(tmp_path):
    with atomic_path(tmp_path / "class0_img0.png") as tmp:
        assert tmp.name.startswith(".class0_img0.png.") and tmp.suffix == ".tmp"
        Image.new("RGB", (8, 8), "white").save(tmp, format="PNG")
        Image.new("RGB", (8, 8)).save(tmp_path / ".class0_img1.png.abc.png", format="PNG")  # an older version's temp
        with pytest.raises(UserInputError, match="holds no .png files"):
            load_images(tmp_path)  # nothing but temp files yet
    assert load_images(tmp_path).shape == (1, 8, 8, 3)
    (tmp_path / ".class0_img2.png.xyz.tmp").write_bytes(b"half")
    (tmp_path / ".notes.png.tmp").write_bytes(b"not ours")
    assert remove_partial_images(tmp_path) == 2
    assert sorted(f.name for f in tmp_path.iterdir()) == [".notes.png.tmp", "class0_img0.png"]
    assert remove_leftovers(tmp_path / "missing", "x") == []


KILLER = """
import os, signal, sys
from PIL import Image

saves = 0
original = Image.Image.save

def save_then_die(self, fp, *args, **kwargs):  # the 3rd image: half of its bytes reach the temp file, then SIGKILL
    global saves
    saves += 1
    if saves == 3:
        with open(fp, "wb") as handle:
            handle.write(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(40))
            handle.flush()
            os.fsync(handle.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, fp, *args, **kwargs)

Image.Image.save = save_then_die
from fpqvar.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sample_killed_mid_write_resumes_to_identical_images(workdir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["--var", str(workdir / "var.safetensors"), "--vae", str(workdir / "vae.safetensors"), "--classes", "0-2",
            "--per-class", "2", "--batch-size", "1", "--device", "cpu", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, "-c", KILLER, "sample", "--out", "resumed", *args], env=env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    folder = tmp_path / "resumed"
    leftovers = [f.name for f in folder.iterdir() if f.name.startswith(".")]
    assert len(leftovers) == 1 and leftovers[0].endswith(".tmp"), leftovers  # killed mid-write, temp file left
    assert load_images(folder).shape[0] == 2  # a reader sees the 2 finished images, not the half-written one
    assert not (tmp_path / "resumed.npz").exists()

    assert cli.main(["sample", "--out", "resumed", *args]) == 0
    assert cli.main(["sample", "--out", "straight", *args]) == 0
    assert capsys.readouterr().out.count("6 images in") == 2
    names = sorted(f.name for f in folder.iterdir())
    assert names == sorted(f.name for f in (tmp_path / "straight").iterdir())  # no leftover, nothing extra
    assert len([n for n in names if n.endswith(".png")]) == 6
    for name in names:
        if name.endswith(".png"):
            assert (folder / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name
    resumed, straight = np.load(tmp_path / "resumed.npz")["arr_0"], np.load(tmp_path / "straight.npz")["arr_0"]
    assert resumed.shape == (6, 8, 8, 3) and np.array_equal(resumed, straight)
