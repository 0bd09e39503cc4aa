"""Build and run one cocotb test module against one Verilog top, from pytest."""

from __future__ import annotations

import pathlib

from cocotb_tools.runner import get_runner

RTL = pathlib.Path(__file__).resolve().parents[1]


def simulate(simulator: str, toplevel: str, test_module: str, parameters: dict[str, int], sources: list[str] | None = None):
    """Compile ``rtl/src/<toplevel>.v`` (plus ``sources``) with ``parameters`` and run ``test_module``'s cocotb tests."""
    tag = "_".join(f"{k}{v}" for k, v in sorted(parameters.items()))
    build_dir = RTL / "tests" / "sim_build" / f"{toplevel}_{tag}_{simulator}"
    runner = get_runner(simulator)
    build_args = ["-Wall", "-Wno-fatal"] if simulator == "verilator" else []
    runner.build(
        sources=[RTL / "src" / f"{name}.v" for name in [toplevel, *(sources or [])]],
        hdl_toplevel=toplevel,
        parameters=parameters,
        build_dir=build_dir,
        build_args=build_args,
        always=True,
        timescale=("1ns", "1ps"),
    )
    runner.test(hdl_toplevel=toplevel, test_module=test_module, build_dir=build_dir, test_dir=RTL / "tests")
