"""The networks: the DiT backbone, its embedders and sizes, official DiT/SiT files, the SD-VAE.

- ``dit``: ``DiT``, ``DiTBlock`` (positions passed in with every call, any H x W).
- ``embeddings``: timestep, class (with the null class) and micro-conditioning embedders.
- ``sizes``: the DiT paper's sizes plus tiny CPU sizes (``DiT-Ti``, ``DiT-N``).
- ``official``: an official DiT/SiT checkpoint as our ``DiT`` (the samplers for it are in
  ``lit_rpe.official``).
- ``fit``, ``fit_loading``: ``FiT`` (FiT/FiTv2) and its official-file loader ``build_fit_net``
  (the samplers: ``lit_rpe.official_fit``).
- ``vae``: ``SDVAE``, a frozen ``diffusers`` AutoencoderKL from a local folder.

Names are imported on first use (``vae`` imports diffusers).
"""

from lit_rpe._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "DIT_SIZES": "sizes",
        "OFFICIAL_KINDS": "official",
        "PATCH_SIZES": "sizes",
        "DiT": "dit",
        "DiTBlock": "dit",
        "FiT": "fit",
        "LabelEmbedder": "embeddings",
        "MicroConditionEmbedder": "embeddings",
        "SDVAE": "vae",
        "TimestepEmbedder": "embeddings",
        "build_fit_net": "fit_loading",
        "build_official_net": "official",
        "parse_model_name": "sizes",
        "sinusoidal_embedding": "embeddings",
    },
)
