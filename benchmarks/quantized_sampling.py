"""Fake-quantized sampling speed of FP4 FPQVAR against our own bf16 sampling, random weights, one run.

    python benchmarks/quantized_sampling.py [--depths 16 30] [--batch 64] [--compiled] [--graphs] [--profile]

Both sides store linear weights in bf16 and run under bf16 autocast; the quantized side adds the online
activation quantizers (fused kernels on CUDA), the GHT rotations and DFQ. ``--compiled`` compiles both sides
the same way (fpqvar.model.compile.compile_for_sampling: whole blocks, the quantizers fused into them), so the
ratio compares like with like; ``--graphs`` replays both sides' steps as CUDA graphs (the FP6 KV-cache store
cannot be captured: that recipe samples eagerly, with a warning). For scale (issue 4): the released FPQVAR
code runs FP4 FPQVAR at 0.32x of fp16 speed (d30, batch 64, H200: 18 vs 57 img/s). Target: >= 0.8x.
"""

from __future__ import annotations

import argparse

import torch
from _report import median_seconds, print_profile, write_result

from fpqvar.methods import get_recipe, quantize_model, rotated_layer_names
from fpqvar.model import VAR, VQVAE, VARConfig
from fpqvar.model.compile import compile_for_sampling
from fpqvar.model.precision import cast_linear_weights


def build(depth: int, recipe_name: str, device: torch.device) -> VAR:
    torch.manual_seed(0)
    with torch.device(device):
        var = VAR(VARConfig(depth=depth))
    var.init_weights(init_adaln_gamma=1e-3)
    if recipe_name != "bf16":
        recipe = get_recipe(recipe_name)
        C = var.config.C
        lambdas = {name: torch.ones(C, device=device) for name in rotated_layer_names(depth)}
        quantize_model(var, recipe, lambdas if recipe.galt else None)
    return cast_linear_weights(var.eval(), torch.bfloat16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depths", type=int, nargs="+", default=[16, 30])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--recipes", nargs="+", default=["fp4_fpqvar", "fp4_fpqvar_kv6"])
    parser.add_argument("--compiled", action="store_true", help="compile both sides (blocks and decoder)")
    parser.add_argument("--graphs", action="store_true", help="generate(..., cuda_graphs=True) on both sides")
    parser.add_argument("--profile", action="store_true", help="print the top GPU kernels of one call per recipe instead")
    args = parser.parse_args()
    device, dtype = torch.device("cuda"), torch.bfloat16
    torch.backends.cuda.matmul.allow_tf32 = True
    mode = ("compiled" if args.compiled else "eager") + ("_graphs" if args.graphs else "")
    rows = []
    for depth in args.depths:
        for recipe_name in ["bf16", *args.recipes]:
            torch._dynamo.reset()  # each model's blocks get dynamo's whole recompile limit
            var = build(depth, recipe_name, device)
            with torch.device(device):
                vae = VQVAE().eval()
            if args.compiled:
                compile_for_sampling(var, vae)
            labels = torch.arange(args.batch, device=device) % 1000

            def run(model=var, decoder=vae, labels=labels):
                with torch.inference_mode(), torch.autocast("cuda", dtype=dtype):
                    model.generate(decoder, args.batch, labels=labels, seed=0, cuda_graphs=args.graphs)

            if args.profile:
                print_profile(run, f"d{depth} {recipe_name} {mode} batch {args.batch}")
            else:
                seconds = median_seconds(run, device, repeats=3, warmup=2)
                rows.append({"depth": depth, "recipe": recipe_name, "mode": mode, "batch": args.batch,
                             "img_per_s": round(args.batch / seconds, 2)})
                print(rows[-1], flush=True)
            del var, vae
            torch.cuda.empty_cache()
    if args.profile:
        return
    for row in rows:
        reference = next(r for r in rows if r["depth"] == row["depth"] and r["recipe"] == "bf16")
        row["vs_bf16"] = round(row["img_per_s"] / reference["img_per_s"], 3)
        print(f"d{row['depth']} {row['recipe']:<16} {mode} {row['img_per_s']:8.2f} img/s  {row['vs_bf16']:.3f}x of bf16")
    name = f"quantized_sampling_{mode}_b{args.batch}_bfloat16"
    print(f"wrote {write_result(name, device, {'rows': rows, 'target_vs_bf16': 0.8})}")


if __name__ == "__main__":
    main()
