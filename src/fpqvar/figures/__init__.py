"""Matplotlib figures of the paper, drawn from data the library computed (never from hard-coded numbers)."""
