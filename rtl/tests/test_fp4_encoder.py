"""fp4_encoder against fpqvar.hw.fp4_encoder: every 5-bit input in every lane, both variants, both tie rules
(cocotb side: cocotb_fp4_encoder.py)."""

import pytest
import torch
from simulate import simulate

from fpqvar.formats import DFQ_FP4, FP4_E2M1
from fpqvar.hw import dfq_encoder_table, e2m1_encoder_table, encode_scaled, fp4_encoder
from fpqvar.quant import round_to_format


def timing_vectors(parameters: dict) -> dict:
    return {"latency": fp4_encoder.LATENCY}


def vectors(parameters: dict) -> dict:
    """Each lane sees every signed 5-bit input (out-of-range ones included), rotated across the lanes."""
    lanes, dual, tie = parameters["LANES"], bool(parameters["DUAL"]), "up" if parameters["TIE_UP"] else "even"
    values = list(range(-16, 16))
    beats = [[values[(shift + lane) % len(values)] for lane in range(lanes)] for shift in range(len(values))]
    return {"beats": beats, "expected": [[encode_scaled(t, dual=dual, tie=tie) for t in beat] for beat in beats],
            **timing_vectors(parameters)}


@pytest.mark.parametrize("dual", [0, 1])
@pytest.mark.parametrize("tie_up", [0, 1])
def test_fp4_encoder(simulator, dual, tie_up):
    parameters = {"LANES": 8, "DUAL": dual, "TIE_UP": tie_up}
    simulate(simulator, "fp4_encoder", "cocotb_fp4_encoder", parameters, vectors=vectors(parameters))


@pytest.mark.parametrize("tie", ["even", "up"])
def test_tables_agree_with_the_software_quantizer(tie):
    # Table entry = the software rounding of t / 2 on the format's grid, encoded.
    t = torch.arange(-12, 13, dtype=torch.float32)
    assert e2m1_encoder_table(tie) == FP4_E2M1.encode(round_to_format(t / 2, FP4_E2M1, tie)).tolist()
    t = torch.arange(-7, 13, dtype=torch.float32)
    assert dfq_encoder_table(tie) == DFQ_FP4.encode(round_to_format(t / 2, DFQ_FP4, tie)).tolist()
    # Worked entries: 2.5 and 3.5 and 5.0 are ties; E1M2 negatives are exact.
    assert encode_scaled(5, tie=tie) == (0b0101 if tie == "up" else 0b0100)
    assert encode_scaled(-7, tie=tie) == (0b1101 if tie == "up" else 0b1110)
    assert encode_scaled(10, tie=tie) == (0b0111 if tie == "up" else 0b0110)
    assert encode_scaled(-7, dual=True, tie=tie) == 0b1111 and encode_scaled(-30, dual=True) == 0b1111
