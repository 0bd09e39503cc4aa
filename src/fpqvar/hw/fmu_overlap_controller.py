"""The second-level pipeline (paper Fig. 8d-e; rtl/src/fmu_overlap_controller.v): per block, FC2 on the DFQ GEMM
unit and the next block's condition MLP (ada_lin) on the FP4 unit, one after the other or overlapped."""

from __future__ import annotations

from dataclasses import dataclass

from .fp4_gemm import gemm_job_cycles


@dataclass(frozen=True)
class JobPair:
    """The two GEMM jobs the controller pairs per block: FC2 on the DFQ unit and the next block's ada_lin on the
    FP4 unit, in activation beats each."""

    fc2_beats: int
    ada_lin_beats: int


def overlap_cycles(pairs: list[JobPair], *, overlap: bool) -> int:
    """Edges from the first beat of the first pair to the last result of the last, as fmu_overlap_controller
    orders them. Sequential: ada_lin's first beat goes one edge after FC2's result leaves. Overlapped: both
    at once. The next pair starts one edge after this pair's last result."""
    total = 0
    for pair in pairs:
        fc2, ada_lin = gemm_job_cycles(pair.fc2_beats), gemm_job_cycles(pair.ada_lin_beats)
        total += max(fc2, ada_lin) if overlap else fc2 + ada_lin
    return total
