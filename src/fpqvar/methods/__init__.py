"""Quantization methods: FPQVAR (DFQ, HT/GHT, GALT, KV cache) and the paper's baselines, as recipes."""

from .apply import (
    load_quantized_var,
    model_rotation,
    quantize_model,
    quantized_var_from_state_dict,
    save_quantized,
)
from .galt import fold_lambda_into_ada_lin
from .kv_cache import QuantizedKVCache
from .layers import InputTransform, OperandQuant, QuantizedLinear
from .recipe import RECIPES, LayerRecipe, Recipe, get_recipe, released_behaviour, rotated_layer_names

__all__ = [
    "fold_lambda_into_ada_lin", "load_quantized_var", "model_rotation", "quantize_model", "quantized_var_from_state_dict", "save_quantized", "QuantizedKVCache",
    "InputTransform", "OperandQuant", "QuantizedLinear", "RECIPES", "LayerRecipe", "Recipe", "get_recipe",
    "released_behaviour", "rotated_layer_names",
]
