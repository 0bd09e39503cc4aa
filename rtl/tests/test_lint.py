"""Every module in rtl/src lints clean under `verilator --lint-only -Wall` (submodules found in rtl/src by name)."""

import subprocess

import pytest
from simulate import SIMULATORS, SOURCES

MODULES = sorted(p.stem for p in SOURCES.glob("*.v"))
# At their defaults these elaborate thousands of product tables (ROWS x COLS x LANES), which takes Verilator a
# minute; the same code is linted on a smaller array.
SMALLER = {"fp4_gemm": {"ROWS": 2, "COLS": 2, "LANES": 32}, "fmu_overlap_controller": {"ROWS": 2, "COLS": 2, "LANES": 32}}


@pytest.mark.skipif("verilator" not in SIMULATORS, reason="Verilator is not installed")
@pytest.mark.parametrize("module", MODULES)
def test_verilator_lint(module):
    result = subprocess.run(
        ["verilator", "--lint-only", "-Wall", "-y", str(SOURCES), "--top-module", module, str(SOURCES / f"{module}.v"),
         *(f"-G{name}={value}" for name, value in SMALLER.get(module, {}).items())],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "%Warning" not in result.stderr, result.stderr
