"""DDPM of the official DiT files: linear schedule, respacing, ancestral and DDIM samplers, and
the official repositories' classifier-free guidance on 3 latent channels."""

from lit_rpe.ddpm.guidance import DIT_GUIDED_CHANNELS, combine_guided, guided_net
from lit_rpe.ddpm.samplers import (
    ddim_sample,
    ddpm_sample,
    noise_generators,
    p_mean_variance,
    predict_x0,
    step_noise,
)
from lit_rpe.ddpm.schedule import TRAIN_STEPS, DDPMSchedule, linear_betas, space_timesteps

__all__ = [
    "DIT_GUIDED_CHANNELS",
    "TRAIN_STEPS",
    "DDPMSchedule",
    "combine_guided",
    "ddim_sample",
    "ddpm_sample",
    "guided_net",
    "linear_betas",
    "noise_generators",
    "p_mean_variance",
    "predict_x0",
    "space_timesteps",
    "step_noise",
]
