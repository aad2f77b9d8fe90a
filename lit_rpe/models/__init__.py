"""DiT backbone, conditioning embedders, model sizes and the official DiT/SiT files."""

from lit_rpe.models.dit import DiT, DiTBlock
from lit_rpe.models.embeddings import (
    LabelEmbedder,
    MicroConditionEmbedder,
    TimestepEmbedder,
    sinusoidal_embedding,
)
from lit_rpe.models.official import OFFICIAL_KINDS, build_official_net, load_official
from lit_rpe.models.sizes import DIT_SIZES, PATCH_SIZES, model_names, parse_model_name

__all__ = [
    "DIT_SIZES",
    "OFFICIAL_KINDS",
    "PATCH_SIZES",
    "DiT",
    "DiTBlock",
    "LabelEmbedder",
    "MicroConditionEmbedder",
    "TimestepEmbedder",
    "build_official_net",
    "load_official",
    "model_names",
    "parse_model_name",
    "sinusoidal_embedding",
]
