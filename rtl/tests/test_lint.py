"""Every module in rtl/src lints clean under `verilator --lint-only -Wall`."""

import subprocess

import pytest
from conftest import RTL, SIMULATORS

MODULES = sorted(p.stem for p in (RTL / "src").glob("*.v"))


@pytest.mark.skipif("verilator" not in SIMULATORS, reason="Verilator is not installed")
@pytest.mark.parametrize("module", MODULES)
def test_verilator_lint(module):
    result = subprocess.run(
        ["verilator", "--lint-only", "-Wall", "--top-module", module, str(RTL / "src" / f"{module}.v")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "%Warning" not in result.stderr, result.stderr
