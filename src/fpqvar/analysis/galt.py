"""What GALT learned and what folding it costs: loss reductions, lambda statistics, folded vs online outputs."""

from __future__ import annotations

import copy
import math

import torch

from ..methods import quantize_model
from ..methods.galt import GALT_KINDS, Lambdas
from ..methods.recipe import Recipe
from ..model.var import VAR
from ..model.vqvae import VQVAE


def _block_and_kind(name: str) -> tuple[int, str]:
    _, block, kind = name.split(".", 2)
    return int(block), kind


def loss_reductions(curves: dict[str, list[float]]) -> list[dict]:
    """Per layer: the first epoch's mean loss, the least one, and their ratio (how the paper reads Fig. 11)."""
    rows = []
    for name, curve in curves.items():
        block, kind = _block_and_kind(name)
        best = min(curve)
        rows.append({"block": block, "layer": kind, "first_epoch_loss": curve[0], "best_loss": best,
                     "best_epoch": curve.index(best), "reduction": curve[0] / best})
    return rows


def lambda_statistics(lambdas: Lambdas) -> list[dict]:
    """Per layer: the spread of lambda (min, median, max, std of log2 lambda) and the share of channels scaled by
    more than 2x either way."""
    rows = []
    for name, lam in lambdas.items():
        block, kind = _block_and_kind(name)
        log2 = lam.double().abs().log2()
        rows.append({"block": block, "layer": kind, "min": float(lam.min()), "median": float(lam.median()),
                     "max": float(lam.max()), "std_log2": float(log2.std()), "share_beyond_2x": float((log2.abs() > 1).double().mean())})
    return rows


def _block_outputs(var: VAR, labels: torch.Tensor, tokens: torch.Tensor) -> list[torch.Tensor]:
    outputs = []
    handles = [block.register_forward_hook(lambda module, args, output: outputs.append(output.detach().double()))
               for block in var.blocks]
    try:
        with torch.no_grad():
            var(labels, tokens)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def folding_difference(var: VAR, vae: VQVAE, recipe: Recipe, lambdas: Lambdas, *, classes: list[int], seed: int = 0) -> list[dict]:
    """Paper Eq. 6 checked numerically: per block, the largest difference between the outputs of the model with
    lambda folded into ada_lin and with lambda multiplied online, relative to the largest output, on the
    teacher-forced tokens of images the full-precision ``var`` generates for ``classes``. Both models are copies
    quantized with ``recipe``; ``var`` is left as it is."""
    device = var.pos_1LC.device
    labels = torch.tensor(classes, device=device)
    with torch.no_grad():
        images = var.generate(vae, len(classes), labels=labels, seed=seed)
        tokens = vae.quantize.idxBl_to_var_input(vae.img_to_idxBl(images * 2 - 1))
    outputs = {}
    for fold in (True, False):
        model = quantize_model(copy.deepcopy(var), recipe.replace(galt=True, galt_fold=fold), lambdas)
        outputs[fold] = _block_outputs(model.eval(), labels, tokens)
    rows = []
    for i, (folded, online) in enumerate(zip(outputs[True], outputs[False], strict=True)):
        difference = (folded - online).abs()
        largest = max(float(online.abs().max()), math.ulp(1.0))
        rows.append({"block": i, "max_abs_difference": float(difference.max()), "mean_abs_difference": float(difference.mean()),
                     "max_abs_output": largest, "relative": float(difference.max()) / largest})
    return rows


__all__ = ["GALT_KINDS", "folding_difference", "lambda_statistics", "loss_reductions"]
