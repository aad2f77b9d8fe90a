"""Sampling: the one sampler-settings type, the sampling loop and classifier-free guidance.

- ``settings``: ``SamplerSettings``, the sampler settings of trained modules, official
  checkpoints, the grid and the callback.
- ``sampler``: the ``Sampler`` protocol, seeds and labels, rule checks, the lazy VAE.
- ``guidance``: classifier-free guidance of a denoiser or a velocity field.

Names are imported on first use.
"""

from lit_rpe._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "RuleNotApplicable": "sampler",
        "Sampler": "sampler",
        "SamplerSettings": "settings",
        "guided_denoiser": "guidance",
        "guided_velocity": "guidance",
    },
)
