"""Resolution generalization of Diffusion Transformers with swappable positional encodings."""

__version__ = "0.1.0"
