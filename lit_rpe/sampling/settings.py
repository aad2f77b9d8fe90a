"""``SamplerSettings``: the one declaration of how a model is sampled (method, steps, guidance).

Every place that says how to sample uses it: a trained module's ``model.sampling`` (its own
defaults, ``FLOW_SAMPLING`` under them), an official file's defaults (``OFFICIAL_SAMPLING``),
the eval grid's ``sampler`` and ``ResolutionEvalCallback``'s ``settings.sampler`` (overrides of
the model's own), and one ``sample`` call's keywords. A field left None is unset: ``over`` fills
it from the settings beneath (the grid's over the model's, the model's over its kind's
defaults). Adding a sampler option means adding a field here (and reading it in ``integrate``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

# ODE samplers of the suite's flow matching and of SiT/FiTv2 files (dopri5: torchdiffeq's adaptive
# solver, ``steps`` its output times); ``sde``: SiT's Euler-Maruyama sampler (official files only).
FLOW_METHODS = ("euler", "heun", "dopri5")
SDE_METHODS = ("sde",)
DDPM_METHODS = ("ddpm", "ddim")  # DiT/FiTv1 files' DDPM chain
SAMPLER_METHODS = FLOW_METHODS + SDE_METHODS + DDPM_METHODS
CFG_CHANNELS = ("all", "dit")
# The rule fields that sampling settings held before the rule schema (now model.rule).
RULE_KEYS = ("rule", "scaling", "attention_scale", "timestep_shift", "tau_axes")


@dataclass(frozen=True)
class SamplerSettings:
    """How to sample; None: unset (taken from the settings beneath, see ``over``).

    method: ``euler`` / ``heun`` / ``dopri5`` (ODE; the suite's models, SiT and FiTv2 files),
    ``sde`` (SiT/FiTv2 files) or ``ddpm`` / ``ddim`` (DiT and FiTv1 files). steps: sampler steps
    (Heun with n steps: 2n - 1 forwards; dopri5: its output times). cfg_scale: the
    classifier-free guidance scale s (1: no guidance, one pass). guidance_interval: (t_lo, t_hi)
    in the suite's time (1 = noise), bounds included, where guidance applies (None: every step).
    cfg_channels: ``all`` guides every output channel; ``dit`` the first 3 latent channels, as
    the official DiT and SiT ``forward_with_cfg`` do (``lit_rpe.sampling.guidance``). ddim_eta:
    DDIM's eta (0: deterministic).
    """

    method: Literal["euler", "heun", "dopri5", "sde", "ddpm", "ddim"] | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    guidance_interval: tuple[float, float] | None = None
    cfg_channels: Literal["all", "dit"] | None = None
    ddim_eta: float | None = None

    def __post_init__(self) -> None:
        if self.method is not None and self.method not in SAMPLER_METHODS:
            raise ValueError(
                f"unknown sampler method {self.method!r}; valid: {', '.join(SAMPLER_METHODS)}"
            )
        if self.steps is not None and (isinstance(self.steps, bool) or not self.steps >= 1):
            raise ValueError(f"sampler steps must be an integer >= 1, got {self.steps!r}")
        if self.cfg_scale is not None and not math.isfinite(self.cfg_scale):
            raise ValueError(f"cfg_scale must be finite, got {self.cfg_scale!r}")
        interval = self.guidance_interval
        if interval is not None and (len(interval) != 2 or interval[0] > interval[1]):
            raise ValueError(
                f"guidance_interval must be (t_lo, t_hi) with t_lo <= t_hi, got {interval}"
            )
        if self.cfg_channels is not None and self.cfg_channels not in CFG_CHANNELS:
            raise ValueError(
                f"unknown cfg_channels {self.cfg_channels!r}; valid: {', '.join(CFG_CHANNELS)}"
            )
        if self.ddim_eta is not None and not self.ddim_eta >= 0:
            raise ValueError(f"ddim_eta must be >= 0, got {self.ddim_eta!r}")

    @classmethod
    def of(cls, value: SamplerSettings | dict | None) -> SamplerSettings:
        """Settings from a mapping of their fields (a YAML file; LightningCLI passes dicts),
        with an unknown field named with the valid ones; None: all unset."""
        if value is None or isinstance(value, SamplerSettings):
            return value or cls()
        moved = sorted(set(value) & set(RULE_KEYS))
        if moved:  # a config (or a checkpoint's hyper-parameters) from before the rule schema
            raise ValueError(
                f"sampling.{', sampling.'.join(moved)} moved to model.rule, an InferenceRule: "
                "a name or a mapping such as {name: yarn, tau_axes: max}"
            )
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"unknown sampler setting(s) {unknown}; valid: {', '.join(names)}")
        interval = value.get("guidance_interval")
        if interval is not None:  # YAML gives a list
            value = {**value, "guidance_interval": tuple(interval)}
        return cls(**value)

    def over(self, base: SamplerSettings) -> SamplerSettings:
        """These settings with every unset field taken from ``base``."""
        return dataclasses.replace(
            base, **{k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        )

    def overrides(self) -> dict:
        """The fields that are set, as ``Sampler.sample`` keywords."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


# The trained modules' defaults (flow matching): Heun with 50 steps, no guidance.
FLOW_SAMPLING = SamplerSettings("heun", 50, 1.0, None, "all", 0.0)
# Official files: DiT's DDPM chain respaced to 250 steps (its sample.py and FID-50K); SiT with
# this suite's Heun, 50 steps (SiT's own ODE default is adaptive dopri5); both with the papers'
# FID-50K guidance 1.5 (4.0 for their figures) on the first 3 latent channels, as they guide.
OFFICIAL_SAMPLING = {
    "dit": SamplerSettings("ddpm", 250, 1.5, None, "dit", 0.0),
    "sit": SamplerSettings("heun", 50, 1.5, None, "dit", 0.0),
}
