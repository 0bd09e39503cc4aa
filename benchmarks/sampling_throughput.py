"""VAR sampling speed with random weights: images/s at batch 64 and latency at batch 1, d16 and d30.

    python benchmarks/sampling_throughput.py [--depths 16 30] [--dtype bfloat16] [--modes ...] [--profile]

Paper evaluation settings (cfg 1.5, top-k 900, top-p 0.96), VQVAE decoding included, bf16 autocast.
Modes, applied in this order to one model (each keeps the previous one's changes):
  "fp32 weights": the original's storage (autocast re-casts every linear weight at every step);
  "bf16": fpqvar.model.precision.cast_linear_weights (the same results, less traffic);
  "bf16 + graphs": generate(..., cuda_graphs=True), the transformer steps replayed as CUDA graphs (same tokens);
  "bf16 + compiled": fpqvar.model.compile.compile_for_sampling (results equal to float rounding);
  "bf16 + compiled + graphs": both.
Every mode uses the preallocated KV store (generate's default for the plain model; exact).
For scale (issue 3): the released VAR code on one H200, fp16, random weights: d30 57 img/s at batch 64 and
145 ms per image at batch 1; d16 145 img/s and 86 ms. Targets: d30 >= 75 img/s and <= 40 ms.
"""

from __future__ import annotations

import argparse

import torch
from _report import median_seconds, print_profile, write_result

from fpqvar.model import VAR, VQVAE, VARConfig
from fpqvar.model.compile import compile_for_sampling
from fpqvar.model.precision import cast_linear_weights

RELEASED_BASELINE = {16: {"img_per_s_b64": 145.0, "ms_b1": 86.0}, 30: {"img_per_s_b64": 57.0, "ms_b1": 145.0}}
TARGET = {30: {"img_per_s_b64": 75.0, "ms_b1": 40.0}}
MODES = ("fp32 weights", "bf16", "bf16 + graphs", "bf16 + compiled", "bf16 + compiled + graphs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depths", type=int, nargs="+", default=[16, 30])
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--modes", nargs="+", default=list(MODES[1:]), choices=MODES)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 1])
    parser.add_argument("--profile", action="store_true", help="print the top GPU kernels of one call per batch size instead")
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    rows = []
    for depth in args.depths:
        torch._dynamo.reset()  # each model's compiled blocks get dynamo's whole recompile limit (8 variants)
        with torch.device(device):
            vae = VQVAE().eval()
        torch.manual_seed(0)
        with torch.device(device):
            var = VAR(VARConfig(depth=depth))
        var.init_weights(init_adaln_gamma=1e-3)
        var.eval()
        compiled = False
        for mode in [m for m in MODES if m in args.modes]:
            if mode.startswith("bf16"):
                cast_linear_weights(var, dtype)
            if "compiled" in mode and not compiled:
                compile_for_sampling(var, vae)
                compiled = True
            for batch in args.batches:
                labels, graphs = torch.arange(batch, device=device) % 1000, mode.endswith("graphs")

                def run(batch=batch, labels=labels, model=var, decoder=vae, graphs=graphs):
                    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype):
                        model.generate(decoder, batch, labels=labels, seed=0, cuda_graphs=graphs)

                if args.profile:
                    print_profile(run, f"d{depth} {mode} batch {batch}")
                    continue
                try:
                    seconds = median_seconds(run, device, repeats=3 if batch > 8 else 10, warmup=2)
                except Exception as error:  # noqa: BLE001 - record it and measure the other modes
                    rows.append({"depth": depth, "mode": mode, "batch": batch, "error": repr(error)[:300]})
                    print(rows[-1], flush=True)
                    continue
                row = {"depth": depth, "mode": mode, "batch": batch, "seconds_per_call": round(seconds, 4),
                       "img_per_s": round(batch / seconds, 2), "ms_per_img": round(1000 * seconds / batch, 2)}
                rows.append(row)
                print(row, flush=True)
        del var, vae
        torch.cuda.empty_cache()
        if not args.profile:
            report(args, device, rows)  # after every depth: a run cut short still leaves its numbers


def report(args, device: torch.device, rows: list[dict]) -> None:
    summary = {}
    for depth in sorted({r["depth"] for r in rows}):
        ok = [r for r in rows if r["depth"] == depth and "error" not in r]
        best64 = max((r["img_per_s"] for r in ok if r["batch"] == 64), default=None)
        best1 = min((r["ms_per_img"] for r in ok if r["batch"] == 1), default=None)
        summary[f"d{depth}"] = {"img_per_s_b64": best64, "ms_b1": best1,
                                "released_code_h200_fp16": RELEASED_BASELINE.get(depth), "target": TARGET.get(depth)}
        print(f"d{depth}: {best64} img/s at batch 64, {best1} ms at batch 1; released code on H200: "
              f"{RELEASED_BASELINE.get(depth)}; target: {TARGET.get(depth)}")
    print(f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    path = write_result(f"sampling_throughput_{args.dtype}", device, {"rows": rows, "summary": summary})
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
