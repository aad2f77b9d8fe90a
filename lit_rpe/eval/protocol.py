"""The protocol card: every setting behind an evaluation number, stored beside the number.

Published FIDs disagree mostly because the settings behind them differ. A ``ProtocolCard``
records them for one evaluated cell: the sampler (method, steps, CFG scale, guided channels,
guidance interval, timestep shift as set and as resolved), the precision, the decoder (VAE
folder and weight hash, or ``pixels``) and latent scale, the sample count and seed, the
reference (its source, image count and statistics-file hash), the Inception weights tag, and
the environment (suite commit, torch version, device).

- ``build_card``: the card of any ``Sampler`` evaluated at one resolution with one rule;
  ``cell_card``: the card of a cell scored with ``lit_rpe.eval.cell`` settings, which the eval
  grid and ``ResolutionEvalCallback`` (training-time metrics) record.
- ``changed_settings``: which settings that define the numbers differ between a stored card and
  the current one (the grid re-scores such a cell instead of reusing it).
- ``compare_cards``: the card most cells share and each cell's deviations from it (the report).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from lit_rpe.eval.metrics.references import (
    CROP,
    adm_reference_count,
    dataset_key,
    reference_cache_path,
)
from lit_rpe.posenc import InferenceRule
from lit_rpe.provenance import device_name, file_sha256, suite_commit
from lit_rpe.resolution import as_height_width
from lit_rpe.sampling.guidance import guided_channel_count
from lit_rpe.sampling.sampler import Sampler
from lit_rpe.sampling.settings import SamplerSettings

if TYPE_CHECKING:  # cell.py imports the metric code; this module stays light
    from lit_rpe.eval.cell import CellSettings

PIXELS = "pixels"  # the decoder of a pixel-space model: its outputs are the images
NO_INCEPTION = "none"  # the Inception tag of offline-only metrics (validation loss, SWD)


@dataclass(frozen=True)
class ReferenceInfo:
    """What generated images were compared with: ``source`` (the validation shards' dataset
    key and crop, or an ADM batch's file name), ``images`` (how many), ``sha256`` (of the
    statistics file used; "" when there is none, as for the offline metrics)."""

    source: str
    images: int
    sha256: str = ""


def computed_reference(
    shards: str | Sequence[str],
    resolution: int | tuple[int, int],
    num_images: int,
    *,
    cache_dir: str | Path | None = None,
    weights_tag: str | None = None,
) -> ReferenceInfo:
    """The validation images centre-cropped at ``resolution`` (``lit_rpe.eval.metrics.references``).
    With ``cache_dir`` and ``weights_tag`` the hash is that of the cached Inception statistics
    file, when it exists yet; without them (offline metrics) there is no statistics file."""
    sha = ""
    if cache_dir is not None and weights_tag is not None:
        path = reference_cache_path(cache_dir, shards, resolution, num_images, weights_tag)
        sha = file_sha256(path) if path.is_file() else ""
    return ReferenceInfo(f"{dataset_key(shards)} {CROP}", num_images, sha)


def adm_reference(npz_path: str | Path) -> ReferenceInfo:
    """An ADM reference batch (``VIRTUAL_imagenet256_labeled.npz``...): name, count and hash."""
    path = Path(npz_path)
    return ReferenceInfo(f"ADM {path.name}", adm_reference_count(path), file_sha256(path))


@dataclass(frozen=True)
class ProtocolCard:
    """The settings behind one evaluated number (see the module docstring).

    guided_channels: ``all`` or ``first <k>`` output channels guided by CFG.
    guidance_interval: (t_lo, t_hi) where CFG applies, None: every step. timestep_shift: the
    rule's setting (a number or ``auto``); shift_factor: its value at this resolution.
    vae: the VAE folder or ``pixels``; vae_sha256: sha256 of its weight file ("" for pixels);
    latent_scale: the latents' scale factor (1 for pixels). reference / reference_images /
    reference_sha256: ``ReferenceInfo``. inception: the Inception weights tag
    (``inception_weights.weights_tag``) or ``none``.
    """

    sampler: str
    steps: int
    cfg_scale: float
    guided_channels: str
    guidance_interval: tuple[float, float] | None
    timestep_shift: float | str
    shift_factor: float
    precision: str
    vae: str
    vae_sha256: str
    latent_scale: float
    num_samples: int
    seed: int
    reference: str
    reference_images: int
    reference_sha256: str
    inception: str
    suite_commit: str
    torch: str
    device: str

    def as_dict(self) -> dict:
        """JSON-ready fields (metrics.json's ``"protocol"``)."""
        data = dataclasses.asdict(self)
        if self.guidance_interval is not None:
            data["guidance_interval"] = list(self.guidance_interval)
        return data

    def as_row(self) -> dict[str, str | int | float]:
        """Flat scalar fields for a CSV row (the interval as ``[lo, hi]`` or ``none``)."""
        row = dataclasses.asdict(self)
        interval = self.guidance_interval
        row["guidance_interval"] = "none" if interval is None else f"[{interval[0]}, {interval[1]}]"
        return row

    @classmethod
    def from_dict(cls, data: Mapping) -> ProtocolCard:
        """Read ``as_dict`` back; ValueError naming missing or unknown fields."""
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in data]
        unknown = sorted(set(data) - set(names))
        if missing or unknown:
            raise ValueError(f"not a protocol card: missing {missing}, unknown {unknown}")
        values = dict(data)
        if values["guidance_interval"] is not None:
            values["guidance_interval"] = tuple(values["guidance_interval"])
        return cls(**values)


CARD_FIELDS = tuple(f.name for f in dataclasses.fields(ProtocolCard))
# The settings that define a cell's numbers: a stored cell whose card differs in one of them is
# scored again. Left out: where things are (the VAE folder), the environment (commit, torch,
# device), and the reference file's hash, since a cache rebuilt from the same images and
# weights can differ in its last bits and must not void every finished cell.
DEFINING_FIELDS = (
    "sampler", "steps", "cfg_scale", "guided_channels", "guidance_interval", "timestep_shift",
    "shift_factor", "precision", "vae_sha256", "latent_scale", "num_samples", "seed",
    "reference", "reference_images", "inception",
)  # fmt: skip
# The settings that define the generated images: images made under others are made again.
# (num_samples is not one: image i depends on seed + i only.)
GENERATION_FIELDS = (
    "sampler", "steps", "cfg_scale", "guided_channels", "guidance_interval", "timestep_shift",
    "shift_factor", "precision", "vae_sha256", "latent_scale", "seed",
)  # fmt: skip
# Fields that differ between the cells of one grid by design (the rule and the resolution set
# them); the report shows them in results.csv and does not flag them.
PER_CELL_FIELDS = ("timestep_shift", "shift_factor", "reference_sha256")


def decoder_fields(module: Sampler) -> tuple[str, str, float]:
    """(vae folder or ``pixels``, weight sha256 or "", latent scale) of a sampler."""
    if module.latent_factor == 1:
        return PIXELS, "", 1.0
    from lit_rpe.models.vae import vae_fingerprint  # diffusers: only for latent models

    fingerprint = vae_fingerprint(module.vae.folder())
    return fingerprint.folder, fingerprint.weights_sha256, fingerprint.scale_factor


def build_card(
    module: Sampler,
    *,
    rule: InferenceRule,
    resolution: int | tuple[int, int],
    options: SamplerSettings,
    precision: str,
    num_samples: int,
    seed: int,
    reference: ReferenceInfo,
    inception_tag: str | None,
) -> ProtocolCard:
    """The card of ``module`` sampled with ``rule`` at ``resolution`` (pixels) under the
    effective sampler ``options`` (``module.sampler_options(...)``). precision: the precision
    the images were generated in (the one argument that sets the card's field); num_samples /
    seed: images i = 0..num_samples-1 with seed ``seed + i``; reference: what they were
    compared with; inception_tag: the Inception weights tag, None for offline metrics only.
    Raises ``RuleNotApplicable`` / ``ValueError`` as ``module.check_resolution`` does."""
    grid = module.check_resolution(as_height_width(resolution), rule)
    channels = guided_channel_count(options.cfg_channels)
    vae, vae_sha, scale = decoder_fields(module)
    interval = options.guidance_interval
    return ProtocolCard(
        sampler=options.method,
        steps=int(options.steps),
        cfg_scale=float(options.cfg_scale),
        guided_channels="all" if channels is None else f"first {channels}",
        guidance_interval=None if interval is None else (float(interval[0]), float(interval[1])),
        timestep_shift=rule.timestep_shift,
        shift_factor=module.shift_factor(rule, grid),
        precision=precision,
        vae=vae,
        vae_sha256=vae_sha,
        latent_scale=scale,
        num_samples=int(num_samples),
        seed=int(seed),
        reference=reference.source,
        reference_images=int(reference.images),
        reference_sha256=reference.sha256,
        inception=inception_tag or NO_INCEPTION,
        suite_commit=suite_commit(),
        torch=torch.__version__,
        device=device_name(module.device),
    )


def cell_reference(
    settings: CellSettings, resolution: tuple[int, int], inception_tag: str | None
) -> ReferenceInfo:
    """The reference of a cell: the ADM batch named for its resolution, else the validation
    shards (their cached Inception statistics when Inception metrics run)."""
    h, w = resolution
    adm = (settings.eval.adm_references or {}).get(f"{h}x{w}")
    if inception_tag is not None and adm:
        return adm_reference(adm)
    cache = settings.eval.reference_cache if inception_tag is not None else None
    return computed_reference(
        settings.val_shards,
        resolution,
        settings.eval.reference_count,
        cache_dir=cache,
        weights_tag=inception_tag,
    )


def cell_card(
    settings: CellSettings,
    module: Sampler,
    rule: InferenceRule,
    resolution: tuple[int, int],
    *,
    inception_tag: str | None,
) -> ProtocolCard:
    """``build_card`` for one cell scored under ``settings`` (an eval grid's or the training
    callback's): their sampler settings over the model's own, precision, sample count and
    seed, and ``cell_reference``. inception_tag: ``MetricPlan.inception_tag``."""
    return build_card(
        module,
        rule=rule,
        resolution=resolution,
        options=module.sampler_options(**settings.sample_kwargs),
        precision=settings.precision.name,
        num_samples=settings.eval.num_images,
        seed=settings.eval.seed,
        reference=cell_reference(settings, resolution, inception_tag),
        inception_tag=inception_tag,
    )


def changed_settings(
    stored: Mapping | None, current: ProtocolCard, fields: Sequence[str] = DEFINING_FIELDS
) -> list[str]:
    """The ``fields`` in which a finished cell's stored card (metrics.json's ``"protocol"``)
    differs from ``current``; ``["protocol"]`` when none (or no readable one) was stored, since
    such a cell's settings cannot be checked."""
    if stored is None:
        return ["protocol"]
    try:
        card = ProtocolCard.from_dict(stored)
    except (ValueError, TypeError):
        return ["protocol"]
    return [f for f in fields if getattr(card, f) != getattr(current, f)]


@dataclass(frozen=True)
class CardComparison:
    """``shared``: for each compared field, the value most cards hold (``as_row`` form; ties
    go to the first seen). ``differences[i]``: card i's fields that differ from ``shared``,
    with its values; ``{"protocol": "not recorded"}`` for a cell without a card."""

    shared: dict[str, str | int | float]
    differences: list[dict[str, str | int | float]]


def compare_cards(
    cards: Sequence[ProtocolCard | None], *, per_cell: Sequence[str] = PER_CELL_FIELDS
) -> CardComparison:
    """The shared card of many cells and each cell's deviations; ``per_cell`` fields (which
    vary between cells by design) are left out of both."""
    fields = [f for f in CARD_FIELDS if f not in per_cell]
    rows = [None if card is None else card.as_row() for card in cards]
    shared = {}
    for field in fields:
        counts = Counter(row[field] for row in rows if row is not None)
        if counts:
            shared[field] = counts.most_common(1)[0][0]
    differences = []
    for row in rows:
        if row is None:
            differences.append({"protocol": "not recorded"})
        else:
            differences.append({f: row[f] for f in shared if row[f] != shared[f]})
    return CardComparison(shared, differences)
