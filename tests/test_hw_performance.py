"""The accelerator's performance model: its unit cycle formulas against the RTL's simulated counts, the workload
against the model's shapes, the paper's machine as read from its tables, and the report file."""

import json
import math
from dataclasses import replace

import pytest

from fpqvar.hw import fp4_gemm
from fpqvar.hw.performance import (
    Machine,
    best_point,
    design_sweep,
    fig8_gains,
    ht_tile_cycles,
    images_per_second,
    infer_machine,
    layer_time,
    machine_resources,
    main,
    performance_report,
    read_platform,
    stage_latencies,
    step_time,
    table7_normalised_throughput,
    tiles_cycles,
    yosys_estimates,
)
from fpqvar.hw.workload import block_weight_count, flops_conventions, hadamard_flops, image_macs, step_workload
from fpqvar.model.config import RELEASED_VAR
from fpqvar.paths import data_dir

D30 = RELEASED_VAR["d30"]


def _measured() -> dict:
    rows = json.loads((data_dir() / "hw" / "cycles.json").read_text())["measurements"]
    return {k: v for row in rows for k, v in row["measured"].items()} | {
        f"{row['module']}_params_{row['parameters'].get('SEQUENTIAL', row['parameters'].get('DUAL', ''))}": row["parameters"]
        for row in rows}


def test_unit_cycle_formulas_reproduce_the_simulated_counts():
    m = _measured()
    groups = m["linear_tile_params_0"]["GROUPS"]  # 15: C = 1920 in groups of 128
    assert tiles_cycles(1, groups, stage_latencies(rotation="ght"), pipelined=True) == m["linear_tile_pipelined"]
    assert tiles_cycles(1, groups, stage_latencies(rotation="ght"), pipelined=False) == m["linear_tile_sequential"]
    beats = 15 * 128 // m["fp4_gemm_params_0"]["LANES"]  # a tile of 15 groups at 32 lanes per beat
    for name in ("fp4_gemm_e2m1", "fp4_gemm_dfq"):
        assert tiles_cycles(1, beats, [fp4_gemm.LATENCY], pipelined=True) == m[f"{name}_tile_15_groups"]
    fc2, ada = (tiles_cycles(1, m[k], [fp4_gemm.LATENCY], pipelined=True) for k in ("fmu_fc2_beats", "fmu_ada_lin_beats"))
    assert m["fmu_blocks"] * max(fc2, ada) == m["fmu_overlapped"]  # the second level: the pair takes the longer
    assert m["fmu_blocks"] * (fc2 + ada) == m["fmu_sequential"]


def test_back_to_back_tiles_pay_the_latency_once_when_pipelined():
    latencies = stage_latencies(rotation="ght")
    assert tiles_cycles(10, 15, latencies, pipelined=True) == 150 + sum(latencies)
    assert tiles_cycles(10, 15, latencies, pipelined=False) == 10 * tiles_cycles(1, 15, latencies, pipelined=False)
    with pytest.raises(ValueError, match="at least one tile"):
        tiles_cycles(0, 15, latencies, pipelined=True)


def test_workload_shapes_and_counts():
    last = step_workload(D30, 9, batch=1)
    ops = {m.name: m for m in last.block.matmuls}
    assert last.block.tokens == 2 * 256 and last.block.kv_length == 680
    assert (ops["qkv"].m, ops["qkv"].k, ops["qkv"].n) == (512, 1920, 5760)
    assert ops["attn_qk"].macs == ops["attn_av"].macs == 512 * 1920 * 680
    assert (ops["ada_lin"].m, ops["fc2"].k) == (2, 7680)
    assert last.block.kv_bytes_read == 2 * 2 * 680 * 1920 * 2  # K and V, 2 rows, FP16
    # the block's linear weights are the model's parameters but for norms-free extras (var-spec 2.1: 2,010,020,356)
    linear = D30.depth * sum(block_weight_count(D30).values())
    assert 0.98 < linear / 2_010_020_356 < 1.0
    macs = image_macs(D30)
    assert macs["fc2"] == macs["fc1"] == 2 * 680 * 1920 * 7680 * 30
    assert step_workload(RELEASED_VAR["d36"], 0).extra[0].name == "shared_ada_lin"  # d36-s: one ada_lin per step
    with pytest.raises(ValueError, match="step"):
        step_workload(D30, 10)


def test_flops_reconcile_with_the_papers_figure():
    tflops = {k: v / 1e12 for k, v in flops_conventions(D30).items()}
    assert tflops["cfg"] == pytest.approx(3.79, abs=0.01)
    assert tflops["no_cfg"] == pytest.approx(tflops["cfg"] / 2)
    assert abs(tflops["cfg_condition_per_token"] - 5.6) < 0.05  # the paper's 5.6 TFLOPs (Sec. I)
    ht = hadamard_flops(1920)
    assert ht["dense_ratio"] == 15  # the paper's "15x fewer" (Sec. IV-B) counts dense products
    assert ht["ht_fast"] == 2048 * 11 and ht["ght_fast"] == 1920 * 7
    with pytest.raises(ValueError, match="multiple"):
        hadamard_flops(1000)


def test_machine_from_the_papers_tables():
    fpqvar, int_baseline, inferences = infer_machine()
    assert (fpqvar.fp4_columns, fpqvar.dfq_columns) == (36, 24)  # 6144 GOPS / (2 x 400 MHz) = 60 x 128, DSPs 3:2
    assert fpqvar.sfu_macs_per_cycle == 824
    assert int_baseline.fc2_unit == "fp16" and int_baseline.fp16_macs_per_cycle == 1902 - 576 - 824
    assert {i.parameter for i in inferences} >= {"fp4_columns", "dfq_columns", "bandwidth_bytes_per_s"}


def test_roofline_early_steps_wait_for_memory_late_steps_compute():
    fpqvar, _, _ = infer_machine()
    first, last = (step_time(step_workload(D30, k), fpqvar) for k in (0, 9))
    assert first.memory_s > first.compute_s and last.compute_s > last.memory_s
    assert first.weight_bytes == pytest.approx(D30.depth * sum(block_weight_count(D30).values()) * 4.125 / 8, rel=0.01)


def test_schedules_order_as_the_paper_says():
    fpqvar, int_baseline, _ = infer_machine()
    ips = images_per_second(D30, fpqvar)
    assert images_per_second(D30, replace(fpqvar, first_level=False)) < ips
    assert images_per_second(D30, replace(fpqvar, second_level=False)) < ips
    assert images_per_second(D30, replace(fpqvar, rotation="ht")) < ips
    assert images_per_second(D30, int_baseline) < ips
    assert images_per_second(D30, fpqvar, batch=4) > ips  # weights stream once per step for the whole batch
    assert images_per_second(RELEASED_VAR["d16"], fpqvar) > ips > images_per_second(RELEASED_VAR["d36"], fpqvar)
    rows = table7_normalised_throughput(D30, fpqvar)
    assert rows["+ DFQ & GHT"] == 1.0 and rows["+ DFQ & HT"] < rows["+ DFQ"]
    gains = fig8_gains(D30, fpqvar)
    assert gains["ght_vs_ht"]["block"] > 1 and gains["two_level"]["block"] > 1


def test_fp16_fc2_streams_four_times_the_bytes():
    fpqvar, int_baseline, _ = infer_machine()
    fc2 = next(m for m in step_workload(D30, 0).block.matmuls if m.name == "fc2")
    assert layer_time(fc2, int_baseline).memory_s == pytest.approx(layer_time(fc2, fpqvar).memory_s * 16 / 4.125)


def test_bad_machines_are_refused():
    with pytest.raises(ValueError, match="fc2_unit"):
        Machine(fc2_unit="int8")
    with pytest.raises(ValueError, match="fp16_macs"):
        Machine(fc2_unit="fp16")


def test_committed_report_is_what_the_model_computes():
    committed = json.loads((data_dir() / "hw" / "performance_model.json").read_text())
    fresh = performance_report()
    for key in ("fpqvar_img_per_s", "int_baseline_img_per_s", "speedup_vs_int", "img_per_joule"):
        assert committed[key] == pytest.approx(fresh[key], rel=1e-12), key
    assert committed["table7_normalised_throughput"] == pytest.approx(fresh["table7_normalised_throughput"])


def test_cli_writes_the_report_and_refuses_a_folder(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "model.json")]) == 0
    assert json.loads((tmp_path / "model.json").read_text())["fpqvar_img_per_s"] > 0
    assert main(["--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_resources_of_the_papers_machine_are_table_vi_and_scale_per_column():
    fpqvar, _, _ = infer_machine()
    resources = machine_resources(fpqvar)
    assert (resources["LUT"], resources["DSP"], resources["BRAM"]) == (664_000, 1840, 1097)  # Table VI totals
    wider = machine_resources(replace(fpqvar, fp4_columns=72))
    assert wider["DSP"] - resources["DSP"] == 576  # the FP4 unit's 576 DSPs again for 36 more columns
    assert machine_resources(replace(fpqvar, attention_unit="fp4_gemm"))["DSP"] == 1840 - 824


def test_beyond_the_paper_knobs_save_time_and_the_sweep_respects_the_device():
    fpqvar, _, _ = infer_machine()
    ips = images_per_second(D30, fpqvar)
    for knob in ({"layer_pipeline": True}, {"cache_condition": True}, {"attention_unit": "fp4_gemm"}):
        assert images_per_second(D30, replace(fpqvar, **knob)) > ips, knob
    platform = read_platform()
    rows = design_sweep(D30, fpqvar, platform, grid={"fp4_columns": (36, 120), "dfq_columns": (24,)})
    assert [r["fits"] for r in rows] == [True, False]  # 120 columns need more DSPs than the VC1902 has
    best = best_point(rows, bandwidth=fpqvar.bandwidth_bytes_per_s, clock_hz=fpqvar.clock_hz)
    assert best["fp4_columns"] == 36
    with pytest.raises(ValueError, match="attention_unit"):
        Machine(attention_unit="gpu")


def test_ht_is_ght_for_one_group_and_slower_beyond():
    ght_sequential = tiles_cycles(1, 1, stage_latencies(rotation="ght"), pipelined=False)
    assert ht_tile_cycles(1, 128, pipelined=False) == ght_sequential  # one group: the HT is the GHT
    # C = 1920: a 2048-point transform, 2048 x 11 / (1920 x 7) = 1.68x the GHT's butterflies, before quantizing
    assert ht_tile_cycles(15, 1920, pipelined=False) == 26 + 11 + 1 + 2 * 15 + 9 + 1
    assert ht_tile_cycles(15, 1920, pipelined=False) > tiles_cycles(1, 15, stage_latencies(rotation="ght"), pipelined=False)


def test_yosys_estimates_scale_lanes_and_outputs():
    def gemm_row(dual, lanes, lut):
        return {"module": "fp4_gemm", "parameters": {"ROWS": 2, "COLS": 2, "LANES": lanes, "DUAL": dual},
                "LUT": lut, "FF": 0, "DSP": 12}
    rows = [gemm_row(0, 8, 4 * 100 + 32 * 50), gemm_row(0, 16, 4 * 100 + 64 * 50),  # 50 per lane, 100 per output
            {"module": "fht", "parameters": {"LOG2N": 5}, "LUT": 160, "FF": 160, "DSP": 0},
            {"module": "fp4_quantizer", "parameters": {"GROUP": 16, "DUAL": 0}, "LUT": 16, "FF": 0, "DSP": 16},
            {"module": "fp4_quantizer", "parameters": {"GROUP": 16, "DUAL": 1}, "LUT": 32, "FF": 0, "DSP": 16}]
    estimates = {e["unit"]: e for e in yosys_estimates(Machine(fp4_columns=36), rows)}
    assert estimates["FP4 GEMM unit"]["LUT"] == 50 * 36 * 128 + 100 * 36
    assert estimates["FP4 GEMM unit"]["DSP"] == 3 * 36
    assert math.isnan(estimates["DFQ GEMM unit"]["LUT"]) and "no Yosys estimate of fp4_gemm" in estimates["DFQ GEMM unit"]["scaling"]
    assert estimates["GHTU"]["LUT"] == 160 * 128 * 7 / 160
    assert estimates["Quantizer 2 (DFQ)"]["LUT"] == 32 * 8
