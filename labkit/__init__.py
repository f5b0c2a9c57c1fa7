"""labkit: the helper package of the ViT lab (Lab 8)."""

__version__ = "0.1.0"
