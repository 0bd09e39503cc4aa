"""Quantization methods: FPQVAR (DFQ, HT/GHT, GALT, KV cache) and the paper's baselines, as recipes."""

from .apply import (
    model_rotation,
    quantize_model,
    quantized_var_from_state_dict,
    save_quantized,
)
from .galt import fold_lambda_into_ada_lin
from .kv_cache import QuantizedKVCache
from .layers import InputTransform, OperandQuant, QuantizedLinear, Rotation
from .recipe import LAYER_KINDS, RECIPES, LayerRecipe, Recipe, get_recipe

__all__ = [
    "fold_lambda_into_ada_lin", "model_rotation", "quantize_model", "quantized_var_from_state_dict", "save_quantized", "QuantizedKVCache",
    "InputTransform", "OperandQuant", "QuantizedLinear", "Rotation", "LAYER_KINDS", "RECIPES", "LayerRecipe", "Recipe", "get_recipe",
]
