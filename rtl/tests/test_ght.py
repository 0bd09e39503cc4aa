"""ght against fpqvar.hw.ght: tokens of GROUPS groups, two rows side by side, extremes and seeded random
values, gaps and backpressure; latency and initiation interval against the cycle model; the golden model against
the software GHT matrix (cocotb side: cocotb_ght.py)."""

import random

import pytest
import torch
from simulate import simulate

from fpqvar.hw import ght, ght_latency
from fpqvar.rotation import block_diagonal_hadamard


def vectors(parameters: dict) -> dict:
    log2n, width, rows, groups = (parameters[p] for p in ("LOG2N", "WIDTH", "ROWS", "GROUPS"))
    n = 1 << log2n
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    rng = random.Random(21)
    tokens = [[[low] * (n * groups)] * rows, [[high] * (n * groups)] * rows]
    tokens += [[[rng.randint(low, high) for _ in range(n * groups)] for _ in range(rows)] for _ in range(30)]
    beats, expected = [], []
    for token in tokens:
        out = ght(torch.tensor(token), log2n)  # (rows, C)
        for g in range(groups):
            beats.append([v for row in token for v in row[g * n:(g + 1) * n]])
            expected.append([out[:, g * n:(g + 1) * n].reshape(-1).tolist(), g == groups - 1])
    return {"beats": beats, "expected": expected, "latency": ght_latency(parameters["LOG2N"])}


timing_vectors = vectors  # the timing test runs on the same tokens, before the comparison


# 8-point groups, two rows, three groups per token; and the edges: the smallest group (4 points: ght needs LOG2N >= 2),
# three rows, one group per token
@pytest.mark.parametrize("log2n, width, rows, groups", [(3, 8, 2, 3), (2, 6, 3, 1)])
def test_ght(simulator, log2n, width, rows, groups):
    parameters = {"LOG2N": log2n, "WIDTH": width, "ROWS": rows, "GROUPS": groups}
    simulate(simulator, "ght", "cocotb_ght", parameters, vectors=vectors(parameters))


@pytest.mark.parametrize("group, groups", [(8, 4), (128, 15)])
def test_golden_model_is_the_software_ght_times_sqrt_n(group, groups):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-(2**15), 2**15, (6, group * groups), generator=g)
    software = x.double() @ block_diagonal_hadamard(group * groups, group).T * group**0.5
    assert torch.equal(ght(x, group.bit_length() - 1).double(), software.round())
    assert (software - software.round()).abs().max() < 1e-6  # the software matrix is exact up to float rounding
