"""The networks: the DiT backbone, its embedders and sizes, FiT, the SD-VAE.

- ``dit``: ``DiT``, ``DiTBlock`` (positions passed in with every call, any H x W).
- ``embeddings``: timestep, class (with the null class) and micro-conditioning embedders.
- ``sizes``: the DiT paper's sizes plus tiny CPU sizes (``DiT-Ti``, ``DiT-N``).
- ``fit``: ``FiT`` (FiT/FiTv2).
- ``vae``: ``SDVAE``, a frozen ``diffusers`` AutoencoderKL from a local folder.

Official checkpoint files become these networks in ``lit_rpe.official``.

Names are imported on first use (``vae`` imports diffusers).
"""

from lit_rpe._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "DIT_SIZES": "sizes",
        "PATCH_SIZES": "sizes",
        "DiT": "dit",
        "DiTBlock": "dit",
        "FiT": "fit",
        "LabelEmbedder": "embeddings",
        "MicroConditionEmbedder": "embeddings",
        "SDVAE": "vae",
        "TimestepEmbedder": "embeddings",
        "parse_model_name": "sizes",
        "sinusoidal_embedding": "embeddings",
    },
)
