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
# # Performance: the accelerator as a model, against Tables V and VII and Fig. 8
#
# Chapter 05 shows the accelerator's units, simulated cycle by cycle. This chapter puts them together into the
# paper's machine (Fig. 7c) and runs VAR on it: `fpqvar.hw.performance` counts every operation of one image
# (`fpqvar.hw.workload`: each linear layer, attention with each step's KV length, element-wise work, weights and
# KV bytes, classifier-free guidance doubling the rows), times each layer with the unit cycle formulas that the
# RTL simulations check (`data/hw/cycles.json`), and schedules them as the paper describes.
# **This chapter needs no model**: no checkpoint is loaded (the shapes of the released VAR models are enough),
# and it runs on a CPU in seconds.
#
# **What is ours and what is the paper's.** Every number called "ours" is a prediction of this model; every
# number called "paper" is the authors' measurement on their VCK190, read from `data/paper/`. The machine's
# parameters are read from the paper's Tables V and VI and the platform's documentation
# (`data/hw/platform_vck190.json`, each fact with its source); none is fitted to the paper's throughput, so where
# the model misses, the miss is shown and explained, not tuned away.

# %% tags=["parameters"]
seed = 0  # nothing here is random; kept for the chapters' common parameters
output_dir = "build/results/08_performance"  # folder for figures and CSV results; None keeps them in the notebook
model_name = "d30"  # the released VAR the paper's hardware numbers are for
batch_sizes = [1, 2, 4, 8, 16]  # images per batch (the weights stream once per step for the whole batch)

# %%
import json
import pathlib
from dataclasses import replace

import pandas as pd

from fpqvar.atomic import atomic_path
from fpqvar.figures.performance import roofline, sweep_scatter, time_by_part
from fpqvar.hw.performance import (
    SWEEP,
    bottleneck,
    design_sweep,
    image_time,
    images_per_second,
    infer_machine,
    performance_report,
    read_paper_hardware,
    read_platform,
    yosys_estimates,
)
from fpqvar.hw.workload import block_weight_count, image_macs, image_workload
from fpqvar.model.config import RELEASED_VAR
from fpqvar.paper import SOURCE, load_table

pd.set_option("display.width", 130)
config = RELEASED_VAR[model_name]
paper, platform = read_paper_hardware(), read_platform()
fpqvar, int_baseline, inferences = infer_machine(paper, platform)
rows = design_sweep(config, fpqvar, platform, paper)
report = performance_report(config, rows)
out = pathlib.Path(output_dir) if output_dir else None
if out:
    out.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The work of one image
#
# Per step k: 2 l_k new token rows (conditional and unconditional), a KV cache of cum_k positions, every block's
# weights. Early steps are a few rows against 2 G weights; the last step is 512 rows.

# %%
steps = image_workload(config)
workload = pd.DataFrame([{
    "step": s.index, "tokens per image": s.new_tokens, "rows (CFG)": s.block.tokens, "KV length": s.block.kv_length,
    "GMAC": round(sum(m.macs for m in s.matmuls()) / 1e9, 2),
    "LayerNorm/GELU/softmax elements (M)": round(s.depth * (s.block.layernorm_elements + s.block.gelu_elements
                                                             + s.block.softmax_elements) / 1e6, 2),
    "KV MB read": round(s.depth * s.block.kv_bytes_read / 1e6, 1),
} for s in steps])
workload

# %% [markdown]
# By component (the paper's Fig. 1e gives the same split for the whole model): parameters of each block layer
# and its share of the multiply-accumulates.

# %%
macs = image_macs(config)
weights = block_weight_count(config)
components = pd.DataFrame([
    {"component": name, "parameters (M)": round(config.depth * weights.get(name, 0) / 1e6, 1),
     "GMAC per image": round(macs[name] / 1e9, 1), "share of MACs": f"{macs[name] / sum(macs.values()):.1%}"}
    for name in macs
])
components

# %% [markdown]
# **The paper's "5.6 TFLOPs per image".** Counting two operations per multiply-accumulate, the sampler computes
# 3.79 TFLOPs for d30 with guidance (1.90 without). The paper's figure is reached only by counting the condition
# MLP (ada_lin, D -> 6C) once per *token* row, as a counter that treats it like the block's other linear layers
# would; the sampler applies it once per condition row. Table V's GOPS row divided by its throughput gives about the
# same per-image count for all three platforms, so that row is throughput x this count, not a peak.

# %%
tflops = pd.DataFrame({"TFLOPs per image": report["tflops_per_image"]})
tflops.loc["paper (Sec. I)"] = report["paper"]["tflops_per_image"]
print(tflops.round(3))
print("Table V GOPS / img/s, paper's numbers:", {k: round(v) for k, v in report["table5_gops_per_image"].items()})
ht = report["hadamard_ops_per_token"]
print(f"HT vs GHT per token at C = {config.C}: dense products {ht['dense_ratio']:.0f}x (the paper's 15x), "
      f"fast transforms {ht['fast_ratio']:.2f}x")

# %% [markdown]
# ## The machine, as read from the paper
#
# The paper gives no PE counts. Each inference below is computed from Tables V and VI (and the platform file) by
# `infer_machine`; the sources of the platform's numbers are in `data/hw/platform_vck190.json` (three of them
# could not be checked against a stored copy of AMD's documents and are marked unverified there).

# %%
pd.DataFrame([{"parameter": i.parameter, "value": f"{i.value:g}", "how": i.how} for i in inferences])

# %% [markdown]
# ## Resources: Table VI beside our Yosys estimates
#
# Yosys (for UltraScale+, not Versal, and not Vivado) cannot hold the paper's units whole, so each is estimated from
# the sizes it did synthesise (`data/hw/resources.json`), with the scaling rule shown. The GEMM units' LUTs per lane
# are a check on the column counts read from Table V: the paper's GEMM1 has 242k LUTs for 36 x 128 lanes.

# %%
t6 = paper["table6"]
paper_units = {"FP4 GEMM unit": "FMU GEMM1", "DFQ GEMM unit": "FMU GEMM2", "GHTU": "GHTU",
               "Quantizer 1 (E2M1)": "FMU Quant1", "Quantizer 2 (DFQ)": "FMU Quant2"}
resources = pd.DataFrame([{"unit": e["unit"], "ours LUT (k)": round(e["LUT"] / 1e3, 1),
                           "paper LUT (k)": t6[paper_units[e["unit"]]]["LUT"] / 1e3, "ours FF (k)": round(e["FF"] / 1e3, 1),
                           "paper FF (k)": t6[paper_units[e["unit"]]]["FF"] / 1e3, "ours DSP": round(e["DSP"]),
                           "paper DSP": t6[paper_units[e["unit"]]]["DSP"], "scaling": e["scaling"]}
                          for e in yosys_estimates(fpqvar)])
print("LUTs per lane, paper (Table VI GEMM LUTs / lanes read from Table V): "
      f"FP4 {t6['FMU GEMM1']['LUT'] / (fpqvar.fp4_columns * fpqvar.lanes):.1f}, "
      f"DFQ {t6['FMU GEMM2']['LUT'] / (fpqvar.dfq_columns * fpqvar.lanes):.1f}")
resources

# %% [markdown]
# The FP4 unit's estimate lands on Table VI's 242k LUTs: our E2M1 lane (product table and adder share) costs what
# the paper's does, which supports reading Table V's GOPS as 36 columns of 128 lanes. Our DFQ lane costs about
# twice the paper's (it keeps the negative and positive sums apart in every lane); at our cost, Table VI's 153k LUTs
# would hold about half the 24 columns the DSP ratio gives. The model keeps 24 (the paper's PE is not ours), which
# if anything flatters its FC2: the gap to the paper's throughput is not from a DFQ unit read too small.

# %% [markdown]
# ## Table V: images per second
#
# Ours beside the paper's measured throughput. Energy per image uses the power the paper's own Table V implies
# (throughput / energy efficiency: 44 W and 51 W), not a power model of ours.

# %%
table5 = pd.DataFrame({
    "ours": [report["fpqvar_img_per_s"], report["int_baseline_img_per_s"], report["speedup_vs_int"],
             report["img_per_joule"]],
    "paper": [report["paper"]["fpqvar_img_per_s"], report["paper"]["int_baseline_img_per_s"],
              report["paper"]["speedup_vs_int"], report["paper"]["img_per_joule"]],
}, index=["FPQVAR img/s", "INT baseline img/s", "speed-up vs INT", "FPQVAR img/J"])
table5["ours / paper"] = table5["ours"] / table5["paper"]
table5.round(3)

# %% [markdown]
# **Why FPQVAR's throughput is below the paper's.** With 36 + 24 columns of 128 lanes (the reading of Table V's
# 6144 GOPS as the peak), the two GEMM units run one after the other in the paper's schedule, except for FC2
# beside ada_lin. Their multiply-accumulates alone then bound the throughput, before attention's products on the
# SFU's DSPs (FP16 K and V) and the memory-bound early steps take their share:

# %%
fp4_macs = sum(v for k, v in macs.items() if k not in ("fc2", "attn_qk", "attn_av"))
unit_rate = fpqvar.lanes * fpqvar.clock_hz
serial_bound = 1 / (fp4_macs / (fpqvar.fp4_columns * unit_rate) + macs["fc2"] / (fpqvar.dfq_columns * unit_rate))
print(f"FP4 unit {fp4_macs / 1e12:.2f} TMAC at {fpqvar.fp4_columns * unit_rate / 1e12:.2f} TMAC/s, then DFQ unit "
      f"{macs['fc2'] / 1e12:.2f} TMAC at {fpqvar.dfq_columns * unit_rate / 1e12:.2f} TMAC/s: "
      f"at most {serial_bound:.2f} img/s with every lane busy (paper: {report['paper']['fpqvar_img_per_s']} img/s)")

# %% [markdown]
# So 1.1 img/s needs either more multipliers than Table V's peak implies or units working concurrently beyond the
# two levels the paper describes (the "FC2 tile by tile" option of the sweep below is one such schedule). The INT
# baseline misses for the same reasons (its FP16 FC2 on 502 DSPs dominates), so the speed-up, a ratio, lands
# closer to the paper's.

# %% [markdown]
# ## Table VII: normalised throughput

# %%
table7 = pd.DataFrame({"ours": report["table7_normalised_throughput"],
                       "paper": report["paper"]["table7_normalised_throughput"]})
table7["ours / paper"] = table7["ours"] / table7["paper"]
table7.round(3)

# %% [markdown]
# **The misses.** *FP4 baseline*: without a DFQ unit the model keeps the FP4 unit at 36 columns and runs FC2 there
# (its 24 DFQ columns' resources unused); the paper's 1.25x suggests its baseline spends them on a larger single
# unit, a design the paper does not describe. *Without pipeline*: in the model, the first level (quantizer and
# GEMM group by group) is what pays, since every tile re-streams its token through the quantizer; dropping both
# levels costs more than the paper's 0.67x. The second level alone is worth little here: ada_lin has 2 rows per
# step, so it only streams weights, and it shares the memory bus with FC2's. *HT* is close to the paper's 0.43x.

# %% [markdown]
# ## Fig. 8: the two pipeline levels
#
# (a) GHT with every stage in turn, (b) the full HT in turn as in [37], (c) GHT's first level, (d) the second level
# alone, (e) both. The paper does not say over which work its two gains are measured; Fig. 8 draws one block, so
# that is our comparison, with the QKV layer alone and the whole image beside it.

# %%
fig8 = pd.DataFrame({k: v for k, v in report["fig8_gains"].items() if k != "seconds"}).T
fig8["paper"] = [report["paper"]["fig8_gains"][k] for k in fig8.index]
fig8["block / paper"] = fig8["block"] / fig8["paper"]
fig8.round(2)

# %%
schedules = pd.DataFrame(report["fig8_gains"]["seconds"]) * 1e3
schedules.index.name = "schedule"
schedules.columns = [f"{c} (ms)" for c in schedules.columns]
schedules.round(2)

# %% [markdown]
# GHT against HT: an HT over C = 1920 channels needs the whole token before it can emit anything (a fast transform
# over 2048 points: 1.68x the GHT's butterflies), so rotation, quantization and multiplication go in turn; GHT
# overlaps them group by group. Per block our gain is below the paper's 3.9x, per QKV layer above it: the other
# layers (not rotated) dilute it. The two-level gain per block is above the paper's 2.3x because each tile
# re-streams its token through the quantizer, making the first level worth nearly 3x on every layer.

# %% [markdown]
# ## Roofline and where the time goes
#
# Each step as a point against the machine's roof (4.6k + 3.1k MAC per cycle at 400 MHz) and the DDR4's 25.6 GB/s
# slope. Steps 0-4 stream 1 GB of weights for a handful of rows: memory-bound; the last steps are compute-bound.

# %%
image = image_time(config, fpqvar)
peak = (fpqvar.fp4_columns + fpqvar.dfq_columns) * fpqvar.lanes * fpqvar.clock_hz
fig = roofline(image, peak_macs_per_s=peak, bandwidth_bytes_per_s=fpqvar.bandwidth_bytes_per_s,
               title=f"VAR-{model_name} on the FPQVAR machine: steps 0-9")
if out:
    fig.savefig(out / "roofline.png", dpi=120)

# %%
roof = pd.DataFrame([{"step": s.index, "rows": s.tokens, "ms": round(1e3 * s.seconds, 2),
                      "compute ms (alone)": round(1e3 * s.compute_s, 2), "memory ms (alone)": round(1e3 * s.memory_s, 2),
                      "bound": "memory" if s.memory_s >= s.compute_s else "compute"} for s in image])
roof

# %%
fig = time_by_part(image, f"VAR-{model_name}: time per step by part of the schedule")
if out:
    fig.savefig(out / "time_by_part.png", dpi=120)
by_part = pd.Series({k: sum(s.by_part.get(k, 0.0) for s in image) for k in image[-1].by_part}).sort_values(ascending=False)
(by_part / by_part.sum()).round(3).rename("share of the image's time")

# %% [markdown]
# ## Beyond the paper: a design-space sweep
#
# Columns of each GEMM unit, unfolded blocks, memory bandwidth (DDR4's 25.6 GB/s, and a hypothetical 51.2), and
# three changes the paper does not make: computing the condition MLP once per image (its output does not depend
# on the step), attention's products on the FP4 unit (FP4 Q, K, V; the paper's KV6 results suggest the cache
# tolerates it; the SFU's 824 DSPs are then free), and FC2 running token tile by token tile beside the FP4 unit.
# Resources scale Table VI per column (each column with its quantizer share) and per unfolded block; a point fits
# when its LUTs and DSPs are within the VC1902's.

# %%
sweep = pd.DataFrame(rows)
print(f"{len(sweep)} points, {int(sweep['fits'].sum())} fit the VC1902; grid: {json.dumps({k: list(v) for k, v in SWEEP.items()})}")
best = report["design_sweep"]["best"]
print("best point at the VCK190's 25.6 GB/s and 400 MHz:", {k: best[k] for k in SWEEP},
      f"-> {best['img_per_s']:.2f} img/s ({best['lut'] / 1e3:.0f}k LUT, {best['dsp']:.0f} DSP)")
print("its bottleneck:", report["design_sweep"]["best_bottleneck"])
print("the same point with larger batches:", {k: round(v, 2) for k, v in report["design_sweep"]["best_by_batch"].items()})
shown = ["fp4_columns", "dfq_columns", "bandwidth_bytes_per_s", "cache_condition", "attention_unit", "layer_pipeline",
         "img_per_s", "lut", "dsp"]
sweep[sweep["fits"]].sort_values("img_per_s", ascending=False)[shown].head(8).round(3)

# %%
fig = sweep_scatter(rows, luts=platform["luts"], title=f"VAR-{model_name}: design points")
if out:
    fig.savefig(out / "design_sweep.png", dpi=120)

# %% [markdown]
# The 2 img/s target is not reached within the VC1902: after the DSPs (each column of 128 lanes carries 16 for its
# scales) are freed by moving attention, the LUTs bind: every column of either unit costs about 7k LUTs, and the
# best point already uses most of the device. A larger batch helps only the memory-bound early steps. Going
# further would take a cheaper PE (our Yosys LUT multiplier is 32-37 LUTs; Table VI's units pay about 52 LUTs per
# lane with their adder trees), or the AI Engines the paper leaves unused.

# %% [markdown]
# ## Other models and batch sizes
#
# The paper's machine unchanged, with every released VAR (d36 is the 512-px model: 2240 tokens, attention over
# up to 2240 positions) and with batches of several images.

# %%
depths = pd.DataFrame([{"model": name, "resolution": 16 * RELEASED_VAR[name].patch_nums[-1],
                        "img/s": round(report["other_models"][name], 3), "bottleneck": bottleneck(RELEASED_VAR[name], fpqvar)}
                       for name in report["other_models"]])
depths

# %%
batches = pd.DataFrame([{"batch": b, "img/s": round(images_per_second(config, fpqvar, b), 3),
                         "img/s, best point": round(images_per_second(config, replace(fpqvar, **{k: best[k] for k in SWEEP}), b), 3)}
                        for b in batch_sizes])
batches

# %% [markdown]
# ## The paper's tables, as published

# %%
print(f"paper, Table V ({SOURCE})")
load_table("table5_hardware")

# %%
print(f"paper, Table VII's throughput ({SOURCE})")
load_table("table7_throughput")

# %%
print(f"paper, Fig. 8's gains and other numbers of the text ({SOURCE})")
pd.concat([load_table("fig8_gains").rename(columns={"gain": "claim"}), load_table("hardware_claims")])

# %%
if out:
    for name, frame in (("table5", table5), ("table7", table7), ("fig8", fig8), ("steps", roof),
                        ("design_sweep", sweep), ("models", depths), ("batches", batches)):
        with atomic_path(out / f"{name}.csv") as tmp:
            frame.to_csv(tmp)
    with atomic_path(out / "performance_model.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {len(list(out.glob('*.csv')))} CSV files and performance_model.json to {output_dir}")
