"""DiT backbone, conditioning embedders and model sizes."""

from lit_rpe.models.dit import DiT, DiTBlock
from lit_rpe.models.embeddings import (
    LabelEmbedder,
    MicroConditionEmbedder,
    TimestepEmbedder,
    sinusoidal_embedding,
)
from lit_rpe.models.sizes import DIT_SIZES, PATCH_SIZES, model_names, parse_model_name

__all__ = [
    "DIT_SIZES",
    "PATCH_SIZES",
    "DiT",
    "DiTBlock",
    "LabelEmbedder",
    "MicroConditionEmbedder",
    "TimestepEmbedder",
    "model_names",
    "parse_model_name",
    "sinusoidal_embedding",
]
