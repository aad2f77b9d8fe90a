"""``OfficialModel``: an official DiT or SiT file, sampled at any resolution with any rule.

It has ``DiffusionModule.sample``'s interface (and ``net``, ``ema``, ``resolution``,
``latent_factor``, ``check_resolution``, ``default_rule``, ``decode``), so the eval grid,
``generate_to_folder`` and ``lit-rpe sample --official`` use it in place of a trained module.
It has no ``encode``: the flow-matching validation loss does not apply to these objectives.

- DiT files: DDPM (linear betas, T = 1000, epsilon with learned variance). ``ddpm`` is
  ancestral sampling on a respaced chain (DiT: 250 steps), ``ddim`` is DDIM (eta 0 default).
  The network sees the DDPM timestep; DyPE's t and the guidance interval's t are
  ``timestep / 1000`` (1 = noise), the DDPM step's position on this suite's time axis.
- SiT files: SiT's linear interpolant ``x = t x_data + (1 - t) noise`` (t = 1 data) with
  velocity ``data - noise``. In this suite's time (``t' = 1 - t``, 1 = noise) the velocity is
  ``v' = -v``, so ``sample_ode`` (``euler`` / ``heun``) integrates it unchanged; the sigma
  channels of learn_sigma files are dropped, as SiT's forward does.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from lit_rpe.ddpm import (
    DIT_GUIDED_CHANNELS,
    TRAIN_STEPS,
    DDPMSchedule,
    ddim_sample,
    ddpm_sample,
    guided_net,
    noise_generators,
)
from lit_rpe.flow import sample_ode, seeded_noise
from lit_rpe.models.dit import DiT
from lit_rpe.models.official import check_kind
from lit_rpe.posenc import InferenceRule
from lit_rpe.shapes import as_height_width

LATENT_FACTOR = 8  # SD-VAE
# rpe2d_random positions draw from seed + offset (as DiffusionModule), apart from the noise
POSITION_SEED_OFFSET = 1 << 31
METHODS = {"dit": ("ddpm", "ddim"), "sit": ("euler", "heun")}


@dataclass(frozen=True)
class OfficialSampling:
    """Sampler defaults of an official file (any of them can be overridden per ``sample`` call).

    method / steps: DiT ``ddpm`` with 250 respaced steps (DiT's sample.py and its FID-50K);
    SiT ``heun`` with 50 steps (our ODE sampler; SiT's own ODE default is adaptive dopri5).
    cfg_scale: 1.5, the DiT and SiT papers' FID-50K setting (4.0 for their sample figures).
    cfg_channels: ``dit`` guides the first 3 latent channels as both official ``forward_with_cfg``
    do; ``all`` guides every latent channel. ddim_eta: DDIM's eta.
    """

    method: str
    steps: int
    cfg_scale: float = 1.5
    guidance_interval: tuple[float, float] | None = None
    cfg_channels: Literal["dit", "all"] = "dit"
    ddim_eta: float = 0.0

    @classmethod
    def default(cls, kind: str, **overrides) -> OfficialSampling:
        base = cls("ddpm", 250) if kind == "dit" else cls("heun", 50)
        return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


class OfficialModel(nn.Module):
    """An official DiT/SiT network with its objective; see the module docstring.

    net: the ``DiT`` from ``build_official_net`` (time_scale 1). kind: ``dit`` or ``sit``.
    vae_path: local SD-VAE folder (sd-vae-ft-ema or -mse), needed to return images.
    rule: the default inference rule (``extrapolate``). source: the file, for messages.
    Sampling options: see ``OfficialSampling``.
    """

    def __init__(
        self,
        net: DiT,
        kind: str,
        *,
        vae_path: str | None = None,
        rule: InferenceRule | None = None,
        source: str | None = None,
        method: str | None = None,
        steps: int | None = None,
        cfg_scale: float | None = None,
        guidance_interval: tuple[float, float] | None = None,
        cfg_channels: Literal["dit", "all"] = "dit",
        ddim_eta: float = 0.0,
    ):
        super().__init__()
        self.kind = check_kind(kind)
        if net.time_scale != 1.0:
            raise ValueError("an official network sees its time unscaled: build it time_scale=1")
        if cfg_channels not in ("dit", "all"):
            raise ValueError(f"unknown cfg_channels {cfg_channels!r}; valid: dit, all")
        self.net = net.eval()
        self.vae_path = vae_path
        self.source = source or "official checkpoint"
        self.latent_factor = LATENT_FACTOR
        self.resolution = tuple(n * net.patch_size * LATENT_FACTOR for n in net.train_grid)
        self.sampling_config = OfficialSampling.default(
            kind,
            method=method,
            steps=steps,
            cfg_scale=cfg_scale,
            guidance_interval=guidance_interval,
            cfg_channels=cfg_channels,
            ddim_eta=ddim_eta,
        )
        self._check_method(self.sampling_config.method)
        self._rule = rule or InferenceRule("extrapolate")
        self.schedule = DDPMSchedule.linear(TRAIN_STEPS)
        self._vae = None

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
        """Validate a pixel resolution (and rule) for this file; returns its token grid."""
        h, w = as_height_width(resolution)
        step = self.latent_factor * self.net.patch_size
        if h % step or w % step:
            raise ValueError(
                f"resolution {h}x{w} does not divide the patch grid: it must be a multiple of "
                f"{step} (VAE factor {self.latent_factor} x patch {self.net.patch_size})"
            )
        grid = (h // step, w // step)
        rule = rule or self.default_rule()
        if rule.positions.startswith("rpe2d") and any(
            n > m for n, m in zip(grid, self.net.max_len, strict=True)
        ):
            raise ValueError(
                f"rule {rule.name!r} keeps positions inside the trained {self.net.max_len} grid, "
                f"smaller than the {grid} grid of {h}x{w} px; use a grid rule"
            )
        if self.kind == "dit" and rule.timestep_shift != 1.0:
            raise ValueError(
                "timestep_shift applies to flow sampling (SiT files); DiT's DDPM chain is not "
                "shifted"
            )
        return grid

    # ---------------------------------------------------------------------------------- images

    def _vae_model(self):
        if self._vae is None:
            if not self.vae_path:
                raise ValueError(
                    "sampling images from an official file needs vae_path: a local folder of "
                    "the SD VAE the file was trained with (stabilityai/sd-vae-ft-ema or "
                    "sd-vae-ft-mse, downloaded by hand), e.g. pretrained/sd-vae-ft-ema"
                )
            from lit_rpe.models.vae import SDVAE  # diffusers only when images are made

            self._vae = SDVAE(self.vae_path).to(self.device)
        return self._vae

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, 4, h, w) -> pixels (B, 3, 8h, 8w) in [-1, 1]."""
        with torch.no_grad():
            return self._vae_model().decode(latents)

    @torch.no_grad()
    def sample(
        self,
        labels: torch.Tensor | list[int],
        seeds: list[int],
        *,
        resolution: int | tuple[int, int] | None = None,
        rule: InferenceRule | None = None,
        steps: int | None = None,
        method: str | None = None,
        cfg_scale: float | None = None,
        guidance_interval: tuple[float, float] | None = None,
        use_ema: bool = True,
    ) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1]; arguments as ``sample_latents``. The VAE is loaded
        first, so a missing ``vae_path`` fails before any sampling work."""
        self._vae_model()
        latents = self.sample_latents(
            labels,
            seeds,
            resolution=resolution,
            rule=rule,
            steps=steps,
            method=method,
            cfg_scale=cfg_scale,
            guidance_interval=guidance_interval,
            use_ema=use_ema,
        )
        return self.decode(latents).clamp(-1, 1)

    @torch.no_grad()
    def sample_latents(
        self,
        labels: torch.Tensor | list[int],
        seeds: list[int],
        *,
        resolution: int | tuple[int, int] | None = None,
        rule: InferenceRule | None = None,
        steps: int | None = None,
        method: str | None = None,
        cfg_scale: float | None = None,
        guidance_interval: tuple[float, float] | None = None,
        use_ema: bool = True,
    ) -> torch.Tensor:
        """Latents (B, 4, H/8, W/8) at any pixel resolution (multiple of 8 x patch) with any
        inference rule. Image i starts from ``seeded_noise(seeds[i])`` and (DDPM, DDIM eta > 0)
        draws its per-step noise from its own generator, so it does not depend on the batch.
        Unset options come from ``sampling_config``; use_ema is accepted for interface parity
        (official files hold one set of weights)."""
        cfg = self.sampling_config
        method = method or cfg.method
        self._check_method(method)
        rule = rule or self.default_rule()
        resolution = as_height_width(resolution or self.resolution)
        grid = self.check_resolution(resolution, rule)
        if len(labels) != len(seeds):
            raise ValueError(f"got {len(labels)} labels for {len(seeds)} seeds")
        device, net = self.device, self.net
        labels = torch.as_tensor(labels, dtype=torch.long, device=device)
        pos_seeds = [s + POSITION_SEED_OFFSET for s in seeds]
        pos_h, pos_w = net.rule_positions(rule, len(seeds), grid, seeds=pos_seeds, device=device)
        latent = tuple(r // self.latent_factor for r in resolution)
        noise = seeded_noise(seeds, (net.in_channels, *latent), device=device)
        channels = DIT_GUIDED_CHANNELS if cfg.cfg_channels == "dit" else net.in_channels
        denoise = guided_net(
            net,
            labels,
            num_classes=net.num_classes,
            cfg_scale=cfg.cfg_scale if cfg_scale is None else cfg_scale,
            guided_channels=min(channels, net.in_channels),
            interval=guidance_interval or cfg.guidance_interval,
            rule=rule,
            pos_h=pos_h,
            pos_w=pos_w,
        )
        steps = steps or cfg.steps
        if self.kind == "sit":
            c = net.in_channels

            def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
                return -denoise(x, 1.0 - t, t)[:, :c]  # SiT's t = 1 - t, v = -v_SiT

            shift = rule.shift_factor(
                train_tokens=math.prod(net.train_grid), test_tokens=math.prod(grid)
            )
            return sample_ode(velocity, noise, steps=steps, method=method, shift=shift)

        schedule = self.schedule.respace(steps)

        def eps_model(x: torch.Tensor, index: int) -> torch.Tensor:
            return denoise(x, float(schedule.timestep_map[index]), schedule.rule_t(index))

        if method == "ddim":
            gens = noise_generators(seeds) if cfg.ddim_eta > 0 else None
            return ddim_sample(eps_model, noise, schedule, eta=cfg.ddim_eta, generators=gens)
        return ddpm_sample(eps_model, noise, schedule, generators=noise_generators(seeds))

    def extra_repr(self) -> str:
        h, w = self.resolution
        return f"kind={self.kind}, resolution={h}x{w}, source={self.source}"
