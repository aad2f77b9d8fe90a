"""Flow matching: the straight noise-data path, its loss, seeded noise, CFG and ODE samplers."""

from lit_rpe.flow.guidance import Velocity, guided_velocity
from lit_rpe.flow.loss import FlowLoss, FlowMatchingLoss, loss_per_t_bucket
from lit_rpe.flow.noise import seeded_noise
from lit_rpe.flow.path import T_SAMPLINGS, interpolate, sample_t, target_velocity
from lit_rpe.flow.samplers import METHODS, sample_ode, time_grid

__all__ = [
    "METHODS",
    "T_SAMPLINGS",
    "FlowLoss",
    "FlowMatchingLoss",
    "Velocity",
    "guided_velocity",
    "interpolate",
    "loss_per_t_bucket",
    "sample_ode",
    "sample_t",
    "seeded_noise",
    "target_velocity",
    "time_grid",
]
