"""Flow matching: the straight noise-data path, the loss, seeded noise, ODE samplers.

- ``path``: x_t and the velocity target (the only place they are written), training t draws.
- ``loss``: ``flow_matching_losses`` (the per-sample core), ``FlowMatchingLoss`` (training),
  ``loss_per_t_bucket``; ``validation_protocol``: the fixed-noise validation protocol.
- ``noise``: ``seeded_noise``, one generator per image.
- ``samplers``: ``sample_ode`` (Euler, Heun over ``time_grid``; adaptive dopri5).
- ``sde``: ``sample_sde``, SiT's Euler-Maruyama sampler (official SiT/FiTv2 files).

Names are imported on first use.
"""

from lit_rpe._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "METHODS": "samplers",
        "T_SAMPLINGS": "path",
        "FlowLoss": "loss",
        "FlowMatchingLoss": "loss",
        "interpolate": "path",
        "loss_per_t_bucket": "loss",
        "sample_ode": "samplers",
        "sample_ode_adaptive": "samplers",
        "sample_sde": "sde",
        "sample_t": "path",
        "seeded_noise": "noise",
        "target_velocity": "path",
        "time_grid": "samplers",
    },
)
