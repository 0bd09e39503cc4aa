"""A user's own checkpoint flows through every chapter without edits.

An official-architecture pair with random weights is written as the official release writes it (`torch.save` of
the state dict): the released VQVAE configuration (ch 160, 4096 codes, Cvae 32, 256 px) and a VAR of the released
key layout but depth 2, so that it runs on a CPU. Every chapter that takes `var`/`vae` (found from its parameters
cell, so new chapters are included) is executed by papermill on that pair with tiny counts. The numbers are
meaningless; what is tested is that each chapter runs to the end on a user's files.
"""

import re

import pytest
import torch

jupytext = pytest.importorskip("jupytext")
papermill = pytest.importorskip("papermill")

from fpqvar.model import VAR, VQVAE, VARConfig, VQVAEConfig  # noqa: E402

# Tiny counts per chapter (the 256 px VQVAE decode on a CPU is the cost); chapters not listed get only
# var, vae, device and output_dir.
OVERRIDES = {
    "01_number_formats": {"block": 1},
    "02_embedded_model": {"per_class": 1, "classes": 2},
    "03_activations": {"samples": 1, "block": 1, "top_k": 4},
    "04_dual_format": {"samples": 1, "baseline_samples": 1},
    "06_galt": {"samples": 1, "epochs": 1, "block": 1, "blocks_at_once": 2, "folding_images": 1},
    "07_results": {"recipes": ["fp16", "int8_rtn"], "per_class": 1, "held_out_images": 2, "live_recipes": [],
                   "grid_recipes": ["fp16", "int8_rtn"], "grid_classes": [1]},
}


def _model_chapters(repo_root):
    chapters = []
    for source in sorted((repo_root / "notebooks").glob("[0-9][0-9]_*.py")):
        cells = [c for c in jupytext.read(source).cells if "parameters" in c.metadata.get("tags", [])]
        if cells and re.search(r"^var = ", cells[0].source, re.M) and re.search(r"^vae = ", cells[0].source, re.M):
            chapters.append(source)
    return chapters


@pytest.fixture(scope="module")
def official_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("official")
    torch.manual_seed(0)
    vae = VQVAE(VQVAEConfig())  # vae_ch160v4096z32: the released configuration
    var = VAR(VARConfig(depth=2))  # the released key layout (1000 classes, 4096 codes, 10 scales), depth 2
    var.init_weights(init_adaln=0.5, init_adaln_gamma=1.0)
    paths = folder / "vae_ch160v4096z32.pth", folder / "var_d2.pth"
    torch.save(vae.state_dict(), paths[0])
    torch.save(var.state_dict(), paths[1])
    return paths


def test_the_pair_has_the_official_layout(official_pair):
    vae_state = torch.load(official_pair[0], weights_only=True)
    var_state = torch.load(official_pair[1], weights_only=True)
    assert tuple(vae_state["quantize.embedding.weight"].shape) == (4096, 32)
    assert tuple(vae_state["encoder.conv_in.weight"].shape) == (160, 3, 3, 3)
    assert tuple(var_state["class_emb.weight"].shape) == (1001, 128) and tuple(var_state["pos_1LC"].shape) == (1, 680, 128)
    assert {k.split(".")[1] for k in var_state if k.startswith("blocks.")} == {"0", "1"}


def test_chapters_are_discovered(repo_root):
    names = [p.stem for p in _model_chapters(repo_root)]
    assert {"01_number_formats", "02_embedded_model", "03_activations", "04_dual_format"} <= set(names)


def test_every_model_chapter_runs_on_a_users_checkpoint(repo_root, official_pair, tmp_path):
    vae_path, var_path = official_pair
    for source in _model_chapters(repo_root):
        notebook = tmp_path / f"{source.stem}.ipynb"
        jupytext.write(jupytext.read(source), notebook)
        parameters = {"var": str(var_path), "vae": str(vae_path), "device": "cpu",
                      "output_dir": str(tmp_path / "results" / source.stem), **OVERRIDES.get(source.stem, {})}
        papermill.execute_notebook(str(notebook), str(tmp_path / f"{source.stem}.out.ipynb"), parameters=parameters,
                                   cwd=str(repo_root), kernel_name="python3", progress_bar=False)
        if source.stem in OVERRIDES:  # ours write their figures there; other chapters may keep theirs inline
            assert any((tmp_path / "results" / source.stem).iterdir()), f"{source.stem} wrote no results"
