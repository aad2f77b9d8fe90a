"""``OfficialModel``: an official DiT or SiT file, sampled at any resolution with any rule.

It implements ``lit_rpe.sampling.sampler.Sampler``, so the eval grid, ``generate_to_folder`` and
``lit-rpe sample --official`` use it in place of a trained module. The flow-matching validation
loss does not apply to these objectives (``supports_validation_loss`` is False).

- DiT files: DDPM (linear betas, T = 1000, epsilon with learned variance). ``ddpm`` is
  ancestral sampling on a respaced chain (DiT: 250 steps), ``ddim`` is DDIM (eta 0 default).
  The network sees the DDPM timestep; DyPE's t and the guidance interval's t are
  ``timestep / 1000`` (1 = noise), the DDPM step's position on this suite's time axis.
- SiT files: SiT's linear interpolant ``x = t x_data + (1 - t) noise`` (t = 1 data) with
  velocity ``data - noise``. In this suite's time (``t' = 1 - t``, 1 = noise) the velocity is
  ``v' = -v``, so ``sample_ode`` (``euler`` / ``heun`` / ``dopri5``) integrates it unchanged;
  ``sde`` is SiT's Euler-Maruyama sampler (``lit_rpe.objectives.flow.sde``); the sigma channels of
  learn_sigma files are dropped, as SiT's forward does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lit_rpe.models.dit import DiT
from lit_rpe.objectives.ddpm.samplers import ddim_sample, ddpm_sample, noise_generators, step_noise
from lit_rpe.objectives.ddpm.schedule import TRAIN_STEPS, DDPMSchedule
from lit_rpe.objectives.flow.samplers import sample_ode
from lit_rpe.official.dit_sit_net import build_official_net, check_kind
from lit_rpe.posenc import InferenceRule
from lit_rpe.sampling.guidance import guided_channel_count, guided_denoiser
from lit_rpe.sampling.sampler import (
    LATENT_FACTOR,
    LazyVAE,
    RuleNotApplicable,
    Sampler,
    SamplingStart,
)
from lit_rpe.sampling.settings import (
    DDPM_METHODS,
    FLOW_METHODS,
    OFFICIAL_SAMPLING,
    SDE_METHODS,
    SamplerSettings,
)

METHODS = {"dit": DDPM_METHODS, "sit": FLOW_METHODS + SDE_METHODS}


class OfficialModel(nn.Module, Sampler):
    """An official DiT/SiT network with its objective; see the module docstring.

    net: the ``DiT`` from ``build_official_net`` (time_scale 1). kind: ``dit`` or ``sit``.
    vae_path: local SD-VAE folder (sd-vae-ft-ema or -mse), needed to return images.
    rule: the default inference rule (``extrapolate``). source: the file, for messages.
    sampling: ``SamplerSettings`` fields (method, steps, cfg_scale, guidance_interval,
    cfg_channels, ddim_eta) replacing the file's defaults (``OFFICIAL_SAMPLING``).
    """

    supports_validation_loss = False

    def __init__(
        self,
        net: DiT,
        kind: str,
        *,
        vae_path: str | None = None,
        rule: InferenceRule | None = None,
        source: str | None = None,
        **sampling,
    ):
        super().__init__()
        self.kind = check_kind(kind)
        if net.time_scale != 1.0:
            raise ValueError("an official network sees its time unscaled: build it time_scale=1")
        self.net = net.eval()
        self.vae = LazyVAE(vae_path)
        self.source = source or "official checkpoint"
        self.latent_factor = LATENT_FACTOR
        self.resolution = tuple(n * net.patch_size * LATENT_FACTOR for n in net.train_grid)
        self.sampling_config = SamplerSettings(**sampling).over(OFFICIAL_SAMPLING[self.kind])
        self._check_method(self.sampling_config.method)
        self._rule = rule or InferenceRule("extrapolate")
        self.schedule = DDPMSchedule.linear(TRAIN_STEPS)

    @property
    def ema(self) -> DiT:
        """The same network as ``net`` (official files hold the EMA weights)."""
        return self.net

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def _check_method(self, method: str) -> None:
        if method not in METHODS[self.kind]:
            raise ValueError(
                f"unknown method {method!r} for an official {self.kind} file; valid: "
                f"{', '.join(METHODS[self.kind])}"
            )

    # ---------------------------------------------------------------------------------- checks

    def default_rule(self) -> InferenceRule:
        return self._rule

    def check_resolution(self, resolution, rule: InferenceRule | None = None) -> tuple[int, int]:
        """``Sampler.check_resolution``; a DiT file's DDPM chain also takes no timestep shift."""
        grid = super().check_resolution(resolution, rule)
        if self.kind == "dit" and (rule or self.default_rule()).timestep_shift != 1.0:
            raise RuleNotApplicable(
                "timestep_shift applies to flow sampling (SiT files); DiT's DDPM chain is not "
                "shifted"
            )
        return grid

    # -------------------------------------------------------------------------------- sampling

    def integrate(self, start: SamplingStart, options: SamplerSettings) -> torch.Tensor:
        """The file's own objective: SiT's interpolant through ``sample_ode``, DiT's DDPM chain
        (respaced to ``steps``) through ``ddpm_sample`` / ``ddim_sample``. DDPM and DDIM with
        eta > 0 draw each image's per-step noise from a generator of its own seed."""
        self._check_method(options.method)
        net = start.net
        denoise = guided_denoiser(
            net,
            start.labels,
            num_classes=net.num_classes,
            cfg_scale=options.cfg_scale,
            guided_channels=guided_channel_count(options.cfg_channels),
            interval=options.guidance_interval,
            rule=start.rule,
            pos_h=start.pos_h,
            pos_w=start.pos_w,
        )
        if self.kind == "sit":
            c = net.in_channels
            official_cfg = options.cfg_scale != 1.0 and options.guidance_interval is None
            guided = guided_channel_count(options.cfg_channels)
            if options.method == "dopri5" and official_cfg and guided:
                from lit_rpe.official.ode import sample_official_adaptive

                return sample_official_adaptive(
                    start,
                    cfg_scale=options.cfg_scale,
                    guided_channels=guided,
                    steps=options.steps,
                )

            def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
                return -denoise(x, 1.0 - t, t)[:, :c]  # SiT's t = 1 - t, v = -v_SiT

            if options.method == "sde":
                from lit_rpe.objectives.flow.sde import sample_sde

                gens = noise_generators(start.seeds)
                return sample_sde(
                    velocity,
                    start.noise,
                    steps=options.steps,
                    step_noise=lambda like: step_noise(gens, like),
                    shift=start.shift,
                )

            return sample_ode(
                velocity, start.noise, steps=options.steps, method=options.method, shift=start.shift
            )

        schedule = self.schedule.respace(options.steps)

        def eps_model(x: torch.Tensor, index: int) -> torch.Tensor:
            return denoise(x, float(schedule.timestep_map[index]), schedule.rule_t(index))

        eta = options.ddim_eta
        if options.method == "ddim":
            gens = noise_generators(start.seeds) if eta > 0 else None
            return ddim_sample(eps_model, start.noise, schedule, eta=eta, generators=gens)
        gens = noise_generators(start.seeds)
        return ddpm_sample(eps_model, start.noise, schedule, generators=gens)

    def extra_repr(self) -> str:
        h, w = self.resolution
        return f"kind={self.kind}, resolution={h}x{w}, source={self.source}"


def load_official(path: str | Path, kind: str, **kwargs) -> OfficialModel:
    """Load an official DiT (``kind="dit"``), SiT (``"sit"``) or FiT/FiTv2 (``"fit"``,
    ``lit_rpe.official.fit.load_fit``, which also takes ``context_size`` and
    ``ori_max_pe_len``) file as an ``OfficialModel``: the network plus the objective and
    samplers the file was trained for. kwargs go to ``OfficialModel`` (vae_path, rule,
    cfg_channels, cfg_scale, steps, method, ...), except ``num_heads`` (for non-official sizes,
    see ``build_official_net``).
    """
    if kind == "fit":
        from lit_rpe.official.fit import load_fit

        return load_fit(path, **kwargs)
    net = build_official_net(path, kind, num_heads=kwargs.pop("num_heads", None))
    return OfficialModel(net, kind, source=str(path), **kwargs)
