"""fpqvar: post-training floating-point quantization of VAR image generators (FPQVAR), reproduced."""

__version__ = "0.1.0"
