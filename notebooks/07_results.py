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
# # Results: Tables II, III, IV and VII, measured
#
# Every quantization recipe of the paper (`fpqvar.methods.RECIPES`) applied to one model, its samples scored, and
# its next-token distributions compared with the unquantized model's. The numbers come from **rows**: one JSON
# file per recipe, written by `fpqvar table` (`fpqvar.experiments.run_table`). This chapter reads a folder of rows
# (`results`), made here or elsewhere, e.g. on an 8-GPU node with the real VAR-d30 (README: real checkpoints).
#
# **What is compared with what.** On the embedded default the model is our MNIST VAR (depth 6, 10 classes, 32 px)
# and the sample metrics come from our digit classifier: *proxies*, named `classifier_*`, never comparable with the
# paper's Inception numbers on VAR-d30. Absolute numbers are not comparable across models at all, so the chapter
# compares what is: the **order** of the recipes (rank correlation with the paper's order) and the **sign of each
# method's gain** over its baseline. Every table also carries three teacher-forced measures on held-out images'
# tokens (MNIST test images here): the quantized model's NLL per token, the KL from the unquantized model's
# next-token distribution to the quantized one's, and their top-1 agreement. Every difference is checked against
# the measured spread (the range over two sampling seeds; the 95% bootstrap half-width over images for the
# teacher-forced measures); smaller differences are marked **n.s.** (not significant).
#
# **Where the rows come from.** The committed rows in `data/results/embedded/` were made by the command printed
# below on this project's 2-core CPU machine, shared with other jobs (`data/results/README.md` says what was left
# unfinished and why). Below, a few of them are recomputed live with fewer images, to show that they still hold.

# %% tags=["parameters"]
var = "embedded"  # a full-precision VAR checkpoint (var_d30.pth, .safetensors), or "embedded"
vae = "embedded"  # its VQVAE, or "embedded"
device = "cpu"
seed = 0
output_dir = "build/results/07_results"  # figures and the live rows; None keeps them in the notebook only
results = None  # folder of rows; None: data/results/embedded (embedded model) or <output_dir>/table (computed here)
recipes = None  # recipes to compute when `results` holds no rows; None: every recipe that fits the model
per_class = 1  # images per class and seed for rows computed here (live check, or a folder without rows)
held_out_images = 20  # held-out images for the teacher-forced measures of rows computed here
live_recipes = ["int6_rtn", "fp4_baseline"]  # recomputed live to check the committed rows (embedded model)
grid_recipes = ["fp16", "int4_rtn", "fp4_baseline", "fp4_dfq", "fp4_dfq_ght", "fp4_fpqvar"]
grid_classes = None  # None: digits 0-9 (embedded) or the paper's Fig. 9 classes 1, 153, 698, 738
evaluator = None  # None: the classifier proxy for the embedded model, no sample metrics otherwise; or inception:<file>

# %%
import json
import pathlib
import shlex
import tempfile

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import display

from fpqvar.distributed import Process
from fpqvar.experiments import GaltOptions, TableSettings, compare, read_rows, run_table
from fpqvar.experiments.figures import grid_figure, layer_error_heatmap, layer_errors_frame, recipe_images
from fpqvar.experiments.runner import AMP_DTYPES, galt_lambdas, load_models, read_settings
from fpqvar.methods import RECIPES, get_recipe
from fpqvar.paper import load_table
from fpqvar.paths import data_dir

torch.set_num_threads(1)  # live numbers then do not depend on the machine's core count (matmul sums differ)
pd.set_option("display.width", 160)
pd.set_option("display.max_columns", 30)
embedded = var == "embedded"
out = pathlib.Path(output_dir) if output_dir else None
if out:
    out.mkdir(parents=True, exist_ok=True)
results_dir = pathlib.Path(results) if results else (data_dir() / "results" / "embedded" if embedded else out / "table")
process = Process(0, 1, torch.device(device))
full_var, full_vae, model = load_models(var, vae, process.device)
fitting = [name for name, r in RECIPES.items()
           if all(int(n.split(".")[1]) < model["depth"] for n in r.block_overrides)]
print(f"model: VAR depth {model['depth']}, width {model['width']}, {model['image_size']} px; "
      f"{len(fitting)} of {len(RECIPES)} recipes fit it")
print("left out (per-block lists of the released d30 code):", sorted(set(RECIPES) - set(fitting)))

# %% [markdown]
# ## The rows
#
# A folder without rows is filled here with the given model (slow on a CPU for anything but the embedded model;
# use `fpqvar table` on a GPU instead). The protocol, counts and evaluator are read off the rows.

# %%
rows = read_rows(results_dir)
if not rows:
    settings = TableSettings(
        var=var, vae=vae, classes="all" if embedded else "1,153,698,738", per_class=per_class, batch_size=per_class,
        seeds=(seed, seed + 1), dtype="fp32" if device == "cpu" else "fp16",
        evaluator=evaluator or ("classifier:embedded" if embedded else "none"),
        held_out="mnist-test" if embedded else "samples", held_out_images=held_out_images, report_samples=1,
        galt=GaltOptions(samples=8, epochs=5),
    )
    run_table(settings, recipes or fitting, results_dir, process=process, progress=False)
    rows = read_rows(results_dir)
settings = read_settings(results_dir)
rows = sorted(rows, key=lambda r: list(RECIPES).index(r["recipe_name"]) if r["recipe_name"] in RECIPES else len(RECIPES))
first = rows[0]
if first["model"]["var_sha256"] != model["var_sha256"]:
    print(f"NOTE: these rows were made with another VAR ({first['model']['var']}, sha256 {first['model']['var_sha256'][:12]}) "
          f"than the one given here ({var}); the live parts below use the one given")
evaluator_kind = first["evaluator"]["kind"]
our_label = {"classifier": f"ours: VAR-d{first['model']['depth']}, classifier proxy",
             "inception": f"ours: VAR-d{first['model']['depth']}, Inception",
             "none": f"ours: VAR-d{first['model']['depth']}, teacher-forced only"}[evaluator_kind]
paper_label = "paper: VAR-d30, Inception"
protocol = first["protocol"]
print(f"{len(rows)} rows; {our_label}")
print("recipes that fit this model but have no row here (empty in the tables):",
      [r for r in fitting if r not in {row["recipe_name"] for row in rows}] or "none")
print(f"per recipe: {first['num_samples']} samples per seed ({len(protocol['classes'])} classes x {protocol['per_class']}), "
      f"seeds {protocol['seeds']}, cfg {protocol['cfg']}, top-k {protocol['top_k']}, top-p {protocol['top_p']}, {protocol['dtype']}")
print(f"teacher-forced: {first['teacher_forced']['source']} ({first['teacher_forced']['tokens']} tokens)")
print("evaluator:", first["evaluator"].get("what", "none"), "| reference:", first["evaluator"].get("reference"),
      first["evaluator"].get("reference_count", ""))
options = [("--per-class", settings.per_class), ("--batch-size", settings.batch_size), ("--held-out-images", settings.held_out_images),
           ("--reference-images", settings.reference_images), ("--galt-samples", settings.galt.samples),
           ("--galt-epochs", settings.galt.epochs), ("--report-samples", settings.report_samples)]
print("made by: fpqvar table --recipes", " ".join(r["recipe_name"] for r in rows), "--seeds", *settings.seeds,
      *[f"{k} {v}" for k, v in options if v is not None], "--evaluator", shlex.quote(settings.evaluator))

# %%
ours = compare.rows_frame(rows)
sample_metrics = [m for m in ("classifier_accuracy", "classifier_fid", "classifier_is", "classifier_precision", "classifier_recall",
                              "fid", "inception_score", "precision", "recall") if m in ours.columns]
teacher_metrics = ["kl", "top1_agreement", "nll"]
shown = sample_metrics + teacher_metrics


def with_spread(frame, metrics, digits=4):
    """'mean ± spread' strings: the seed range for sample metrics, the bootstrap half-width for teacher-forced ones."""
    cells = {}
    for m in metrics:
        cells[m] = [f"{v:.{digits}g} ± {s:.2g}" if pd.notna(s) else f"{v:.{digits}g}"
                    for v, s in zip(frame[m], frame[f"{m}_spread"], strict=True)]
    return pd.DataFrame(cells, index=frame.index)


print("every row, mean ± spread:")
with_spread(ours, shown)

# %% [markdown]
# ## Table II: preliminary results (RTN INT, LiteVAR-style, FP baselines)
#
# The paper's rows in the paper's order, its numbers beside ours. `kl` is per token (lower is better),
# `top1_agreement` the share of tokens whose most likely next token is unchanged.

# %%
table2 = load_table("table2_preliminary")
compare.side_by_side(ours, table2, shown, our_label, paper_label).round(4)

# %% [markdown]
# ## Table III: every method at 256 px
#
# The MixedFormat rows are the released code's per-block format lists for the 30 blocks of VAR-d30; they do not
# apply to another depth, so they are empty here unless the rows come from a d30.

# %%
table3 = load_table("table3_256")
compare.side_by_side(ours, table3, shown, our_label, paper_label).round(4)

# %% [markdown]
# ## Table IV: 512 px
#
# Table IV is VAR-d36 at 512 px. It is measured only when the rows come from a d36 pair (512 px images); its
# transcription is in `data/paper/table4_512.csv` (with a note on the text's "+110.2 IS", which no row of the
# table gives).

# %%
table4 = load_table("table4_512")
if first["model"]["image_size"] == 512:
    display(compare.side_by_side(ours, table4, shown, our_label, "paper: VAR-d36, Inception").round(4))
else:
    print(f"Table IV needs VAR-d36 (512 px); these rows are {first['model']['image_size']} px. The paper's numbers:")
    display(table4.set_index("row").drop(columns="recipe").rename(columns=lambda c: f"paper (d36): {c}"))

# %% [markdown]
# ## Table VII: the FP4 ablation
#
# Quality columns measured; the normalised-throughput column comes from the hardware performance model
# (`data/hw/performance_model.json`, key `table7_normalised_throughput`) when it exists, else it is the paper's.

# %%
table7 = load_table("table7_ablation")
ablation = compare.side_by_side(ours, table7.drop(columns="normalized_throughput"), shown, our_label, paper_label)
model_file = data_dir() / "hw" / "performance_model.json"
hw = json.loads(model_file.read_text()).get("table7_normalised_throughput") if model_file.exists() else None
if isinstance(hw, dict):
    by_row = [hw.get(recipe, hw.get(row)) for row, recipe in zip(table7["row"], table7["recipe"], strict=True)]
    ablation[("our hardware model", "normalized throughput")] = by_row
    print("throughput: our hardware performance model (data/hw/performance_model.json)")
else:
    ablation[(paper_label, "normalized throughput")] = table7["normalized_throughput"].to_numpy()
    print("throughput: the paper's column (no hardware performance model in data/hw/ yet)")
ablation.round(4)

# %% [markdown]
# ## What can be compared: order and gains
#
# **Order.** For each of our metrics, the Spearman correlation of the recipes' quality order with the paper's
# FID order in Table III (+1: the same ranking from best to worst), over the recipes both have.

# %%
order = compare.quality_order_correlation(ours, table3, "FID").join(
    compare.quality_order_correlation(ours, table3, "IS").drop(columns="recipes"))
order.round(3)

# %% [markdown]
# **Gains.** Each method over its baseline: positive is better (for FID, KL and NLL: lower), "n.s." where the
# difference is within the spread of either row.

# %%
pairs = [("int8_rtn", "fp16"), ("int6_litevar", "int6_rtn"), ("fp6_baseline", "int6_rtn"), ("fp6_fpqvar", "fp6_baseline"),
         ("fp6_fpqvar", "int6_litevar"), ("fp6_fpqvar_kv6", "fp6_fpqvar"), ("int4_litevar", "int4_rtn"),
         ("fp4_baseline", "int4_rtn"), ("fp4_dfq", "fp4_baseline"), ("fp4_dfq_ht", "fp4_dfq"), ("fp4_dfq_ght", "fp4_dfq"),
         ("fp4_fpqvar", "fp4_dfq_ght"), ("fp4_fpqvar", "fp4_dfq_ht"), ("fp4_fpqvar", "int4_litevar"),
         ("fp4_fpqvar_kv6", "fp4_fpqvar")]
gain_metrics = [m for m in ("classifier_fid", "fid", "kl", "top1_agreement", "nll") if m in ours.columns]
gains = compare.gains_table(ours, table3, pairs, gain_metrics)
gains.round(4)

# %% [markdown]
# The teacher-forced pass (`VAR.forward`) attends over the whole token sequence at once, without the KV cache, so
# it cannot see KV-cache quantization: a `*_kv6` row has the teacher-forced numbers of its recipe without KV6, and
# only its sample metrics measure the KV cache.
#
# **Which metric separates the recipes?** The share of recipe pairs whose difference exceeds the spread of both.

# %%
separation = compare.separation(ours, shown)
display(separation.round(3))
best = separation["share apart"].idxmax()
for metric in shown:
    print(f"{metric:22s} tells {separation.loc[metric, 'pairs apart']:3d} of {separation.loc[metric, 'pairs']} recipe pairs apart")
sample_verdict = (f"sample metrics from {first['num_samples']} images per seed tell "
                  f"{max(separation.loc[m, 'share apart'] for m in sample_metrics):.0%} of pairs apart at most"
                  if sample_metrics else "no sample metrics (these rows were scored by no evaluator)")
print(f"\nOn {our_label.removeprefix('ours: ')}, {best} separates the recipes best; {sample_verdict}.")
gain_columns = [c for c in gains.columns if c.endswith("verdict")]
agree = {c: int(((gains[c] == "better") & (gains["paper gain (FID)"] > 0)).sum() + ((gains[c] == "worse") & (gains["paper gain (FID)"] < 0)).sum())
         for c in gain_columns if "paper gain (FID)" in gains}
for c, count in agree.items():
    decided = int((gains[c] != "n.s.").sum())
    print(f"{c.removesuffix(' verdict')}: {decided} of {len(gains)} gains significant, {count} of them with the paper's sign")

# %% [markdown]
# ## Live check of the committed rows
#
# A few recipes recomputed now, with fewer images (one sampling seed, `per_class` images per class,
# `held_out_images` held-out images). Their teacher-forced measures should fall in the committed rows' range and
# keep their order; sample metrics from so few images are noise and are shown only for completeness.

# %%
live_recipes = [r for r in live_recipes if r in ours.index]
if embedded and live_recipes:
    live_settings = TableSettings(
        var=var, vae=vae, per_class=per_class, batch_size=per_class, seeds=(seed,), dtype=settings.dtype,
        evaluator=settings.evaluator, reference=settings.reference, reference_images=500, held_out=settings.held_out,
        held_out_images=held_out_images, report_samples=0, galt=settings.galt,
    )
    with tempfile.TemporaryDirectory() as folder:
        live = compare.rows_frame(run_table(live_settings, live_recipes, folder, process=process, progress=False))
    check = pd.DataFrame({
        "committed kl": ours.loc[live_recipes, "kl"], "committed ±": ours.loc[live_recipes, "kl_spread"],
        "live kl": live["kl"], "live ±": live["kl_spread"],
        "committed top-1": ours.loc[live_recipes, "top1_agreement"], "live top-1": live["top1_agreement"],
    })
    overlap = ((check["live kl"] - check["live ±"] <= check["committed kl"] + check["committed ±"])
               & (check["committed kl"] - check["committed ±"] <= check["live kl"] + check["live ±"]))
    same_order = list(live["kl"].sort_values().index) == list(ours.loc[live_recipes, "kl"].sort_values().index)
else:
    check, overlap, same_order = None, None, None
    print("live check: only for the embedded model (its committed rows)")

# %%
# NBVAL_IGNORE_OUTPUT
check.round(5) if check is not None else None

# %%
if check is not None:
    print("KL intervals overlap the committed ones:", {k: bool(v) for k, v in overlap.items()})
    print("same KL order as the committed rows:", same_order)

# %% [markdown]
# ## Fig. 9 analogue: the same classes and seed under every recipe
#
# One batch per recipe, every recipe with the same seed, so the random draws are the same and the rows differ only
# by what quantization changes (GALT lambdas from the rows' cache when present).

# %%
classes = grid_classes or (list(range(10)) if embedded else [1, 153, 698, 738])
amp = AMP_DTYPES["fp32" if device == "cpu" else "fp16"]
grids = {}
for name in grid_recipes:
    recipe = get_recipe(name)
    lambdas = None
    if recipe.galt:
        if name not in ours.index:  # learning lambdas is the rows' job (`fpqvar table`); here only their cache is read
            print(f"{name}: left out of the grid, no row (and no learned lambdas) in {results_dir.name}")
            continue
        lambdas, _ = galt_lambdas(full_var, full_vae, recipe, options=settings.galt, var_sha256=model["var_sha256"],
                                  cache_dir=results_dir / "galt", device=process.device, amp_dtype=amp, progress=False)
    grids[name] = recipe_images(full_var, full_vae, recipe, lambdas, classes, seed, amp)
fig = grid_figure(grids, classes, f"{our_label.removeprefix('ours: ')}: seed {seed}, cfg 1.5, top-k 900, top-p 0.96")
if out:
    fig.savefig(out / "fig9_grids.png", dpi=120)

# %% [markdown]
# ## Layer-wise error of each recipe
#
# Each quantized layer fed the full-precision model's inputs (`methods.report.layer_error_report`, calibration
# samples as recorded in the rows), mean SQNR over the steps: which layers lose most, per recipe.

# %%
sqnr = layer_errors_frame(rows)
if not sqnr.empty:
    fig = layer_error_heatmap(sqnr, "layer SQNR (dB) per recipe")
    if out:
        fig.savefig(out / "layer_sqnr.png", dpi=120)
    plt.show()
    kinds = sqnr.groupby(lambda n: n.split(".", 2)[2]).mean()
    print("mean SQNR (dB) by layer kind:")
    display(kinds.round(1))
    print("worst layer per recipe:")
    display(pd.DataFrame({"layer": sqnr.idxmin(), "sqnr_db": sqnr.min().round(1)}))
else:
    print("these rows carry no layer report (made with --report-samples 0)")
