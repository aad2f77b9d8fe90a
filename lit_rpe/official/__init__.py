"""Official checkpoints (DiT, SiT, FiT/FiTv2 files) as samplers of this suite.

- ``dit_sit_net``: an official DiT/SiT file as our ``DiT`` (``build_official_net``).
- ``fit_net``: an official FiT/FiTv2 file as our ``FiT`` (``build_fit_net``).
- ``model``: ``OfficialModel`` and ``load_official``, the samplers of an official file (DDPM
  chains for DiT, the flow ODE/SDE for SiT); ``fit``: the FiT files' loader and defaults;
  ``ode``: the adaptive (dopri5) solver of SiT's / FiTv2's published numbers.

Names are imported on first use.
"""

from lit_rpe._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "OFFICIAL_KINDS": "dit_sit_net",
        "OfficialModel": "model",
        "build_fit_net": "fit_net",
        "build_official_net": "dit_sit_net",
        "load_official": "model",
    },
)
