"""Shared by the benchmark scripts: timing and the JSON record of where and when they ran."""

from __future__ import annotations

import datetime
import json
import pathlib
import platform
import statistics
import time

import torch

from fpqvar.atomic import atomic_path

RESULTS = pathlib.Path(__file__).parent / "results"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def median_seconds(fn, device: torch.device, repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``fn()``, synchronising the GPU around each call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def device_seconds(fn, device: torch.device, repeats: int = 20, warmup: int = 3) -> float:
    """Time per call of ``fn()`` on the GPU (CUDA events around ``repeats`` back-to-back calls, so the host
    side of a call overlaps the previous kernel as long as it is shorter); on CPU, ``median_seconds``."""
    if device.type != "cuda":
        return median_seconds(fn, device, repeats, warmup)
    for _ in range(warmup):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize(device)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize(device)
    return start.elapsed_time(end) / 1e3 / repeats


def host_seconds_per_call(fn, device: torch.device, repeats: int = 200) -> float:
    """Host time of one call of ``fn()`` on an input small enough that the GPU waits for the host: the Python
    side and the kernel launch, what a small layer pays per call."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return seconds / repeats


def print_profile(run, title: str) -> None:
    """The top GPU kernels of one call of ``run`` (after one warm-up call)."""
    run()
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as prof:
        run()
        torch.cuda.synchronize()
    print(f"== {title}")
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=22, max_name_column_width=60))


def write_result(name: str, device: torch.device, payload: dict) -> pathlib.Path:
    record = {
        "benchmark": name,
        "device": device_name(device),
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **payload,
    }
    path = RESULTS / f"{name}_{device.type}.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return path
