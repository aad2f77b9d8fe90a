"""The sampler interface: what generation, the eval grid, the callbacks and ``lit-rpe sample``
need from a model, and the sampling policies they share.

Two classes implement ``Sampler``: ``DiffusionModule`` (trained here, flow matching) and
``OfficialModel`` (official DiT / SiT files, their own objectives). Each supplies the parts that
differ (its networks, its default rule, ``integrate``: noise -> latents); ``Sampler`` supplies
the rest once:

- **Resolution check.** A resolution must divide the patch grid (``token_grid``: a plain
  ``ValueError``, bad input). A rule that cannot run at a valid resolution raises
  ``RuleNotApplicable`` (``rpe2d_*`` beyond the trained positions), which the eval grid lists
  as "not evaluated".
- **Seeds.** Image i of a seed-indexed set has noise seed ``seed + i`` and label
  ``i % num_classes`` (``seeds_and_labels``); its ``rpe2d_random`` positions draw from
  ``seed + POSITION_SEED_OFFSET``. Its noise is ``seeded_noise(seed)``, so an image does not
  depend on the batch, the rank or the number of processes it is generated in.
- **Images.** ``sample`` = the latents (``sample_latents``) then ``decode`` with the SD-VAE,
  loaded from its local folder on first use (``LazyVAE``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partialmethod
from typing import TYPE_CHECKING, Protocol

import torch

from lit_rpe.objectives.flow.noise import seeded_noise
from lit_rpe.posenc import InferenceRule
from lit_rpe.resolution import LATENT_CHANNELS, LATENT_FACTOR, as_height_width
from lit_rpe.sampling.settings import SamplerSettings

if TYPE_CHECKING:
    from lit_rpe.models.dit import DiT
    from lit_rpe.models.vae import SDVAE

__all__ = [
    "LATENT_CHANNELS",
    "LATENT_FACTOR",
    "POSITION_SEED_OFFSET",
    "LazyVAE",
    "RuleNotApplicable",
    "Sampler",
    "SamplingStart",
    "check_rule",
    "seeds_and_labels",
    "token_grid",
]

# Positions of rpe2d_random draw from seed + offset: reusing the noise seed would correlate them.
POSITION_SEED_OFFSET = 1 << 31


class RuleNotApplicable(ValueError):
    """An inference rule that cannot run at a (valid) resolution on this model: ``rpe2d_*``
    beyond the trained positions, a timestep shift on a DDPM chain."""


def token_grid(
    resolution: int | Sequence[int], *, latent_factor: int, patch_size: int
) -> tuple[int, int]:
    """(rows, cols) of tokens of a pixel resolution; ``ValueError`` unless it divides the grid."""
    h, w = as_height_width(resolution)
    step = latent_factor * patch_size
    if h % step or w % step:
        raise ValueError(
            f"resolution {h}x{w} does not divide the patch grid: it must be a multiple of "
            f"{step} (VAE factor {latent_factor} x patch {patch_size})"
        )
    return h // step, w // step


def check_rule(
    rule: InferenceRule, grid: tuple[int, int], *, max_len: tuple[int, int], step: int
) -> None:
    """``RuleNotApplicable`` when ``rule`` places positions only inside ``max_len`` (``rpe2d_*``)
    and the token ``grid`` is larger. step: pixels per token, for the message."""
    if rule.positions.startswith("rpe2d") and any(
        n > m for n, m in zip(grid, max_len, strict=True)
    ):
        h, w = (n * step for n in grid)
        max_px = tuple(m * step for m in max_len)
        raise RuleNotApplicable(
            f"{h}x{w} px needs a {grid[0]}x{grid[1]} token grid, beyond this model's rpe2d "
            f"max_len {tuple(max_len)} (at most {max_px[0]}x{max_px[1]} px with rule "
            f"{rule.name!r}); train with a larger net.max_len or use a grid rule"
        )


def seeds_and_labels(
    indices: Iterable[int], *, seed: int, num_classes: int
) -> tuple[list[int], list[int]]:
    """The seed-indexed policy: image i gets noise seed ``seed + i`` and label
    ``i % num_classes``. Returns (labels, seeds), in the order of ``indices``."""
    indices = list(indices)
    return [i % num_classes for i in indices], [seed + i for i in indices]


class LazyVAE:
    """The SD-VAE of a sampler, loaded from its local folder on first use (diffusers is imported
    only then). A plain object, not a submodule: it is never part of a state dict or checkpoint.
    """

    def __init__(self, path: str | None):
        self.path = path
        self._vae: SDVAE | None = None

    def folder(self) -> str:
        """The VAE's folder; ``ValueError`` saying what to pass when there is none."""
        if not self.path:
            raise ValueError(
                "decoding latents needs vae_path: a local folder of the SD VAE the model was "
                "trained with (stabilityai/sd-vae-ft-ema or sd-vae-ft-mse, downloaded by "
                "hand), e.g. pretrained/sd-vae-ft-ema"
            )
        return self.path

    def get(self, device: torch.device) -> SDVAE:
        if self._vae is None:
            from lit_rpe.models.vae import SDVAE

            self._vae = SDVAE(self.folder())
        return self._vae.to(device)


@dataclass(frozen=True)
class SamplingStart:
    """What every sampler starts from: ``net`` (EMA or raw weights), the images' ``seeds`` and
    ``labels`` (B,) long, ``noise`` (B, C, h, w) at t = 1, the ``rule`` with its positions
    ``pos_h`` (B, rows) / ``pos_w`` (B, cols) on the token ``grid``, and ``shift``, the rule's
    timestep-shift factor."""

    net: DiT
    seeds: tuple[int, ...]
    labels: torch.Tensor
    noise: torch.Tensor
    rule: InferenceRule
    pos_h: torch.Tensor
    pos_w: torch.Tensor
    grid: tuple[int, int]
    shift: float


class Sampler(Protocol):
    """A class-conditional image generator at any resolution with any inference rule.

    Attributes: ``net`` / ``ema`` (the ``DiT`` and the weights sampled by default),
    ``resolution`` (training (H, W) in pixels), ``latent_factor`` (8 with the SD-VAE, 1 in pixel
    space), ``sampling_config`` (its ``SamplerSettings``, every field set: the per-call
    defaults), ``vae`` (``LazyVAE``), and
    ``supports_validation_loss``: whether the flow-matching validation loss applies (it needs
    ``encode`` and a flow-matching objective). Implementers write ``default_rule`` and
    ``integrate``; the methods with a body here are shared.
    """

    # Annotations only: a property here would shadow the implementers' own attributes.
    net: DiT
    ema: DiT
    device: torch.device
    resolution: tuple[int, int]
    latent_factor: int
    sampling_config: SamplerSettings
    vae: LazyVAE
    supports_validation_loss: bool

    def default_rule(self) -> InferenceRule:
        """The rule used when a call names none."""
        ...

    def integrate(self, start: SamplingStart, options: SamplerSettings) -> torch.Tensor:
        """Noise -> latents (B, C, h, w) with this model's objective and sampler."""
        ...

    def check_resolution(
        self, resolution: int | Sequence[int], rule: InferenceRule | None = None
    ) -> tuple[int, int]:
        """Validate a pixel resolution and rule for this model; returns its token grid.

        ``ValueError`` when the resolution does not divide the patch grid, ``RuleNotApplicable``
        when the rule (default: ``default_rule()``) cannot run there."""
        grid = token_grid(
            resolution, latent_factor=self.latent_factor, patch_size=self.net.patch_size
        )
        check_rule(
            rule or self.default_rule(),
            grid,
            max_len=self.net.max_len,
            step=self.latent_factor * self.net.patch_size,
        )
        return grid

    def sampler_options(self, **overrides) -> SamplerSettings:
        """The settings a ``sample`` call with these ``SamplerSettings`` fields uses: each unset
        one (None; a cfg_scale of 0 is a setting) from ``sampling_config``."""
        return SamplerSettings(**overrides).over(self.sampling_config)

    def shift_factor(self, rule: InferenceRule, grid: tuple[int, int]) -> float:
        """The timestep-shift factor of ``rule`` on a token ``grid`` of this model (the trained
        grid's token count against the target's)."""
        return rule.shift_factor(
            train_tokens=math.prod(self.net.train_grid), test_tokens=math.prod(grid)
        )

    def sampling_start(
        self,
        labels: torch.Tensor | Sequence[int],
        seeds: Sequence[int],
        resolution: int | Sequence[int] | None,
        rule: InferenceRule | None,
        use_ema: bool,
    ) -> SamplingStart:
        """Check the request and draw its noise and positions (see the module docstring)."""
        if len(labels) != len(seeds):
            raise ValueError(f"got {len(labels)} labels for {len(seeds)} seeds")
        rule = rule or self.default_rule()
        resolution = as_height_width(resolution or self.resolution)
        grid = self.check_resolution(resolution, rule)
        net, device = (self.ema if use_ema else self.net), self.device
        pos_seeds = [s + POSITION_SEED_OFFSET for s in seeds]
        pos_h, pos_w = net.rule_positions(rule, len(seeds), grid, seeds=pos_seeds, device=device)
        latent = tuple(r // self.latent_factor for r in resolution)
        return SamplingStart(
            net=net,
            seeds=tuple(int(s) for s in seeds),
            labels=torch.as_tensor(labels, dtype=torch.long, device=device),
            noise=seeded_noise(seeds, (net.in_channels, *latent), device=device),
            rule=rule,
            pos_h=pos_h,
            pos_w=pos_w,
            grid=grid,
            shift=self.shift_factor(rule, grid),
        )

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Model outputs (B, C, h, w) -> pixels (B, 3, h f, w f) in [-1, 1] with the VAE; a
        pixel-space model's outputs are its pixels."""
        if self.latent_factor == 1:
            return latents
        with torch.no_grad():
            return self.vae.get(self.device).decode(latents)

    @torch.no_grad()
    def sample(
        self,
        labels: torch.Tensor | Sequence[int],
        seeds: Sequence[int],
        *,
        resolution: int | Sequence[int] | None = None,
        rule: InferenceRule | None = None,
        steps: int | None = None,
        method: str | None = None,
        cfg_scale: float | None = None,
        guidance_interval: tuple[float, float] | None = None,
        cfg_channels: str | None = None,
        ddim_eta: float | None = None,
        use_ema: bool = True,
        decode: bool = True,
    ) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] at any pixel resolution that divides the patch grid,
        with any applicable rule; with ``decode=False`` (``sample_latents``) the latents
        (B, C, H / latent_factor, W / latent_factor).

        labels: (B,) classes; seeds: B ints, image i starts from ``seeded_noise(seeds[i])``.
        steps ... ddim_eta: ``SamplerSettings`` fields; unset ones come from
        ``sampling_config``. use_ema=False samples the raw weights (official files hold one set).
        The VAE is loaded first, so a missing ``vae_path`` fails before any sampling work.
        """
        if decode and self.latent_factor > 1:
            self.vae.get(self.device)
        options = self.sampler_options(
            steps=steps,
            method=method,
            cfg_scale=cfg_scale,
            guidance_interval=guidance_interval,
            cfg_channels=cfg_channels,
            ddim_eta=ddim_eta,
        )
        start = self.sampling_start(labels, seeds, resolution, rule, use_ema)
        latents = self.integrate(start, options)
        return self.decode(latents).clamp(-1, 1) if decode else latents

    sample_latents = partialmethod(sample, decode=False)
