# ---
# jupyter:
#   jupytext:
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
# # Hardware: LUT multipliers, the FP4 quantizer, and resource estimates
#
# The paper's accelerator (Sec. IV-D, Fig. 7, Tables V-VI) was never released. `rtl/` rebuilds its datapath in
# Verilog, verified bit for bit against the Python models in `fpqvar.hw` (cocotb, in `nox -s tests`). This
# chapter shows what those models compute and what open tools measure.
#
# **What is measured here.** Tables of the LUT multiplier and encoder, computed from `fpqvar.hw`; the
# quantizer's disagreement with round-to-nearest, measured on synthetic groups; resource estimates from Yosys
# for UltraScale+ (`data/hw/resources.json`, made by `nox -s synth`), **not** Vivado results and not for the
# paper's Versal VCK190. The paper's Tables V and VI are printed for reference, labelled as the paper's.

# %% tags=["parameters"]
checkpoint = None  # unused here: the hardware models need no checkpoint
device = "cpu"
output_dir = None  # folder for CSV results; None keeps them in the notebook only
groups = 256  # synthetic groups of 128 for the mismatch measurement
seed = 0

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
# Rounding x to the integer t and then t to the grid is a double rounding. On synthetic Gaussian groups
# (standard quantizer) and GELU-shaped groups (DFQ, as FC2's input), integer inputs scaled by 3000:

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
print("measured on synthetic data with fpqvar.hw.quantizer (a model of the paper's design), not on VAR activations")
mismatch

# %% [markdown]
# ## Resource estimates
#
# Yosys `synth_xilinx -family xcup` on each module (`nox -s synth`). The paper's totals are for the whole
# accelerator on a Versal VCK190 with Vivado; ours are per module, for UltraScale+, from an open tool.

# %%
resources = json.loads((data_dir() / "hw" / "resources.json").read_text())
print(f"ours: {resources['tool'].splitlines()[0]}; {resources['flow']}")
pd.DataFrame([{"module": m["module"], "parameters": json.dumps(m["parameters"]), **{k: m[k] for k in ("LUT", "FF", "CARRY", "MUXF", "DSP", "BRAM")}}
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
    with atomic_path(out / "quantizer_mismatch.csv") as tmp:
        mismatch.to_csv(tmp, index=False)
    print(f"wrote {out / 'quantizer_mismatch.csv'}")
