"""DDPM of the official DiT files: the linear schedule with respacing (``schedule``) and the
ancestral and DDIM samplers (``samplers``). Guidance is ``lit_rpe.sampling.guidance`` (3
channels for the official files). Names are imported on first use."""

from lit_rpe._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "DDPMSchedule": "schedule",
        "TRAIN_STEPS": "schedule",
        "ddim_sample": "samplers",
        "ddpm_sample": "samplers",
        "linear_betas": "schedule",
        "noise_generators": "samplers",
        "p_mean_variance": "samplers",
        "predict_x0": "samplers",
        "space_timesteps": "schedule",
        "step_noise": "samplers",
    },
)
