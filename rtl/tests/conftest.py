"""cocotb from pytest: one `simulator` parameter per installed simulator (see simulate.py)."""

import pytest
from simulate import SIMULATORS


def pytest_generate_tests(metafunc):
    if "simulator" in metafunc.fixturenames:
        metafunc.parametrize("simulator", SIMULATORS or [pytest.param("none", marks=pytest.mark.skip("no simulator"))])
