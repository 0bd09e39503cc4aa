"""The geometry of an fp4_gemm build, shared by the pytest side (test_fp4_gemm.py, test_fmu_overlap_controller.py)
and the cocotb side (cocotb_fp4_gemm.py): read from a parameter dict or from a DUT. Imports no torch."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    rows: int
    cols: int
    group: int
    lanes: int
    scale_width: int
    weight_scale_width: int
    out_width: int

    @classmethod
    def of(cls, parameters) -> "Shape":
        """From a parameter dict, or from a DUT (its parameters as attributes)."""
        names = ("ROWS", "COLS", "GROUP", "LANES", "SCALE_WIDTH", "WEIGHT_SCALE_WIDTH", "OUT_WIDTH")
        if isinstance(parameters, dict):
            return cls(*(parameters[name] for name in names))
        return cls(*(int(getattr(parameters, name).value) for name in names))
