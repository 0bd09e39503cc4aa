"""Time `fpqvar table` on an official-architecture VAR with random weights (the real-checkpoint path, no real weights).

Writes `var_d<depth>.pth`, `vae_ch160v4096z32.pth` (official configuration) and a random-weight FID Inception
`.pth` with our model code (torch.save of state dicts, as the released files are), then runs

    torchrun --nproc_per_node N -m fpqvar.cli table --var var_d<depth>.pth --vae vae_ch160v4096z32.pth ...

exactly as the README's real-checkpoint workflow does, and records the wall time of the whole command and the
rows' own phase times in a JSON. The metrics of random weights mean nothing; the times and the path are what is
measured.

    python benchmarks/table_random_checkpoint.py --depth 16 --work /tmp/d16 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import torch

from fpqvar.eval.inception import FIDInceptionV3
from fpqvar.model import VAR, VQVAE, VQVAEConfig
from fpqvar.model.config import RELEASED_VAR


def write_checkpoints(depth: int, work: pathlib.Path) -> dict[str, pathlib.Path]:
    torch.manual_seed(0)
    work.mkdir(parents=True, exist_ok=True)
    var = VAR(RELEASED_VAR[f"d{depth}"])
    # The from-scratch initialisation closes every block's gates (gamma 1e-5) and nearly zeroes the head (logits
    # near uniform, NLL = ln 4096): every recipe would then give the FP16 model's tokens (KL 0 to 5 decimals, seen
    # in the first run). Open gates and a full-scale head make the blocks, hence quantization, change the output.
    var.init_weights(init_adaln_gamma=0.5, init_head=1.0)
    files = {"var": work / f"var_d{depth}.pth", "vae": work / "vae_ch160v4096z32.pth", "inception": work / "inception_random.pth"}
    torch.save(var.state_dict(), files["var"])
    torch.save(VQVAE(VQVAEConfig()).state_dict(), files["vae"])
    torch.save(FIDInceptionV3().state_dict(), files["inception"])
    reference = np.random.default_rng(0).integers(0, 256, size=(64, 256, 256, 3), dtype=np.uint8)
    files["reference"] = work / "reference_random.npz"
    np.savez(files["reference"], arr_0=reference)
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--work", default="/tmp/fpqvar-table-random")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the result JSON (and a copy of the rows)")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--recipes", nargs="+", default=["fp16", "fp4_dfq_ght", "fp4_fpqvar"])
    parser.add_argument("--classes", default="1,153,698,738")  # the paper's Fig. 9 classes
    parser.add_argument("--per-class", type=int, default=25)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--held-out-images", type=int, default=100)
    parser.add_argument("--budget", type=float, default=None, help="stop the table after this many seconds (rows so far are kept)")
    args = parser.parse_args()

    work, out = pathlib.Path(args.work), pathlib.Path(args.out)
    start = time.perf_counter()
    files = write_checkpoints(args.depth, work)
    write_seconds = time.perf_counter() - start
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.processes}", "-m", "fpqvar.cli",
        "table", "--var", str(files["var"]), "--vae", str(files["vae"]), "--recipes", *args.recipes, "--out", str(work / "results"),
        "--classes", args.classes, "--per-class", str(args.per_class), "--batch-size", str(args.per_class),
        "--seeds", *map(str, args.seeds), "--evaluator", f"inception:{files['inception']}", "--reference", str(files["reference"]),
        "--held-out", "samples", "--held-out-images", str(args.held_out_images), "--galt-samples", "16", "--galt-epochs", "10",
        "--report-samples", "1", "--quiet",
    ]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "4"}, timeout=args.budget)
    except subprocess.TimeoutExpired as stopped:
        done = subprocess.CompletedProcess(command, returncode=124, stdout=str(stopped.stdout or ""), stderr=f"stopped after {args.budget} s")
    table_seconds = time.perf_counter() - start
    rows = [json.loads(p.read_text()) for p in sorted((work / "results" / "rows").glob("*.json"))]
    result = {
        "benchmark": "table_random_checkpoint",
        "what": f"`fpqvar table` under torchrun on a random-weight official-architecture VAR-d{args.depth} + VQVAE "
                "(random Inception as evaluator): times only, the metrics of random weights mean nothing",
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(command[1:]).replace(str(work), "<work>"),
        "returncode": done.returncode,
        "stderr_tail": done.stderr[-2000:] if done.returncode else "",
        "stdout": done.stdout[-3000:].replace(str(work), "<work>"),
        "write_checkpoints_seconds": round(write_seconds, 1),
        "table_seconds": round(table_seconds, 1),
        "images_per_recipe": len(rows[0]["protocol"]["classes"]) * args.per_class * len(args.seeds) if rows else None,
        "rows": {r["recipe_name"]: {"wall_seconds": r["wall_seconds"], "teacher_forced": {k: r["teacher_forced"][k] for k in ("nll", "kl", "top1_agreement")},
                                    "metrics": r["metrics"]} for r in rows},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"table_random_d{args.depth}.json").write_text(json.dumps(result, indent=2) + "\n")
    # A copy of the rows for the record, laid out as notebooks/07_results reads them; the work folder named <work>
    # as in the command above (the chapter itself is run on the work folder's rows, next to their checkpoints).
    rows_folder = out / f"table_random_d{args.depth}_rows"
    rows_folder.mkdir(exist_ok=True)
    for row in rows:
        (rows_folder / f"{row['recipe_name']}.json").write_text(json.dumps(row, indent=1).replace(str(work), "<work>") + "\n")
    if (work / "results" / "run.json").exists():  # the settings, which the chapter reads beside the rows
        (rows_folder / "run.json").write_text((work / "results" / "run.json").read_text().replace(str(work), "<work>"))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
