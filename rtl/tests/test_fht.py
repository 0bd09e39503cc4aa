"""fht against the golden model fpqvar.hw.fht, and the golden model against the software Hadamard matrix
(cocotb side: cocotb_fht.py)."""

import random

import pytest
import torch
from simulate import simulate

from fpqvar.hw import fht
from fpqvar.rotation import hadamard


def vectors(parameters: dict) -> dict:
    """Every basis vector at both extreme amplitudes, all-min and all-max (the output range's ends), 60 random."""
    n, width = 1 << parameters["LOG2N"], parameters["WIDTH"]
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    rng = random.Random(7)
    data = [[high if j == i else 0 for j in range(n)] for i in range(n)]
    data += [[low if j == i else 0 for j in range(n)] for i in range(n)]
    data += [[low] * n, [high] * n]
    data += [[rng.randint(low, high) for _ in range(n)] for _ in range(60)]
    return {"vectors": data, "expected": fht(torch.tensor(data)).tolist()}


@pytest.mark.parametrize("log2n, width", [(7, 16), (3, 8)])
def test_fht(simulator, log2n, width):
    parameters = {"LOG2N": log2n, "WIDTH": width}
    simulate(simulator, "fht", "cocotb_fht", parameters, vectors=vectors(parameters))


@pytest.mark.parametrize("n", [8, 128])
def test_golden_model_is_the_hadamard_matrix_product(n):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-(2**15), 2**15, (50, n), generator=g)
    assert torch.equal(fht(x), x @ hadamard(n).to(torch.int64))  # natural-order Sylvester is symmetric
