"""Experiments: the paper's tables as JSON rows, one per recipe (`fpqvar table`), and their comparison."""

from .runner import GaltOptions, TableSettings, read_rows, run_table
from .teacher_forced import HeldOutTokens, held_out_tokens, teacher_forced_metrics

__all__ = ["GaltOptions", "TableSettings", "read_rows", "run_table", "HeldOutTokens", "held_out_tokens",
           "teacher_forced_metrics"]
