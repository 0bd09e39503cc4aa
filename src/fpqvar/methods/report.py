"""Layer-wise error report: each quantized layer's output against full precision, per generation step."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .calibration import ActivationStore


@torch.no_grad()
def layer_error_report(
    reference: nn.Module, quantized: nn.Module, store: ActivationStore, names: list[str] | None = None
) -> list[dict]:
    """Rows (layer, step, mse, sqnr_db): the quantized layer and the full-precision one fed the same
    full-precision inputs (captured from the reference model), so each layer's error is seen in isolation."""
    rows = []
    for name in names or store.names:
        fp_layer, q_layer = reference.get_submodule(name), quantized.get_submodule(name)
        for step in store.steps(name):
            x = store.get(name, step).to(fp_layer.weight.device)
            expected = F.linear(x, fp_layer.weight.float(), None if fp_layer.bias is None else fp_layer.bias.float())
            error = (q_layer(x).float() - expected).double()
            mse = float(error.pow(2).mean())
            signal = float(expected.double().pow(2).mean())
            sqnr = math.inf if mse == 0 else 10 * math.log10(signal / mse)
            rows.append({"layer": name, "step": step, "mse": mse, "sqnr_db": sqnr})
    return rows
