"""Training the small models of the embedded default: the multi-scale VQVAE and the VAR transformer."""
