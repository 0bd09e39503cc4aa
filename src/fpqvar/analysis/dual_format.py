"""The FC2 input's formats: error per block for each format (paper Fig. 5a) and Alg. 2's search per block and
over the model, through :func:`fpqvar.methods.search.search_dual_format`."""

from __future__ import annotations

from ..formats import DualFormat, Format, get_format
from ..methods.calibration import ActivationStore
from ..methods.search import FP4_FORMATS, search_dual_format
from ..quant import Granularity, PerGroup
from .format_error import quantization_mse


def blockwise_input_errors(
    store: ActivationStore, names: list[str], formats: dict[str, Format | str], granularity: Granularity = PerGroup(128)
) -> dict[str, list[float]]:
    """For each labelled format, per layer in ``names``: the quantization MSE of its input averaged over steps
    (each step's (N, L_k, C) tensor weighs the same, as in Alg. 2's search)."""
    errors: dict[str, list[float]] = {label: [] for label in formats}
    for name in names:
        tensors = store.per_step(name)
        for label, fmt in formats.items():
            errors[label].append(sum(quantization_mse(x, get_format(fmt), granularity) for x in tensors) / len(tensors))
    return errors


def search_per_layer(
    store: ActivationStore, names: list[str], formats: tuple[str, ...] = FP4_FORMATS, granularity: Granularity = PerGroup(128)
) -> dict[str, tuple[DualFormat, dict[tuple[str, str], float]]]:
    """Alg. 2 on each layer's inputs (all steps): the chosen pair and every pair's mean MSE."""
    return {name: search_dual_format(store.per_step(name), formats, granularity) for name in names}


def model_wide_search(per_layer: dict[str, tuple[DualFormat, dict[tuple[str, str], float]]]) -> tuple[tuple[str, str], dict]:
    """Alg. 2 over the whole model, from the per-layer tables: every layer has the same K step tensors, so the mean
    over layers of each layer's mean equals the mean over all tensors that ``search_dual_format`` would compute
    on their concatenated list. Returns the chosen (negative, positive) pair and every pair's mean MSE."""
    tables = [errors for _, errors in per_layer.values()]
    if not tables:
        raise ValueError("no layers searched")
    mean = {pair: sum(t[pair] for t in tables) / len(tables) for pair in tables[0]}
    return min(mean, key=mean.get), mean


def round_trips(fmt: DualFormat) -> bool:
    """Whether a searched format's name gives the same format back through ``get_format`` (so a recipe can use it)."""
    try:
        found = get_format(fmt.name)
    except ValueError:
        return False
    return found.negative == fmt.negative and found.positive == fmt.positive
