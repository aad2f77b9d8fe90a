"""``EvalSettings``: the one declaration of what an evaluation scores and how.

The eval grid's file (``GridSpec`` adds the models and where the results go) and the training
callback (``ResolutionEvalCallback(settings=...)``) both hold one, read through ``of``: unknown
keys and renamed ones fail naming the valid (or the new) name, rules are ``parse_rule``'s,
the sampler is a ``SamplerSettings``. ``metrics: auto`` means the same everywhere
(``wanted_metrics``): every metric that can be computed: the offline ones always, the
Inception ones when the weight file exists (IS from 10 images on).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from lit_rpe.posenc import InferenceRule, parse_rule
from lit_rpe.resolution import as_height_width
from lit_rpe.sampling.settings import SamplerSettings

OFFLINE_METRICS = ("val_loss", "swd")
INCEPTION_METRICS = ("fid", "sfid", "is", "kid", "precision_recall")
ALL_METRICS = OFFLINE_METRICS + INCEPTION_METRICS
IS_MIN_IMAGES = 10  # the Inception Score's 10 splits
FID_METHODS = ("sqrtm", "eigh")
# Settings that had two names: the old one is refused with the new one in the message.
RENAMED = {"num_samples": "num_images", "reference_images": "num_reference"}


@dataclass(frozen=True, kw_only=True)
class EvalSettings:
    """What is scored (resolutions x rules, metrics) and how (images, sampler, precision).

    resolutions: pixels, int (square) or [H, W] (stored as (H, W)). rules: names or mappings of
    ``InferenceRule`` fields (stored parsed). num_images: generated images per cell (image i:
    seed ``seed + i``, label ``i % classes``). num_reference: reference images per resolution
    (None: num_images). metrics: ``auto`` (see the module docstring) or a list of
    ``ALL_METRICS`` (Inception ones then require the weights). sampler: ``SamplerSettings``
    over each model's own. precision: of sampling and the validation loss, ``auto`` resolved on
    the device (``lit_rpe.precision``). batch_size: images per sampler call and per
    validation-loss batch. val_shards: the validation images (references, validation loss; the
    callback defaults to the data module's). val_loss_images / val_loss_t: the validation-loss
    protocol. num_classes: the label check of the validation shards (None: the model's, or
    their ``classes.json``). inception_weights: a weight file (default: the standard places).
    reference_cache: where reference statistics are cached. fid_method: FID's matrix square
    root (``sqrtm`` as every reference evaluator; ``eigh`` equal for PSD covariances, faster).
    adm_references: ADM reference batches used instead of computed references, keyed "HxW".
    """

    resolutions: list[int | tuple[int, int]]
    rules: list[InferenceRule]
    num_images: int = 64
    num_reference: int | None = None
    metrics: list[str] | Literal["auto"] = "auto"
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    precision: str = "auto"
    batch_size: int = 32
    seed: int = 0
    val_shards: str | list[str] | None = None
    val_loss_images: int = 64
    val_loss_t: int = 8
    num_classes: int | None = None
    inception_weights: str | None = None
    reference_cache: str = "runs/reference_stats"
    fid_method: Literal["sqrtm", "eigh"] = "sqrtm"
    adm_references: dict[str, str] | None = None

    def __post_init__(self) -> None:
        # Stored parsed: (H, W) tuples, InferenceRule objects, SamplerSettings.
        if not self.resolutions or not self.rules:
            raise ValueError("an evaluation needs at least one resolution and one rule")
        parsers = {
            "resolutions": lambda values: [as_height_width(r) for r in values],
            "rules": lambda values: [parse_rule(r) for r in values],
            "sampler": SamplerSettings.of,
        }
        for name, parse in parsers.items():
            try:  # frozen: the parsed form replaces the given one, once
                object.__setattr__(self, name, parse(getattr(self, name)))
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from err
        labels = [r.label for r in self.rules]
        if len(set(labels)) != len(labels) or len(set(self.resolutions)) != len(self.resolutions):
            raise ValueError(f"rules or resolutions repeat: {labels}, {self.resolutions}")
        if self.metrics != "auto":
            unknown = sorted(set(self.metrics) - set(ALL_METRICS))
            if unknown or isinstance(self.metrics, str):
                raise ValueError(
                    f"unknown metric(s) {unknown or self.metrics!r}; "
                    f"valid: auto, {', '.join(ALL_METRICS)}"
                )
            if "is" in self.metrics and self.num_images < IS_MIN_IMAGES:
                raise ValueError(f"IS needs at least 10 images (10 splits), got {self.num_images}")
        if self.num_images < 2 or self.batch_size < 1 or (self.num_reference or 2) < 2:
            raise ValueError(
                f"need num_images >= 2, num_reference >= 2, batch_size >= 1; got "
                f"{self.num_images}, {self.num_reference}, {self.batch_size}"
            )
        if self.val_loss_images < 1 or self.val_loss_t < 1:
            raise ValueError(
                f"need val_loss_images >= 1 and val_loss_t >= 1, got {self.val_loss_images} "
                f"and {self.val_loss_t}"
            )
        from lit_rpe.precision import PRECISION_REQUESTS  # Lightning: not when merely imported

        if self.precision not in PRECISION_REQUESTS:
            raise ValueError(
                f"unknown precision {self.precision!r}; valid: {', '.join(PRECISION_REQUESTS)}"
            )
        if self.fid_method not in FID_METHODS:
            raise ValueError(
                f"unknown fid_method {self.fid_method!r}; valid: {', '.join(FID_METHODS)}"
            )

    @classmethod
    def of(cls, value: Mapping | EvalSettings, where: str = "eval settings"):
        """Settings of this class from a mapping (a YAML file, LightningCLI's dict); an unknown
        or renamed key fails naming the valid keys or the new name."""
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"{where} must be a mapping, got {value!r}")
        renamed = [f"{old} is now {RENAMED[old]}" for old in value if old in RENAMED]
        if renamed:
            raise ValueError(f"{where}: {'; '.join(renamed)}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"unknown key(s) {unknown} in {where}; valid: {', '.join(names)}")
        missing = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and f.name not in value
        ]
        if missing:
            raise ValueError(f"{where}: missing key(s) {missing}")
        try:
            return cls(**value)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from err

    @property
    def reference_count(self) -> int:
        """Reference images per resolution."""
        return self.num_reference or self.num_images

    @property
    def wanted_metrics(self) -> tuple[str, ...]:
        """The metrics to compute: ``auto`` -> every metric (IS from 10 images on; the
        Inception ones are dropped later when no weight file exists, ``cell.plan_metrics``)."""
        if self.metrics != "auto":
            return tuple(self.metrics)
        few = self.num_images < IS_MIN_IMAGES
        return tuple(m for m in ALL_METRICS if not (few and m == "is"))

    @property
    def cells(self) -> list[tuple[tuple[int, int], InferenceRule]]:
        """(resolution, rule) pairs, resolution-major (a resolution's references serve all its
        rules in a row)."""
        return [(res, rule) for res in self.resolutions for rule in self.rules]
