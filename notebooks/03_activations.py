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
# # Activations: why VAR is hard to quantize (Fig. 1e, 3, 4, 6)
#
# The paper's Sec. III names the challenges of quantizing VAR from measurements on VAR-d30: the transformer holds
# almost all parameters and operations (**Fig. 1e**), the FC2 input is highly imbalanced (**Fig. 3**), and the QKV
# and FC1 inputs carry outlier channels that move from step to step (**Fig. 4**), which a full Hadamard rotation
# (HT) spreads better than the group-wise one (GHT) that the accelerator can afford (**Fig. 6**).
#
# **What is measured here.** Every number below is computed from the model given (`var`, `vae`; by default the
# embedded MNIST model: 6 blocks, width 384, 7 steps), next to the paper's number for the same quantity, labelled
# "paper, VAR-d30" (from `data/paper/figures_analysis.csv`). Layer inputs come from the library's calibration
# capture: `samples` images of random classes, one image each, sampler seeded with `seed`, as the paper draws
# its 100 calibration samples (Sec. IV-C); the default 16 keeps this chapter within its CPU budget. With CFG every
# step runs both halves, so each step's input has 2 x samples x (scale side)^2 rows.

# %% tags=["parameters"]
var = "embedded"  # a VAR checkpoint (.pth or .safetensors), or "embedded" for data/embedded/
vae = "embedded"  # its VQVAE checkpoint, or "embedded"
device = "cpu"
seed = 0  # calibration classes and sampler
output_dir = "build/results/03_activations"  # figures and CSV; None keeps them in the notebook only
samples = 16  # calibration images (the paper: 100)
block = 3  # block of Fig. 3, 4 and 6 (the paper's Fig. 6 shows block 9 of d30)
step = 3  # step of Fig. 6 (the paper's: 3)
top_k = 8  # outlier channels marked per step (Fig. 4)
group = 128  # GHT and quantization group size (the paper's: 128)

# %%
import pathlib

import pandas as pd
import torch

from fpqvar.analysis.activations import (
    GELU_MINIMUM,
    capture_layer_inputs,
    flatten_steps,
    kurtosis,
    levels_in_range,
    per_tensor_levels,
    value_shares,
)
from fpqvar.analysis.model_costs import build_on_meta, cost_breakdown, transformer_flops, vqvae_generation_flops
from fpqvar.analysis.models import describe_models, load_models
from fpqvar.analysis.outliers import (
    channel_absmax_per_step,
    outlier_ratio,
    overlap_matrix,
    tokens_per_step,
    top_channels,
)
from fpqvar.analysis.rotation_effect import group_statistics, rotations
from fpqvar.atomic import atomic_path
from fpqvar.figures.activations import (
    cost_shares,
    distributions_with_levels,
    magnitude_maps,
    outlier_channels,
    overlap_heatmaps,
)
from fpqvar.model.config import RELEASED_VAE, RELEASED_VAR
from fpqvar.paper import load_table

pd.set_option("display.width", 120)
torch.manual_seed(seed)
paper = load_table("figures_analysis").set_index("quantity")["value"]
out = pathlib.Path(output_dir) if output_dir else None
figures = {}

# %%
model, tokenizer = load_models(var, vae, device=device)
label = describe_models(var, vae)
block = min(block, len(model.blocks) - 1)
step = min(step, len(model.patch_nums) - 1)
store, classes = capture_layer_inputs(model, tokenizer, ("attn.mat_qkv", "ffn.fc1", "ffn.fc2"), samples=samples, seed=seed)
print(f"model: {label}; depth {len(model.blocks)}, width {model.config.C}, {len(model.patch_nums)} steps")
print(f"calibration: {samples} images of random classes {classes} (seed {seed}); block {block}, step {step}")

# %% [markdown]
# ## Fig. 1e: parameters and operations by component
#
# Counted from the model definitions (`fpqvar.analysis.model_costs`): the released sizes built on the meta device
# (no weights needed) and the model given. Operations are FLOPs of one CFG-guided image; the VQVAE side counts
# phi at every step and the decoder once. The paper's ~97% is printed for VAR-d30; it does not say which parts of
# the VQVAE it counts, so both the whole VQVAE and the generation path (decoder, quantizer) are shown.

# %%
configs = {name: (cfg, RELEASED_VAE) for name, cfg in RELEASED_VAR.items()}
configs[f"given: {label}"] = (model.config, tokenizer.config)
costs = pd.DataFrame({name: cost_breakdown(*build_on_meta(*pair)) for name, pair in configs.items()}).T
print(f"paper, VAR-d30: transformer ~{float(paper['transformer_share_of_params_and_ops']):.0%} of parameters and "
      f"operations; {float(paper['var_d30_params_billion'])} B parameters, {float(paper['var_d30_tflops_per_image'])} TFLOPs "
      "per 256x256 image")
costs.round(3)

# %% [markdown]
# The transformer's FLOPs by part for the model given (block linears dominate: these are the layers FPQVAR
# quantizes), and the VQVAE's:

# %%
meta_var, meta_vae = build_on_meta(model.config, tokenizer.config)
parts = transformer_flops(meta_var) | vqvae_generation_flops(meta_vae)
pd.Series(parts, name="GFLOPs / image").div(1e9).round(3).to_frame()

# %%
figures["fig1e_cost_shares.png"] = cost_shares(costs, float(paper["transformer_share_of_params_and_ops"]),
                                                "Fig. 1e: transformer share, ours from the model definitions")

# %% [markdown]
# ## Fig. 3: the FC1 and FC2 inputs against E2M1, AFPQ and DFQ levels
#
# FC2's input is FC1's output after GELU, whose minimum is -0.17: every negative value lies in [-0.17, 0] (the
# tanh GELU of VAR reaches -0.170041; the shares count from there, so "[-0.17, 0]" holds every value <= 0).
# The levels are those of one absmax scale over the whole tensor (Fig. 3 draws them so); the quantizer itself
# scales per group of 128. E2M1 spends half its levels on the negative side, AFPQ gives the negative side its own
# scale but keeps E2M1's levels (dense near 0), DFQ puts E1M2's uniform levels there.

# %%
fc1_in = flatten_steps(store.per_step(f"blocks.{block}.ffn.fc1"))
fc2_in = flatten_steps(store.per_step(f"blocks.{block}.ffn.fc2"))
all_fc2 = torch.cat([flatten_steps(store.per_step(f"blocks.{i}.ffn.fc2")).reshape(-1) for i in range(len(model.blocks))])
shares = {f"block {block}": value_shares(fc2_in), "all blocks": value_shares(all_fc2)}
share_table = pd.DataFrame({
    **{f"ours, {where}": {"share in [-0.17, 0]": s.low_to_zero, "share > 0": s.positive, "share below GELU's minimum": s.below_low}
       for where, s in shares.items()},
    "paper, VAR-d30": {"share in [-0.17, 0]": float(paper["fc2_input_share_between_-0.17_and_0"]),
                       "share > 0": float(paper["fc2_input_share_above_0"]), "share below GELU's minimum": float("nan")},
}).T
share_table.mul(100).round(1).add_suffix(" (%)")

# %%
formats = {"E2M1": "fp4_e2m1", "AFPQ (E2M1, two scales)": "afpq_e2m1", "DFQ (E1M2 neg / E2M1 pos)": "dfq_e1m2neg_e2m1pos"}
levels = {panel: {name: per_tensor_levels(x, fmt) for name, fmt in formats.items()}
          for panel, x in {f"FC1 input, block {block}": fc1_in, f"FC2 input, block {block}": fc2_in}.items()}
fc2_levels = levels[f"FC2 input, block {block}"]
print(f"levels of the FC2 input's scale inside [{GELU_MINIMUM}, 0) (where {shares[f'block {block}'].low_to_zero:.1%} "
      "of the values are):")
for name, grid in fc2_levels.items():
    print(f"  {name}: {levels_in_range(grid, GELU_MINIMUM, -1e-12)} of {len(grid)}")
fc2_panel, zoom_panel = f"FC2 input, block {block}", f"FC2 input, block {block}: zoom on [-0.2, 0.6]"
levels[zoom_panel] = fc2_levels
subsample = lambda x: x[:: max(1, x.shape[0] // 2000)]  # noqa: E731  (about 2000 tokens per histogram)
figures["fig3_distributions_levels.png"] = distributions_with_levels(
    {f"FC1 input, block {block}": subsample(fc1_in), fc2_panel: subsample(fc2_in), zoom_panel: subsample(fc2_in)},
    levels, f"Fig. 3 on {label} (every step, {samples} samples; histograms of a token subsample)",
    xlim={zoom_panel: (-0.2, 0.6)})

# %% [markdown]
# ## Fig. 4: outlier channels move from step to step
#
# For the QKV and FC1 inputs of block `block`: each channel's max |x| at every step (heat map), the `top_k`
# channels of largest magnitude per step (red triangles), and how much those sets overlap between steps
# (1: the same channels; 0: none in common). Row labels give the CFG-doubled token counts per step.

# %%
absmax, top, overlaps, ratios = {}, {}, {}, {}
for kind in ("attn.mat_qkv", "ffn.fc1"):
    tensors = store.per_step(f"blocks.{block}.{kind}")
    absmax[kind] = channel_absmax_per_step(tensors)
    top[kind] = top_channels(absmax[kind], top_k)
    overlaps[kind] = overlap_matrix(top[kind])
    ratios[kind] = outlier_ratio(absmax[kind])
tokens = tokens_per_step(store.per_step(f"blocks.{block}.attn.mat_qkv"))
K = len(tokens)
summary = pd.DataFrame({
    "tokens (CFG x2)": tokens,
    **{f"{kind}: max/median channel": ratios[kind].tolist() for kind in absmax},
    **{f"{kind}: top-{top_k} shared with next step": [float(overlaps[kind][k, k + 1]) if k + 1 < K else float("nan")
                                                      for k in range(K)] for kind in absmax},
}).rename_axis("step")
for kind in absmax:
    off_diagonal = overlaps[kind][~torch.eye(K, dtype=torch.bool)]
    print(f"{kind}: mean overlap of top-{top_k} channels between different steps {float(off_diagonal.mean()):.2f}; "
          f"top channels at step 0 {top[kind][0][:4]} ..., at step {K - 1} {top[kind][-1][:4]} ...")
summary.round(2)

# %%
figures["fig4_outlier_channels.png"] = outlier_channels(
    {f"block {block} {kind} input" : t for kind, t in absmax.items()},
    {f"block {block} {kind} input" : t for kind, t in top.items()}, tokens,
    f"Fig. 4 on {label}: per-channel max|x| per step, top-{top_k} marked")
figures["fig4b_overlap.png"] = overlap_heatmaps({f"{kind}" : m for kind, m in overlaps.items()},
                                                f"top-{top_k} outlier channels shared between steps ({label})")

# %% [markdown]
# ## Fig. 6: the QKV input after HT and after GHT
#
# The QKV input of block `block` at step `step` rotated by the full Hadamard matrix (HT, C x C) and by the
# block-diagonal one (GHT, one 128 x 128 matrix per group), the rotations the recipes use. Rotations preserve
# every token's norm; what changes is how evenly it spreads. Per group of `group` channels: max |x| / median |x|
# and kurtosis (3 for a normal distribution; large values: heavy tails, i.e. outliers).

# %%
x = store.get(f"blocks.{block}.attn.mat_qkv", step)
x = x.reshape(-1, x.shape[-1])
rotated = {name: rotation(x) for name, rotation in rotations(x.shape[-1], group).items()}
stats = pd.concat({name: pd.DataFrame(group_statistics(r, group)).set_index("group") for name, r in rotated.items()}, axis=1)
overall = pd.DataFrame({name: {"max|x|": float(r.abs().max()), "max/median |x|": float(r.abs().max() / r.abs().median()),
                               "kurtosis": kurtosis(r)} for name, r in rotated.items()}).T
print(f"block {block}, step {step}: {x.shape[0]} rows (CFG x2) x {x.shape[1]} channels; groups of {group}")
overall.round(2)

# %%
stats.round(2)

# %%
figures["fig6_ht_vs_ght.png"] = magnitude_maps({f"{name} (max {float(r.abs().max()):.2f})": r for name, r in rotated.items()},
                                               f"Fig. 6 on {label}: QKV input, block {block}, step {step}")

# %% [markdown]
# ## What shows on this model, and what does not
#
# The lines below compare the measured numbers with the paper's claims; they are computed, not written by hand.

# %%
s = shares["all blocks"]
print(f"FC2 input imbalance: {s.low_to_zero:.1%} in [-0.17, 0] and {s.positive:.1%} > 0 over all blocks "
      f"(paper, VAR-d30: {float(paper['fc2_input_share_between_-0.17_and_0']):.1%} / {float(paper['fc2_input_share_above_0']):.1%})")
for kind in absmax:
    off_diagonal = overlaps[kind][~torch.eye(K, dtype=torch.bool)]
    print(f"{kind} outliers: largest channel {float(ratios[kind].min()):.1f}-{float(ratios[kind].max()):.1f}x the median "
          f"channel across steps; top-{top_k} sets overlap {float(off_diagonal.mean()):.0%} between steps on average "
          f"({'time-varying' if float(off_diagonal.mean()) < 0.5 else 'mostly the same channels'}); "
          f"at {int((ratios[kind] < 3).sum())} of {K} steps the largest channel is under 3x the median: "
          "mild outliers, beside the isolated channels of the paper's Fig. 4")
k_none, k_ht, k_ght = (float(overall.loc[name, "kurtosis"]) for name in ("none", "HT", "GHT"))
m_ht, m_ght = (float(overall.loc[name, "max/median |x|"]) for name in ("HT", "GHT"))
verdict = ("GHT leaves heavier tails than HT, as the paper says" if k_ght > 1.05 * k_ht and m_ght > m_ht else
           "GHT and HT within 5% in kurtosis here: the paper's HT-over-GHT gap does not show" if abs(k_ght - k_ht) <= 0.05 * k_ht
           else "mixed: see the table")
print(f"rotation at block {block}, step {step}: kurtosis none {k_none:.1f}, HT {k_ht:.1f}, GHT {k_ght:.1f}; "
      f"max/median |x| none {float(overall.loc['none', 'max/median |x|']):.1f}, HT {m_ht:.1f}, GHT {m_ght:.1f} ({verdict}"
      f"{'; the unrotated input is close to normal (kurtosis 3): few outliers to spread' if k_none < 4 else ''})")
given = costs.loc[f"given: {label}"]
print(f"transformer share on the given model: {given['transformer share of params (VQVAE generation path)']:.1%} of "
      f"parameters (generation path), {given['transformer share of FLOPs']:.1%} of FLOPs "
      f"(paper, VAR-d30: ~{float(paper['transformer_share_of_params_and_ops']):.0%})")

# %%
if out is not None:
    for name, fig in figures.items():
        with atomic_path(out / name) as tmp:
            fig.savefig(tmp, dpi=130, format="png")  # the temp name does not end in .png
    for name, table in {"fig1e_costs.csv": costs, "fig3_fc2_shares.csv": share_table, "fig4_outliers.csv": summary,
                        "fig6_group_statistics.csv": stats}.items():
        with atomic_path(out / name) as tmp:
            table.to_csv(tmp)
    print(f"wrote {len(figures)} figures and 4 CSV files to {out}")
