"""Measurements behind the book's chapters, one module per analysis:

- ``format_error``: quantization error by format, layer and block (Fig. 2b, Fig. 5a)
- ``models``: the one place chapters load their models (``load_models``) and check the device
- ``activations``: layer inputs via the calibration capture, FC2 value shares, per-tensor levels (Fig. 3)
- ``outliers``: outlier channels per step and their overlap (Fig. 4)
- ``rotation_effect``: layer inputs after HT and GHT, per-group statistics (Fig. 6)
- ``model_costs``: parameters and FLOPs by component from the model definitions (Fig. 1e)
- ``dual_format``: the DFQ format search per block and over the model (Alg. 2, Fig. 5a)
"""

from .format_error import blockwise_quantization_mse, quantization_mse, stand_in_weights

__all__ = ["blockwise_quantization_mse", "quantization_mse", "stand_in_weights"]
