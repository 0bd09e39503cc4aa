"""fp4_lut_multiplier against the golden model fpqvar.hw.fp4_lut_multiplier (cocotb side: cocotb_fp4_lut_multiplier.py)."""

import pytest
import torch
from simulate import simulate

from fpqvar.formats import DFQ_FP4, FP4_E2M1
from fpqvar.hw import PRODUCT_FRACTION_BITS, fp4_lut_multiplier, lut_multiplier_table


def timing_vectors(parameters: dict) -> dict:
    return {"latency": fp4_lut_multiplier.LATENCY}


def vectors(parameters: dict) -> dict:
    return {"table": lut_multiplier_table(dual=bool(parameters["DUAL"])).tolist(), **timing_vectors(parameters)}


@pytest.mark.parametrize("dual", [0, 1])
def test_fp4_lut_multiplier(simulator, dual):
    parameters = {"DUAL": dual}
    simulate(simulator, "fp4_lut_multiplier", "cocotb_fp4_lut_multiplier", parameters, vectors=vectors(parameters))


@pytest.mark.parametrize("dual", [False, True])
def test_golden_model_is_the_exact_product_of_decoded_values(dual):
    activation = (DFQ_FP4 if dual else FP4_E2M1).values_by_code
    exact = (activation[:, None] * FP4_E2M1.values_by_code[None, :]).reshape(256)
    assert torch.equal(lut_multiplier_table(dual=dual).double() / 2**PRODUCT_FRACTION_BITS, exact)
    assert int(lut_multiplier_table(dual=dual).abs().max()) < 2**8  # fits the 9-bit signed port
