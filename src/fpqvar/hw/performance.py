"""The FPQVAR accelerator (paper Sec. IV-D, Fig. 7c) as a performance model: images per second of any VAR on a
machine built from the RTL units, their cycle formulas being the ones the simulations check (fpqvar.hw.linear_tile,
fp4_gemm, fmu_overlap_controller; data/hw/cycles.json), scaled to the paper's sizes.

The machine. One transformer block is unfolded on chip; every block's weights stream from off-chip memory at every
step. Its units:
- the FP4-E2M1 GEMM unit (``fp4_columns`` output columns x 128 lanes: one token's 128-channel group per beat
  against that many weight columns, as rtl/src/fp4_gemm.v with ROWS = 1, LANES = GROUP) runs QKV, proj, FC1, the
  condition MLP (ada_lin) and the head; behind it the GHTU (one 128-point FHT per beat) and quantizer 1;
- the DFQ GEMM unit (``dfq_columns`` x 128) runs FC2, behind quantizer 2;
- the SFU runs attention's two products (FP16 K and V: not the FP4 units) on its DSPs, and LayerNorm, GELU and
  softmax.
A linear layer is tiles of one token x ``columns`` outputs; each tile streams the token's groups through
rotation -> quantizer -> GEMM, as rtl/src/linear_tile.v does (so the activation is re-rotated for every column
tile: the three stages run at the same rate, which is what makes the first-level pipeline pay). Tiles follow each
other back to back (fp4_gemm takes a beat whenever its output is free). A layer takes the longer of its compute
and the streaming of its weights (double-buffered). Second level: block i's FC2 (DFQ unit) runs beside block
i+1's ada_lin (FP4 unit), the two sharing the memory bandwidth.

Every machine parameter comes from the paper's tables or the platform's documentation (infer_machine says how);
nothing is fitted to the paper's throughput.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import pathlib
import sys
from dataclasses import asdict, dataclass, field, replace

from ..atomic import atomic_path
from ..model.config import RELEASED_VAR, VARConfig
from ..paths import data_dir
from . import fp4_gemm, fp4_quantizer
from .ght import ght_latency
from .workload import GHT_GROUP, MatMul, Step, flops_conventions, hadamard_flops, image_workload

LOG2_GROUP = GHT_GROUP.bit_length() - 1
FP4_UNIT_LAYERS = ("qkv", "proj", "fc1", "ada_lin", "shared_ada_lin", "head_ada_lin", "head", "word_embed")
ROTATED_LAYERS = ("qkv", "fc1")  # GHT/HT on the inputs with time-varying outliers (paper Sec. IV-B)


@dataclass(frozen=True)
class Machine:
    """An accelerator configuration. Defaults: the paper's FPQVAR on the VCK190 as infer_machine() reads it."""

    clock_hz: float = 400e6
    bandwidth_bytes_per_s: float = 25.6e9
    lanes: int = GHT_GROUP
    fp4_columns: int = 36
    dfq_columns: int = 24
    fc2_unit: str = "dfq"  # "dfq" (FPQVAR), "fp4" (no DFQ unit: Table VII's FP4 baseline), "fp16" (INT baseline)
    fp16_macs_per_cycle: int = 0  # DSPs computing FC2 in FP16 (INT baseline)
    sfu_macs_per_cycle: int = 824
    sfu_elements_per_cycle: int = GHT_GROUP
    rotation: str = "ght"  # "none", "ght" or "ht" (full-length transform, as [37])
    first_level: bool = True  # rotation, quantizer and GEMM group by group (Fig. 8c)
    second_level: bool = True  # FC2 of block i beside ada_lin of block i+1 (Fig. 8e)
    weight_bits: float = 4 + 16 / GHT_GROUP  # E2M1 codes and a 16-bit scale per group of 128
    kv_bytes_per_value: float = 2.0  # FP16 KV cache
    unfolded_blocks: int = 1  # copies of the block's units working on consecutive blocks
    # Beyond the paper (design sweep only):
    cache_condition: bool = False  # compute ada_lin once per image (its output does not depend on the step)
    attention_unit: str = "sfu"  # or "fp4_gemm": QK^T and AV on the FP4 unit (Q, K, V quantized)
    layer_pipeline: bool = False  # FC2 token tile by tile beside proj, FC1 and ada_lin on the FP4 unit

    def __post_init__(self):
        if self.fc2_unit not in ("dfq", "fp4", "fp16"):
            raise ValueError(f"fc2_unit must be dfq, fp4 or fp16, got {self.fc2_unit!r}")
        if self.attention_unit not in ("sfu", "fp4_gemm"):
            raise ValueError(f"attention_unit must be sfu or fp4_gemm, got {self.attention_unit!r}")
        if self.rotation not in ("none", "ght", "ht"):
            raise ValueError(f"rotation must be none, ght or ht, got {self.rotation!r}")
        if self.fc2_unit == "fp16" and self.fp16_macs_per_cycle < 1:
            raise ValueError("fc2_unit fp16 needs fp16_macs_per_cycle >= 1")
        if min(self.fp4_columns, self.dfq_columns, self.unfolded_blocks, self.sfu_macs_per_cycle) < 1:
            raise ValueError("unit sizes must be positive")


# ---------------------------------------------------------------------------------------------- unit cycle formulas


def stage_latencies(*, rotation: str) -> list[int]:
    """Registered latency of each stage of a linear layer's datapath: [rotation,] quantizer, GEMM."""
    stages = [fp4_quantizer.LATENCY, fp4_gemm.LATENCY]
    if rotation == "ght":
        stages.insert(0, ght_latency(LOG2_GROUP))
    return stages


def tiles_cycles(tiles: int, beats: int, latencies: list[int], *, pipelined: bool) -> int:
    """Edges for ``tiles`` tiles of ``beats`` beats through stages with ``latencies``.

    Pipelined: the stages work group by group and tiles follow back to back, so beats enter one per edge and the
    last result leaves the sum of the latencies later (for one tile: rtl linear_tile SEQUENTIAL=0, fp4_gemm).
    Sequential: each tile passes every stage whole before the next stage starts, through one store-and-forward
    FIFO (one registered read) per hand-over, and the next tile starts after the last result (linear_tile
    SEQUENTIAL=1)."""
    if tiles < 1 or beats < 1:
        raise ValueError(f"need at least one tile of one beat, got {tiles} x {beats}")
    if pipelined:
        return tiles * beats + sum(latencies)
    return tiles * (len(latencies) * beats + sum(latencies) + len(latencies) - 1)


def ht_tile_cycles(beats: int, channels: int, *, pipelined: bool) -> int:
    """One tile through a full-length HT, then quantizer and GEMM (group by group when ``pipelined``, else one
    after the other: Fig. 8b). The HT needs the whole token before any output: a fast transform over the padded
    power of two P >= C on butterfly hardware of the GHTU's throughput, so P log2 P / (C log2 128) times the GHT's
    beats, then one store-and-forward read."""
    ratio = hadamard_flops(channels, GHT_GROUP)["fast_ratio"]
    padded = 1 << (channels - 1).bit_length()
    ht = math.ceil(beats * ratio) + (padded.bit_length() - 1)
    return ht + 1 + tiles_cycles(1, beats, stage_latencies(rotation="none"), pipelined=pipelined)


# ------------------------------------------------------------------------------------------------ the schedule


@dataclass
class LayerTime:
    name: str
    unit: str
    compute_s: float
    memory_s: float

    @property
    def seconds(self) -> float:
        return max(self.compute_s, self.memory_s)


def _unit_of(name: str, machine: Machine) -> str:
    if name.startswith("attn"):
        return "sfu" if machine.attention_unit == "sfu" else "fp4_gemm"
    if name == "fc2":
        return {"dfq": "dfq_gemm", "fp4": "fp4_gemm", "fp16": "fp16_dsp"}[machine.fc2_unit]
    return "fp4_gemm"


def linear_compute_cycles(m: MatMul, machine: Machine, *, rotate: bool) -> int:
    """Edges of one linear layer on its GEMM unit (or, for FP16 FC2, its DSPs)."""
    unit = _unit_of(m.name, machine)
    if unit == "fp16_dsp":
        return math.ceil(m.macs / machine.fp16_macs_per_cycle)
    columns = machine.dfq_columns if unit == "dfq_gemm" else machine.fp4_columns
    beats = math.ceil(m.k / machine.lanes)
    tiles = m.m * math.ceil(m.n / columns)
    rotation = machine.rotation if rotate else "none"
    if rotation == "ht":
        return tiles * ht_tile_cycles(beats, m.k, pipelined=machine.first_level)
    return tiles_cycles(tiles, beats, stage_latencies(rotation=rotation), pipelined=machine.first_level)


def _weight_bits(m: MatMul, machine: Machine) -> float:
    return 16.0 if (m.name == "fc2" and machine.fc2_unit == "fp16") else machine.weight_bits


def layer_time(m: MatMul, machine: Machine) -> LayerTime:
    if m.name.startswith("attn") and machine.attention_unit == "fp4_gemm":
        compute = linear_compute_cycles(m, machine, rotate=False) / machine.clock_hz
        return LayerTime(m.name, "fp4_gemm", compute / machine.unfolded_blocks, 0.0)
    if m.name.startswith("attn"):
        compute = math.ceil(m.macs / machine.sfu_macs_per_cycle) / machine.clock_hz
        return LayerTime(m.name, "sfu", compute / machine.unfolded_blocks, 0.0)
    rotate = m.name in ROTATED_LAYERS and machine.rotation != "none"
    compute = linear_compute_cycles(m, machine, rotate=rotate) / machine.clock_hz
    memory = m.k * m.n * _weight_bits(m, machine) / 8 / machine.bandwidth_bytes_per_s
    return LayerTime(m.name, _unit_of(m.name, machine), compute / machine.unfolded_blocks, memory)


@dataclass
class StepTime:
    """Wall-clock seconds of one step, and where they go (``by_part``: seconds per layer or pair, all blocks)."""

    index: int
    tokens: int
    seconds: float
    by_part: dict[str, float] = field(default_factory=dict)
    weight_bytes: float = 0.0
    kv_bytes: float = 0.0
    macs: int = 0
    compute_s: float = 0.0  # every layer's compute, as if nothing waited for memory
    memory_s: float = 0.0  # weight and KV streaming alone


def step_time(step: Step, machine: Machine) -> StepTime:
    """Seconds of one step: the blocks one after another (each block's layers in order, FC2 beside the next
    block's ada_lin at the second level), element-wise work on the SFU, then the head."""
    block = {m.name: layer_time(m, machine) for m in step.block.matmuls}
    bw, depth = machine.bandwidth_bytes_per_s, step.depth
    parts: dict[str, float] = {}
    kv_s = (step.block.kv_bytes_read + step.block.kv_bytes_written) / bw
    parts["attention"] = depth * max(block["attn_qk"].compute_s + block["attn_av"].compute_s, kv_s)
    parts["elementwise"] = depth * (step.block.layernorm_elements + step.block.gelu_elements
                                    + step.block.softmax_elements) / (
        machine.sfu_elements_per_cycle * machine.clock_hz * machine.unfolded_blocks)
    for name in ("qkv", "proj", "fc1"):
        parts[name] = depth * block[name].seconds
    fc2, ada = block["fc2"], block.get("ada_lin")
    if ada is not None and machine.cache_condition and step.index > 0:
        ada = None  # computed at the first step and kept on chip: 6 C values per condition row and block
    if machine.layer_pipeline and fc2.unit != "fp4_gemm":
        # proj, FC1 (and ada_lin) on the FP4 unit while the DFQ unit takes FC2 tile by tile; weights share the bus
        fp4 = [block["proj"], block["fc1"], *([ada] if ada is not None else [])]
        del parts["proj"], parts["fc1"]
        parts["proj, fc1, ada_lin | fc2"] = depth * max(
            sum(t.compute_s for t in fp4), fc2.compute_s, sum(t.memory_s for t in fp4) + fc2.memory_s)
    elif ada is None:
        parts["fc2"] = depth * fc2.seconds
    elif machine.second_level and fc2.unit != ada.unit:
        # block 0's ada_lin alone, FC2(i) beside ada_lin(i + 1), the last block's FC2 alone; both stream weights
        pair = max(fc2.compute_s, ada.compute_s, fc2.memory_s + ada.memory_s)
        parts["ada_lin"] = ada.seconds
        parts["fc2 | ada_lin"] = (depth - 1) * pair
        parts["fc2"] = fc2.seconds
    else:
        parts["fc2"] = depth * fc2.seconds
        parts["ada_lin"] = depth * ada.seconds
    for m in step.extra:
        if m.name == "shared_ada_lin" and machine.cache_condition and step.index > 0:
            continue
        parts["head and embeddings"] = parts.get("head and embeddings", 0.0) + layer_time(m, machine).seconds
    cached = machine.cache_condition and step.index > 0
    matmuls = [m for m in step.matmuls() if not (cached and m.name in ("ada_lin", "shared_ada_lin"))]
    weight_bytes = sum(m.k * m.n * _weight_bits(m, machine) / 8 for m in matmuls if m.weight)
    kv_bytes = depth * (step.block.kv_bytes_read + step.block.kv_bytes_written)
    return StepTime(
        index=step.index, tokens=step.block.tokens, seconds=sum(parts.values()), by_part=parts,
        weight_bytes=weight_bytes, kv_bytes=kv_bytes, macs=sum(m.macs for m in matmuls),
        compute_s=sum(layer_time(m, machine).compute_s for m in matmuls),
        memory_s=(weight_bytes + kv_bytes) / bw,
    )


def image_time(config: VARConfig, machine: Machine, batch: int = 1) -> list[StepTime]:
    """Every step of one batch of ``batch`` images (the weights stream once per step for the whole batch)."""
    return [step_time(step, machine) for step in image_workload(config, batch)]


def images_per_second(config: VARConfig, machine: Machine, batch: int = 1) -> float:
    return batch / sum(s.seconds for s in image_time(config, machine, batch))


# ------------------------------------------------------------------------------------- the paper's machines


@dataclass(frozen=True)
class Inference:
    parameter: str
    value: float
    how: str


def _paper_count(text: str) -> float:
    text = text.strip()
    return float(text[:-1]) * 1000 if text.endswith("k") else float(text)


def read_paper_hardware(root: pathlib.Path | None = None) -> dict:
    """Tables V (by metric and accelerator), VI (by module), VII's throughput, Fig. 8's gains and the text's
    other hardware numbers, from data/paper/."""
    root = root or data_dir() / "paper"
    with open(root / "table5_hardware.csv", newline="") as f:
        table5 = {row["metric"]: row for row in csv.DictReader(f)}
    with open(root / "table6_utilization.csv", newline="") as f:
        table6 = {row["module"]: {k: _paper_count(v) for k, v in row.items() if k != "module"} for row in csv.DictReader(f)}
    with open(root / "table7_throughput.csv", newline="") as f:
        table7 = {row["row"]: float(row["normalised_throughput"]) for row in csv.DictReader(f)}
    with open(root / "fig8_gains.csv", newline="") as f:
        fig8 = {row["gain"]: float(row["value"]) for row in csv.DictReader(f)}
    with open(root / "hardware_claims.csv", newline="") as f:
        claims = {row["claim"]: float(row["value"]) for row in csv.DictReader(f)}
    return {"table5": table5, "table6": table6, "table7": table7, "fig8": fig8, "claims": claims}


def read_platform(path: pathlib.Path | None = None) -> dict[str, float]:
    facts = json.loads((path or data_dir() / "hw" / "platform_vck190.json").read_text())["facts"]
    return {name: fact["value"] for name, fact in facts.items()}


def infer_machine(paper: dict | None = None, platform: dict | None = None) -> tuple[Machine, Machine, list[Inference]]:
    """The FPQVAR machine and the INT baseline's, from the paper's Tables V and VI and the platform facts, with
    each inference stated. Nothing here looks at the paper's throughput."""
    paper, platform = paper or read_paper_hardware(), platform or read_platform()
    t5, t6 = paper["table5"], paper["table6"]
    clock = platform["clock_hz"]
    gops = float(t5["GOPS"]["FPQVAR"])
    macs = gops * 1e9 / (2 * clock)
    columns = macs / GHT_GROUP
    dsp_fp4, dsp_dfq = t6["FMU GEMM1"]["DSP"], t6["FMU GEMM2"]["DSP"]
    fp4_columns = round(columns * dsp_fp4 / (dsp_fp4 + dsp_dfq))
    dfq_columns = round(columns) - fp4_columns
    sfu = int(t6["SFU"]["DSP"])
    int_dsp = float(t5["DSP"]["INT Baseline"])
    fp16 = int(int_dsp - dsp_fp4 - sfu)
    inferences = [
        Inference("clock_hz", clock, "Table V: 400 MHz"),
        Inference("fmu_macs_per_cycle", macs, f"Table V's {gops:.0f} GOPS read as the FMU's peak, 2 operations per "
                  f"multiply-accumulate at 400 MHz: {macs:.0f} = {columns:.0f} x 128"),
        Inference("fp4_columns", fp4_columns, f"the {columns:.0f} columns of 128 lanes split between the GEMM units as "
                  f"their DSPs in Table VI ({dsp_fp4:.0f} : {dsp_dfq:.0f}; 16 DSPs per column in both units, whose "
                  "DSPs apply the per-group scales)"),
        Inference("dfq_columns", dfq_columns, "the rest of the columns"),
        Inference("lanes", GHT_GROUP, "one 128-channel group per beat: the GHT group and the quantization group "
                  "(Sec. IV-B), as rtl linear_tile"),
        Inference("ghtu", 1, "one 128-point FHT per beat: Table VI's GHTU (12k LUT) is about one 16-bit row "
                  "(Yosys: 3.1k LUT for a 32-point row; N log2 N scaling gives ~17k for 128 points)"),
        Inference("sfu_macs_per_cycle", sfu, "attention's products (FP16 K, V) on the SFU's DSPs (Table VI: 824), "
                  "one multiply-accumulate per DSP58 per cycle"),
        Inference("sfu_elements_per_cycle", GHT_GROUP, "assumed: LayerNorm/GELU/softmax one group of 128 per cycle "
                  "(the paper gives no figure; under 2% of the time here)"),
        Inference("bandwidth_bytes_per_s", platform["offchip_bandwidth_bytes_per_s"], "VCK190 DDR4 (platform file)"),
        Inference("int_fp16_macs_per_cycle", fp16, f"INT baseline: Table V's {int_dsp:.0f} DSPs less an INT4 unit as "
                  f"large as the FP4 unit ({dsp_fp4:.0f}) and the same SFU ({sfu}): FC2 in FP16 on the rest, one "
                  "multiply-accumulate per DSP per cycle"),
    ]
    fpqvar = Machine(clock_hz=clock, bandwidth_bytes_per_s=platform["offchip_bandwidth_bytes_per_s"],
                     fp4_columns=fp4_columns, dfq_columns=dfq_columns, sfu_macs_per_cycle=sfu)
    int_baseline = replace(fpqvar, fc2_unit="fp16", fp16_macs_per_cycle=fp16, rotation="none")
    return fpqvar, int_baseline, inferences


def table7_machines(fpqvar: Machine) -> dict[str, Machine]:
    """Table VII's hardware rows. The FP4 baseline has no DFQ unit (FC2 on the FP4 unit, so nothing to overlap);
    '+ DFQ' keeps both pipeline levels (the paper: 'already considers our pipeline optimization'); GALT folds into
    the weights and costs nothing."""
    return {
        "FP4 baseline": replace(fpqvar, fc2_unit="fp4", rotation="none", second_level=False),
        "+ DFQ": replace(fpqvar, rotation="none"),
        "+ DFQ (without pipeline)": replace(fpqvar, rotation="none", first_level=False, second_level=False),
        "+ DFQ & HT": replace(fpqvar, rotation="ht"),
        "+ DFQ & GHT": fpqvar,
        "+ DFQ & GHT & GALT": fpqvar,
    }


def table7_normalised_throughput(config: VARConfig, fpqvar: Machine) -> dict[str, float]:
    reference = images_per_second(config, fpqvar)
    return {row: images_per_second(config, m) / reference for row, m in table7_machines(fpqvar).items()}


def fig8_schedules(fpqvar: Machine) -> dict[str, Machine]:
    """Fig. 8: (a) sequential GHT, (b) HT sequential as [37], (c) GHT first-level pipeline, (d) second level only,
    (e) both levels."""
    return {
        "a_sequential": replace(fpqvar, first_level=False, second_level=False),
        "b_ht_sequential": replace(fpqvar, rotation="ht", first_level=False, second_level=False),
        "c_ght_first_level": replace(fpqvar, second_level=False),
        "d_second_level": replace(fpqvar, first_level=False),
        "e_two_level": fpqvar,
    }


def fig8_gains(config: VARConfig, fpqvar: Machine) -> dict:
    """The two gains of Fig. 8 on three workloads: the QKV layer of the last step (what Fig. 8b/c draw: rotation,
    quantization, MM), one block of the last step, and the whole image."""
    schedules = fig8_schedules(fpqvar)
    last = image_workload(config)[-1]
    qkv = next(m for m in last.block.matmuls if m.name == "qkv")
    single = replace(last, depth=1, extra=())
    layer = {k: layer_time(qkv, m).seconds for k, m in schedules.items()}
    block = {k: step_time(single, m).seconds for k, m in schedules.items()}
    image = {k: 1 / images_per_second(config, m) for k, m in schedules.items()}
    return {
        "ght_vs_ht": {"qkv_layer": layer["b_ht_sequential"] / layer["c_ght_first_level"],
                      "block": block["b_ht_sequential"] / block["c_ght_first_level"],
                      "image": image["b_ht_sequential"] / image["c_ght_first_level"]},
        "two_level": {"qkv_layer": layer["a_sequential"] / layer["e_two_level"],
                      "block": block["a_sequential"] / block["e_two_level"],
                      "image": image["a_sequential"] / image["e_two_level"]},
        "seconds": {"qkv_layer": layer, "block": block, "image": image},
    }


# --------------------------------------------------------------------------------------- resources and the sweep


def machine_resources(machine: Machine, paper: dict | None = None) -> dict[str, float]:
    """LUT, FF, DSP, BRAM, URAM of a machine, scaled from the paper's Table VI: each GEMM unit and its quantizer
    per column, SFU and GHTU per unfolded block, 'Others' once."""
    t6 = (paper or read_paper_hardware())["table6"]
    paper_fp4, paper_dfq = Machine().fp4_columns, Machine().dfq_columns
    total = {}
    for resource in ("LUT", "FF", "DSP", "BRAM", "URAM"):
        fp4 = (t6["FMU GEMM1"][resource] + t6["FMU Quant1"][resource]) * machine.fp4_columns / paper_fp4
        dfq = (t6["FMU GEMM2"][resource] + t6["FMU Quant2"][resource]) * machine.dfq_columns / paper_dfq
        sfu = t6["SFU"][resource]
        if resource == "DSP":  # by infer_machine, the SFU's DSPs are attention's multipliers
            sfu = sfu * machine.sfu_macs_per_cycle / Machine().sfu_macs_per_cycle if machine.attention_unit == "sfu" else 0
        per_block = fp4 + dfq + sfu + t6["GHTU"][resource]
        total[resource] = machine.unfolded_blocks * per_block + t6["Others"][resource]
    return total


def fits(resources: dict[str, float], platform: dict[str, float]) -> bool:
    """LUTs and DSPs within the VC1902's. Block RAM is not checked: the paper's own design reports 1097 BRAM
    (Table V) against the 967 36-Kb blocks in the platform file, so the paper counts them in some other unit."""
    return resources["LUT"] <= platform["luts"] and resources["DSP"] <= platform["dsp58"]


def bottleneck(config: VARConfig, machine: Machine, batch: int = 1) -> str:
    """The part of the schedule that takes the most time over the image, and whether it waits for memory."""
    steps = image_time(config, machine, batch)
    parts: dict[str, float] = {}
    for s in steps:
        for k, v in s.by_part.items():
            parts[k] = parts.get(k, 0.0) + v
    worst = max(parts, key=parts.get)
    memory_bound = sum(s.seconds for s in steps if s.memory_s >= s.compute_s)
    share = memory_bound / sum(s.seconds for s in steps)
    return f"{worst} ({parts[worst] / sum(parts.values()):.0%} of the time); {share:.0%} of the time in memory-bound steps"


SWEEP = {
    "fp4_columns": (36, 48, 60, 72),
    "dfq_columns": (12, 18, 24, 30, 36),
    "unfolded_blocks": (1, 2),
    "bandwidth_bytes_per_s": (25.6e9, 51.2e9),
    "clock_hz": (400e6,),
    "cache_condition": (False, True),
    "attention_unit": ("sfu", "fp4_gemm"),
    "layer_pipeline": (False, True),
}


def design_sweep(config: VARConfig, base: Machine, platform: dict, paper: dict | None = None,
                 grid: dict | None = None) -> list[dict]:
    """Every point of the grid (default SWEEP) with its throughput, resources and whether it fits the VC1902.
    Bandwidth beyond the DDR4's 25.6 GB/s and clocks other than the paper's 400 MHz are hypothetical."""
    paper = paper or read_paper_hardware()
    grid = grid or SWEEP
    rows = []
    for values in itertools.product(*grid.values()):
        machine = replace(base, **dict(zip(grid, values, strict=True)))
        resources = machine_resources(machine, paper)
        rows.append({**{k: getattr(machine, k) for k in (*SWEEP, *grid)}, "img_per_s": images_per_second(config, machine),
                     "fits": fits(resources, platform), **{k.lower(): v for k, v in resources.items()}})
    return rows


def best_point(rows: list[dict], *, bandwidth: float, clock_hz: float) -> dict:
    """The fastest point that fits the device at the given (real) bandwidth and clock."""
    feasible = [r for r in rows if r["fits"] and r["bandwidth_bytes_per_s"] == bandwidth and r["clock_hz"] == clock_hz]
    if not feasible:
        raise ValueError("no design point fits the device at this bandwidth and clock")
    return max(feasible, key=lambda r: r["img_per_s"])


def read_resources(path: pathlib.Path | None = None) -> list[dict]:
    return json.loads((path or data_dir() / "hw" / "resources.json").read_text())["modules"]


def _module(rows: list[dict], module: str, **parameters) -> dict:
    for row in rows:
        if row["module"] == module and all(row["parameters"].get(k) == v for k, v in parameters.items()):
            return row
    raise KeyError(f"no Yosys estimate of {module} {parameters} in data/hw/resources.json")


def yosys_estimates(machine: Machine, rows: list[dict] | None = None) -> list[dict]:
    """Our Yosys (UltraScale+) estimates of the paper's units at the machine's sizes, scaled from the sizes Yosys
    could synthesise, each with its scaling rule. GEMM units: two lane counts of the same 2 x 2 array give the
    cost of one lane (its product table and adder-tree share) and, by difference, of one output's scaling and
    accumulation; the unit is then columns x 128 lanes and ``columns`` outputs. GHTU: adders and registers grow as
    N log2 N (16 bits), from the 32-point FHT. Quantizers: linear in the lanes, from groups of 16."""
    rows = rows or read_resources()
    estimates = []
    for unit, dual, columns in (("FP4 GEMM unit", 0, machine.fp4_columns), ("DFQ GEMM unit", 1, machine.dfq_columns)):
        try:
            small, large = (_module(rows, "fp4_gemm", DUAL=dual, LANES=lanes) for lanes in (8, 16))
        except KeyError as missing:
            estimates.append({"unit": unit, "LUT": math.nan, "FF": math.nan, "DSP": math.nan, "scaling": str(missing)})
            continue
        outputs = small["parameters"]["ROWS"] * small["parameters"]["COLS"]
        per_lane = {k: (large[k] - small[k]) / (outputs * 8) for k in ("LUT", "FF")}
        per_output = {k: (small[k] - per_lane[k] * outputs * 8) / outputs for k in ("LUT", "FF")}
        lanes = columns * machine.lanes
        estimates.append({"unit": unit, **{k: per_lane[k] * lanes + per_output[k] * columns for k in ("LUT", "FF")},
                          "DSP": small["DSP"] / outputs * columns,
                          "scaling": f"{per_lane['LUT']:.1f} LUT per lane x {lanes} lanes + {per_output['LUT']:.0f} per "
                                     f"output x {columns} (fp4_gemm 2x2 at 8 and 16 lanes)"})
    fht = _module(rows, "fht", LOG2N=5)
    factor = (GHT_GROUP * LOG2_GROUP) / (32 * 5)
    estimates.append({"unit": "GHTU", "LUT": fht["LUT"] * factor, "FF": fht["FF"] * factor, "DSP": 0,
                      "scaling": f"fht 32-point x {factor:.1f} (N log2 N to 128 points)"})
    for unit, dual in (("Quantizer 1 (E2M1)", 0), ("Quantizer 2 (DFQ)", 1)):
        quantizer = _module(rows, "fp4_quantizer", DUAL=dual)
        factor = machine.lanes / quantizer["parameters"]["GROUP"]
        estimates.append({"unit": unit, "LUT": quantizer["LUT"] * factor, "FF": quantizer["FF"] * factor,
                          "DSP": quantizer["DSP"] * factor,
                          "scaling": f"fp4_quantizer GROUP 16 x {factor:.0f} (linear in the lanes)"})
    return estimates


# ------------------------------------------------------------------------------------------------ the report


def performance_report(config: VARConfig | None = None, sweep_rows: list[dict] | None = None) -> dict:
    """Everything data/hw/performance_model.json holds: our predictions beside the paper's numbers
    (``sweep_rows``: design_sweep's result for ``config`` when the caller already has it)."""
    config = config or RELEASED_VAR["d30"]
    paper, platform = read_paper_hardware(), read_platform()
    fpqvar, int_baseline, inferences = infer_machine(paper, platform)
    fpqvar_ips, int_ips = images_per_second(config, fpqvar), images_per_second(config, int_baseline)
    t5 = paper["table5"]
    rows = sweep_rows if sweep_rows is not None else design_sweep(config, fpqvar, platform, paper)
    best = best_point(rows, bandwidth=platform["offchip_bandwidth_bytes_per_s"], clock_hz=platform["clock_hz"])
    best_machine = replace(fpqvar, **{k: best[k] for k in SWEEP})
    steps = image_time(config, fpqvar)
    return {
        "model": "VAR-d30, 256 px, CFG (2 rows per image), batch 1; see src/fpqvar/hw/performance.py",
        "fpqvar_img_per_s": fpqvar_ips,
        "int_baseline_img_per_s": int_ips,
        "speedup_vs_int": fpqvar_ips / int_ips,
        "img_per_joule": fpqvar_ips / platform["fpqvar_power_w"],
        "int_baseline_img_per_joule": int_ips / platform["int_baseline_power_w"],
        "power_w": {"fpqvar": platform["fpqvar_power_w"], "int_baseline": platform["int_baseline_power_w"],
                    "source": "the paper's Table V: throughput / energy efficiency (its measurement, not ours)"},
        "paper": {"fpqvar_img_per_s": float(t5["Throughput (img/s)"]["FPQVAR"]),
                  "int_baseline_img_per_s": float(t5["Throughput (img/s)"]["INT Baseline"]),
                  "speedup_vs_int": paper["claims"]["speedup_vs_int"],
                  "img_per_joule": float(t5["Energy Eff. (img/J)"]["FPQVAR"]),
                  "table7_normalised_throughput": paper["table7"], "fig8_gains": paper["fig8"],
                  "tflops_per_image": paper["claims"]["tflops_per_image_d30"]},
        "table7_normalised_throughput": table7_normalised_throughput(config, fpqvar),
        "fig8_gains": fig8_gains(config, fpqvar),
        "tflops_per_image": {k: v / 1e12 for k, v in flops_conventions(config).items()},
        "table5_gops_per_image": {name: float(t5["GOPS"][name]) / float(t5["Throughput (img/s)"][name])
                                  for name in ("FPQVAR", "INT Baseline", "GPU Baseline")},
        "hadamard_ops_per_token": hadamard_flops(config.C),
        "machine": asdict(fpqvar),
        "int_baseline_machine": asdict(int_baseline),
        "inferences": [asdict(i) for i in inferences],
        "steps": [{"index": s.index, "tokens": s.tokens, "seconds": s.seconds, "compute_s": s.compute_s,
                   "memory_s": s.memory_s, "weight_bytes": s.weight_bytes, "kv_bytes": s.kv_bytes, "macs": s.macs,
                   "by_part": s.by_part} for s in steps],
        "bottleneck": bottleneck(config, fpqvar),
        "design_sweep": {"grid": {k: list(v) for k, v in SWEEP.items()}, "points": len(rows),
                         "best": best, "best_bottleneck": bottleneck(config, best_machine),
                         "best_by_batch": {str(b): images_per_second(config, best_machine, b) for b in (1, 4, 16)}},
        "other_models": {name: images_per_second(RELEASED_VAR[name], fpqvar) for name in ("d16", "d20", "d24", "d30", "d36")},
        "batch": {str(b): images_per_second(config, fpqvar, b) for b in (1, 2, 4, 8, 16)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fpqvar.hw.performance", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=data_dir() / "hw" / "performance_model.json")
    args = parser.parse_args(argv)
    if args.out.exists() and args.out.is_dir():
        print(f"error: --out {args.out} is a folder; give a file path", file=sys.stderr)
        return 2
    report = performance_report()
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    print(f"FPQVAR {report['fpqvar_img_per_s']:.3f} img/s (paper 1.1), INT baseline {report['int_baseline_img_per_s']:.3f} "
          f"(paper 0.36), speedup {report['speedup_vs_int']:.2f}x (paper 3.1x); wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
