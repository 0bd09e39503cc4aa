# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-papermill
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Hardware: LUT multipliers, the FP4 quantizer, the GEMM unit, the two-level pipeline, and resource estimates
#
# The paper's accelerator (Sec. IV-D, Fig. 7-8, Tables V-VII) was never released. `rtl/` rebuilds its datapath in
# Verilog, verified bit for bit against the Python models in `fpqvar.hw` (cocotb, in `nox -s tests`). This
# chapter shows what those models compute and what open tools measure.
#
# **What is measured here.** Tables of the LUT multiplier and encoder, computed from `fpqvar.hw`; the
# quantizer's and the GEMM unit's disagreement with the software quantizer and matmul, measured on synthetic
# data; cycle counts measured in Verilator simulation (`data/hw/cycles.json`, made by `python rtl/measure_cycles.py`);
# resource estimates from Yosys for UltraScale+ (`data/hw/resources.json`, made by `nox -s synth`), **not**
# Vivado results and not for the paper's Versal VCK190. The paper's Tables V-VII are printed for reference,
# labelled as the paper's. **This chapter needs no model**: it loads no checkpoint and runs on a CPU. Chapter 08
# turns these units into the whole accelerator's throughput.

# %% tags=["parameters"]
seed = 0  # seeds the synthetic activations and weights
output_dir = "build/results/05_hardware"  # folder for CSV results; None keeps them in the notebook only
groups = 256  # synthetic groups of 128 for the mismatch measurement

# %%
import json
import pathlib

import pandas as pd
import torch

from fpqvar.atomic import atomic_path
from fpqvar.hw import (
    PRODUCT_FRACTION_BITS,
    dfq_encoder_table,
    e2m1_encoder_table,
    gemm_report,
    lut_multiplier_table,
    mismatch_report,
)
from fpqvar.paper import SOURCE, load_table
from fpqvar.paths import data_dir

pd.set_option("display.width", 120)

# %% [markdown]
# ## The LUT multiplier (Fig. 7f)
#
# Two 4-bit codes form an 8-bit address. The table stores each product exactly as a signed integer with
# 2 fraction bits (product x 4): FP8 E4M3, which the paper names, cannot hold every DFQ product
# (3.5 x 3 = 10.5). Rows: activation code, columns: weight code (E2M1).

# %%
table = lut_multiplier_table(dual=False).reshape(16, 16) / 2**PRODUCT_FRACTION_BITS
codes = [format(c, "04b") for c in range(16)]
pd.DataFrame(table.numpy(), index=codes, columns=codes)

# %% [markdown]
# ## The encoder tables (Fig. 7a, 7g)
#
# The scale pass maps a value to t = round(12 x / max|x|) in [-12, 12]; the table turns t into a code.
# t = 5, 7, 10 lie halfway between E2M1 values, so the tie rule decides them.

# %%
t = list(range(-12, 13))
encoders = pd.DataFrame({
    "t": t,
    "E2M1, ties to even": [format(c, "04b") for c in e2m1_encoder_table("even")],
    "E2M1, ties up (released kernel)": [format(c, "04b") for c in e2m1_encoder_table("up")],
    "DFQ (E1M2 below 0), ties to even": [""] * 5 + [format(c, "04b") for c in dfq_encoder_table("even")],
})
encoders.T

# %% [markdown]
# ## How often the hardware quantizer differs from round-to-nearest
#
# The scale pass finds the group maximum m and reads R / m from a table (no divider): m's leading bits, rounded
# to 8 fraction bits, address 257 entries. The encode pass multiplies, rounds to the integer t and looks t up.
# Rounding x to t and then t to the grid is a double rounding, and the table reciprocal is off by up to
# 12 x 2^-9 in units of t. On synthetic Gaussian groups (standard quantizer) and GELU-shaped groups (DFQ, as
# FC2's input), integer inputs scaled by 3000:

# %%
g = torch.Generator().manual_seed(seed)
gaussian = (torch.randn(groups, 128, generator=g) * 3000).round().long()
gelu = (torch.nn.functional.gelu(torch.randn(groups, 128, generator=g)) * 3000).round().long()
rows = []
for name, x, dual in (("E2M1, Gaussian groups", gaussian, False), ("DFQ, GELU groups", gelu, True)):
    for tie in ("even", "up"):
        report = mismatch_report(x, dual=dual, tie=tie)
        rows.append({"quantizer": name, "tie": tie, "values": report["values"],
                     "mismatch rate": round(report["mismatch_rate"], 4), "max steps apart": report["max_grid_steps_apart"]})
mismatch = pd.DataFrame(rows)
print("measured on synthetic data with fpqvar.hw.fp4_quantizer (a model of the paper's design), not on VAR activations")
mismatch

# %% [markdown]
# How much of that is the reciprocal table: the same measurement with smaller and larger tables (ties to even).
# Most of the mismatches remain with any table: they come from the double rounding.

# %%
table_sizes = pd.DataFrame([
    {"index bits": bits, "table entries": 2**bits + 1,
     "E2M1 mismatch rate": round(mismatch_report(gaussian, index_bits=bits)["mismatch_rate"], 4),
     "DFQ mismatch rate": round(mismatch_report(gelu, dual=True, index_bits=bits)["mismatch_rate"], 4)}
    for bits in (4, 6, 8, 10)
])
table_sizes

# %% [markdown]
# ## The GEMM unit against the software matmul
#
# The GEMM unit adds no rounding of its own: exact products (x4), exact group sums, exact scaling by the
# activation maximum and a 16-bit weight scale, exact accumulation (its result x 1/24, or 1/168 for DFQ, is the
# product of the dequantized operands; tested). So the hardware path differs from the software's
# (`fake_quantize` both operands, float64 matmul) only through the quantizer's codes and the weight scales'
# 16 bits. Relative Frobenius errors on synthetic integer activations (K = 512) and Gaussian weights:

# %%
x = (torch.randn(64, 512, generator=g) * 3000).round().long()
x_gelu = (torch.nn.functional.gelu(torch.randn(64, 512, generator=g)) * 3000).round().long()
w = torch.randn(32, 512, generator=g)
gemm_errors = pd.DataFrame([
    {"GEMM unit": name, **{k: round(v, 4) for k, v in gemm_report(inputs, w, dual=dual).items()}}
    for name, inputs, dual in (("E2M1 x E2M1, Gaussian activations", x, False), ("DFQ x E2M1, GELU activations", x_gelu, True))
]).set_index("GEMM unit")
gemm_errors.T

# %% [markdown]
# ## Cycle counts from simulation (Fig. 8)
#
# Measured in Verilator (cocotb) at VAR-d30 sizes (C = 1920: 15 GHT groups of 128 per token; FC2 reduces over
# 4C = 60 groups), on a 2 x 2 PE array; the suite checks every count against the cycle model in
# `fpqvar.hw` (`linear_tile`, `fp4_gemm`, `fmu_overlap_controller`, ...). Latency: edges from taking a beat to its result being valid; interval: edges per beat.

# %%
cycles = json.loads((data_dir() / "hw" / "cycles.json").read_text())
print(f"{cycles['simulator']}; {cycles['conventions']}")
measured = {}
for row in cycles["measurements"]:
    measured.update(row["measured"])
units = pd.DataFrame([
    {"unit": row["module"], "parameters": json.dumps(row["parameters"]),
     "latency": next((v for k, v in row["measured"].items() if k.endswith("_latency")), None),
     "interval (edges per beat)": next((v for k, v in row["measured"].items() if k.endswith("interval")), None)}
    for row in cycles["measurements"] if any(k.endswith("_latency") for k in row["measured"])
])
units

# %% [markdown]
# **First level** (Fig. 8b-c): one linear-layer tile, GHT -> quantize -> GEMM on 15 groups, group by group, against
# the order a full Hadamard transform forces (each step over the whole tile before the next; store-and-forward
# buffers in `linear_tile`'s SEQUENTIAL build). **Second level** (Fig. 8d-e): per block, FC2 on the DFQ unit
# (one tile over 60 groups) and the next block's ada_lin on the FP4 unit (one tile over 15 groups), one after the
# other or overlapped, three blocks.

# %%
levels = pd.DataFrame([
    {"pipeline": "first level: one tile, GHT -> quantize -> GEMM", "without (cycles)": measured["linear_tile_sequential"],
     "with (cycles)": measured["linear_tile_pipelined"]},
    {"pipeline": "second level: FC2 || next ada_lin, 3 blocks", "without (cycles)": measured["fmu_sequential"],
     "with (cycles)": measured["fmu_overlapped"]},
])
levels["speed-up"] = (levels["without (cycles)"] / levels["with (cycles)"]).round(2)
levels

# %% [markdown]
# These are one tile and one pair of jobs on a small array, not the accelerator: the paper reports the two levels
# together cutting the whole block's latency 2.3x (Fig. 8a to 8e) and, in Table VII, DFQ's throughput falling
# from 1.02x to 0.67x without its pipeline. By the cycle model, the first level's gain tends to 3x as tiles get
# longer (three steps overlapped instead of in turn, the fill latency weighing on short tiles), and the second's
# is (FC2 + ada_lin) / FC2 per block while ada_lin is the shorter job.

# %% [markdown]
# ## Resource estimates
#
# Yosys `synth_xilinx -family xcup -flatten` on each module (`nox -s synth`), at sizes Yosys compiled to
# WebAssembly can hold (groups of 16 for the quantizer, 8 lanes per PE, 16-point GHT in the tile). The paper's
# totals are for the whole accelerator on a Versal VCK190 with Vivado; ours are per module, for UltraScale+,
# from an open tool.

# %%
resources = json.loads((data_dir() / "hw" / "resources.json").read_text())
print(f"ours: {resources['tool'].splitlines()[0]}; {resources['flow']}")
pd.DataFrame([{"module": m["module"], "parameters": json.dumps(m["parameters"]), **{k: m[k] for k in ("LUT", "FF", "CARRY", "MUXF", "LUTRAM", "SRL", "DSP", "BRAM")}}
              for m in resources["modules"]])

# %%
print(f"paper, Table VI ({SOURCE}): utilization of the whole FPQVAR accelerator on VCK190")
load_table("table6_utilization")

# %%
print(f"paper, Table V ({SOURCE})")
load_table("table5_hardware")

# %%
if output_dir is not None:
    out = pathlib.Path(output_dir)
    for name, frame in (("quantizer_mismatch", mismatch), ("reciprocal_table_sizes", table_sizes),
                        ("gemm_errors", gemm_errors), ("unit_cycles", units), ("pipeline_cycles", levels)):
        with atomic_path(out / f"{name}.csv") as tmp:
            frame.to_csv(tmp, index=name == "gemm_errors")
        print(f"wrote {out / f'{name}.csv'}")
