"""The README's GALT -> quantize -> sample sequence, through the `fpqvar` command itself, on official-format
checkpoints with random weights, with the time of every phase, peak GPU / host memory and disk.

    python benchmarks/galt_official.py --model d30 --work /tmp/galt [--epochs 50] [--samples 100] [--images 8]

Writes `var_<model>.pth` and `vae_ch160v4096z32.pth` (our model code, official configurations and key layout,
`torch.save(state_dict)` as the released files; `--model embedded` takes the embedded pair instead), then runs
    fpqvar galt --var var_<model>.pth --vae vae_ch160v4096z32.pth --out lambdas.safetensors ...
    fpqvar quantize --var var_<model>.pth --recipe fp4_fpqvar --lambdas lambdas.safetensors --out q.safetensors
    fpqvar sample --var q.safetensors --vae vae_ch160v4096z32.pth --out samples ...
in subprocesses. With fewer epochs than the paper's 50 it also states the 50-epoch projection (learning time is
linear in the epochs; the other phases do not depend on them), labelled as a projection. The record is updated
after every phase, so a run stopped by a time limit still leaves what it measured.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import threading
import time

import torch

from fpqvar.atomic import atomic_path
from fpqvar.model import VAR, VQVAE, VARConfig, VQVAEConfig
from fpqvar.model.config import released_var_config
from fpqvar.paths import data_dir

RESULTS = pathlib.Path(__file__).parent / "results"


class Peaks(threading.Thread):
    """Samples GPU memory in use (nvidia-smi) and free disk every half second while a phase runs."""

    def __init__(self, disk: pathlib.Path):
        super().__init__(daemon=True)
        self.disk, self.stop, self.gpu_mib = disk, threading.Event(), 0
        self.start_free = self.min_free = shutil.disk_usage(disk).free

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self.min_free = min(self.min_free, shutil.disk_usage(self.disk).free)
            if shutil.which("nvidia-smi"):
                out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True).stdout.split()
                if out:
                    self.gpu_mib = max(self.gpu_mib, max(int(v) for v in out))


def write_checkpoints(model: str, work: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """Random-weight VAR and VQVAE state dicts as official `.pth` files (float32, official key layout); for
    ``embedded``, the trained embedded pair's files as they are."""
    if model == "embedded":
        return data_dir() / "embedded" / "var.safetensors", data_dir() / "embedded" / "vqvae.safetensors"
    config = VARConfig(depth=2, width=128, heads=2) if model == "tiny" else released_var_config(model)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        var = VAR(config)
        var.init_weights(init_adaln=0.5, init_adaln_gamma=0.5)  # gates open, so every block matters
        vae = VQVAE(VQVAEConfig(patch_nums=config.patch_nums))
    var_path, vae_path = work / f"var_{model}.pth", work / "vae_ch160v4096z32.pth"
    torch.save({k: v.cpu() for k, v in var.state_dict().items()}, var_path)
    torch.save({k: v.cpu() for k, v in vae.state_dict().items()}, vae_path)
    return var_path, vae_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="d30", help="d16, d20, d24, d30, tiny (a CPU dry run) or embedded (the trained MNIST pair)")
    parser.add_argument("--work", type=pathlib.Path, required=True, help="folder for checkpoints and outputs")
    parser.add_argument("--samples", type=int, default=100, help="calibration images (paper 100)")
    parser.add_argument("--epochs", type=int, default=50, help="GALT epochs (paper 50)")
    parser.add_argument("--images", type=int, default=8, help="images `fpqvar sample` draws (classes 0..N-1)")
    parser.add_argument("--out", type=pathlib.Path, help="result JSON (default benchmarks/results/galt_<model>_<device>.json)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = args.out or RESULTS / f"galt_{args.model}_{device}.json"
    disk_before = shutil.disk_usage(args.work).used
    record = {
        "benchmark": "galt_official", "model": args.model,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "settings": {"samples": args.samples, "epochs": args.epochs, "images": args.images, "recipe": "fp4_fpqvar"},
        "phases": {},
    }

    def save() -> None:
        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(record, indent=2) + "\n")

    def phase(name: str, command: list[str] | None = None, action=None):
        peaks = Peaks(args.work)
        peaks.start()
        start = time.perf_counter()
        result = None
        try:
            if command is not None:
                done = subprocess.run([sys.executable, "-m", "fpqvar.cli", *command], capture_output=True, text=True)
                tail = (done.stdout + done.stderr).replace(str(args.work), "<work>").strip().splitlines()[-3:]
                if done.returncode:
                    raise SystemExit(f"{name} failed ({done.returncode}): {' | '.join(tail)}")
                result = tail
            else:
                result = action()
        finally:
            peaks.stop.set()
            peaks.join()
            record["phases"][name] = {
                "seconds": round(time.perf_counter() - start, 2),
                "peak_gpu_memory_gib": round(peaks.gpu_mib / 1024, 2),
                "peak_host_memory_gib_children": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 2),
                "peak_host_memory_gib_self": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
                "disk_used_gib": round((shutil.disk_usage(args.work).used - disk_before) / 2**30, 2),
                "disk_peak_growth_during_phase_gib": round((peaks.start_free - peaks.min_free) / 2**30, 2),
            }
            if isinstance(result, list):
                record["phases"][name]["output"] = result
            save()
        return result

    var_path, vae_path = phase("write_checkpoints", action=lambda: write_checkpoints(args.model, args.work))
    lambdas = args.work / "lambdas.safetensors"
    phase("galt", ["galt", "--var", str(var_path), "--vae", str(vae_path), "--out", str(lambdas), "--samples", str(args.samples),
                   "--epochs", str(args.epochs), "--device", device, "--quiet"])
    inner = json.loads(pathlib.Path(f"{lambdas}.curves.json").read_text())
    record["galt_phase_seconds"] = {k: round(v, 2) for k, v in inner["seconds"].items()}
    first = inner["curves"]["blocks.0.attn.mat_qkv"]
    record["block0_mat_qkv_loss_first_last"] = [first[0], first[-1]]
    if args.epochs != 50:
        learning = inner["seconds"]["learning"] * 50 / args.epochs
        record["projection_50_epochs"] = {
            "note": "projection, not a measurement: learning time x 50 / epochs, every other phase as measured",
            "galt_command_seconds": round(record["phases"]["galt"]["seconds"] - inner["seconds"]["learning"] + learning, 1),
        }
    save()
    quantized = args.work / "q.safetensors"
    phase("quantize", ["quantize", "--var", str(var_path), "--recipe", "fp4_fpqvar", "--lambdas", str(lambdas), "--out", str(quantized)])
    phase("sample", ["sample", "--var", str(quantized), "--vae", str(vae_path), "--out", str(args.work / "samples"),
                     "--classes", f"0-{args.images - 1}", "--per-class", "1", "--batch-size", str(args.images),
                     "--device", device, "--quiet"])
    record["end_to_end_seconds_galt_quantize_sample"] = round(sum(record["phases"][p]["seconds"] for p in ("galt", "quantize", "sample")), 1)
    record["work_folder_gib"] = round(sum(f.stat().st_size for f in args.work.rglob("*") if f.is_file()) / 2**30, 2)
    save()
    print(json.dumps(record, indent=2))
    os.sync()


if __name__ == "__main__":
    main()
