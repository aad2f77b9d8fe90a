"""One evaluation cell: a sampler at one resolution under one rule, scored with every metric.

The eval grid (``lit_rpe.eval.grid.run``) and the training callback
(``lit_rpe.training.callbacks.ResolutionEvalCallback``) both score their cells with ``score_cell``:
- **Images** arrive as this rank's fixed chunks (``lit_rpe.eval.generation``): sampled in
  memory (``generate_chunks``, the callback) or read back from the grid's cell folder
  (``read_chunks``).
- **Per image**, each chunk gives its Inception features (pool, spatial, logits) and SWD
  descriptors. The rows of all ranks are gathered once, in index order, so every statistic is
  computed from the same rows in the same order whatever the number of processes.
- **References** come from ``lit_rpe.eval.metrics.references``: Inception statistics cached on
  disk per resolution (or ADM's batches), SWD descriptors of the validation images cached in memory.
- **Validation loss**: ``lit_rpe.eval.metrics.val_loss`` on the same validation images.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from lit_rpe.distributed import gather_in_index_order
from lit_rpe.eval.generation import ImageChunk
from lit_rpe.eval.metrics.references import (
    image_features,
    import_adm_reference,
    reference_features,
    reference_swd_descriptors,
)
from lit_rpe.eval.metrics.scores import inception_score, kernel_inception_distance, precision_recall
from lit_rpe.eval.metrics.statistics import (
    FeatureStatistics,
    FrechetResult,
    fid_result_from_statistics,
)
from lit_rpe.eval.metrics.swd import (
    descriptor_row_width,
    descriptor_rows,
    laplacian_descriptors,
    pyramid_resolutions,
    rows_to_descriptors,
    swd_from_descriptors,
)
from lit_rpe.eval.metrics.val_loss import flow_validation_loss
from lit_rpe.eval.settings import INCEPTION_METRICS, EvalSettings
from lit_rpe.posenc import InferenceRule
from lit_rpe.precision import ResolvedPrecision
from lit_rpe.resolution import as_height_width
from lit_rpe.sampling.sampler import Sampler
from lit_rpe.training.data.validation_images import validation_batches


@dataclass(frozen=True)
class CellSettings:
    """``EvalSettings`` resolved for one run (a grid's or the callback's): ``eval`` itself, the
    ``val_shards`` it reads (the callback's default: the data module's), its ``precision``
    resolved on the device (``lit_rpe.precision.resolve_precision``; the protocol card records
    its short name) and ``num_classes``, the label check of the validation shards (None: their
    ``classes.json``)."""

    eval: EvalSettings
    val_shards: str | tuple[str, ...]
    precision: ResolvedPrecision
    num_classes: int | None = None

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return self.precision.autocast_dtype

    @property
    def sample_kwargs(self) -> dict:
        """The sampler options that override the model's (``module.sample`` keywords)."""
        return self.eval.sampler.overrides()


@dataclass(frozen=True)
class MetricPlan:
    """The metrics a run computes: ``wanted`` (names of ``settings.ALL_METRICS``); the FID
    ``inception`` network and its cache tag when any of them needs it; ``dropped``: Inception
    metrics asked for (by ``auto``) but skipped because no weight file was found."""

    wanted: tuple[str, ...]
    inception: torch.nn.Module | None = None
    weights_tag: str = ""
    dropped: tuple[str, ...] = ()

    @property
    def inception_tag(self) -> str | None:
        """The Inception weights tag of the protocol card; None for offline metrics only."""
        return self.weights_tag if self.inception is not None else None


@dataclass(frozen=True)
class CellScores:
    """A cell's numbers: ``metrics`` (name -> value) and, for FID and sFID, the
    ``FrechetResult`` saying whether the matrix square root was retried."""

    metrics: dict[str, float]
    frechet: dict[str, FrechetResult] = field(default_factory=dict)


def plan_metrics(settings: EvalSettings) -> MetricPlan:
    """The metrics of ``settings`` (``wanted_metrics``), with the Inception network loaded when
    one of them needs it. Without a weight file: under ``metrics: auto`` the Inception metrics
    are dropped (``MetricPlan.dropped``), otherwise FileNotFoundError says which file to put
    where (``missing_weights_message``)."""
    from lit_rpe.eval.metrics.inception_weights import resolve_inception_weights, weights_tag

    wanted = settings.wanted_metrics
    needs = tuple(m for m in wanted if m in INCEPTION_METRICS)
    if not needs:
        return MetricPlan(tuple(wanted))
    try:
        path = resolve_inception_weights(settings.inception_weights)
    except FileNotFoundError:
        if settings.metrics != "auto":
            raise
        return MetricPlan(tuple(m for m in wanted if m not in needs), dropped=needs)
    from lit_rpe.eval.metrics.inception import FIDInceptionV3

    return MetricPlan(tuple(wanted), FIDInceptionV3(path), weights_tag(path))


def image_rows(
    chunks: Iterable[ImageChunk], plan: MetricPlan, resolution: tuple[int, int], seed: int
) -> dict[str, torch.Tensor]:
    """Per-image rows of every rank's chunks, in index order: ``swd`` (descriptors) when SWD is
    wanted, and the Inception features (``pool``, ``spatial``, ``logits_unbiased``). Without
    image metrics the chunks are not consumed (a generator then samples nothing)."""
    widths = {}
    if "swd" in plan.wanted:
        widths["swd"] = descriptor_row_width(resolution)
    if plan.inception is not None:
        from lit_rpe.eval.metrics.inception import FEATURE_DIMS

        widths.update(FEATURE_DIMS)
        if not plan.inception.has_logits:
            del widths["logits_unbiased"]
    if not widths:
        return {}
    indices, rows = [], []
    for chunk, images in chunks:
        parts = {}
        if "swd" in widths:  # on the CPU: the same numbers wherever the images were sampled
            described = laplacian_descriptors(images.cpu(), seed=seed, first_index=chunk.start)
            parts["swd"] = descriptor_rows(described, len(chunk))
        if plan.inception is not None:
            parts.update(image_features(plan.inception, images))
        rows.append(torch.cat([parts[name] for name in widths], 1))
        indices += chunk
    local = torch.cat(rows) if rows else torch.empty(0, sum(widths.values()))
    gathered = gather_in_index_order(indices, local)
    return dict(zip(widths, gathered.split(list(widths.values()), dim=1), strict=True))


def cell_validation_loss(
    module: Sampler, rule: InferenceRule, resolution: tuple[int, int], settings: CellSettings
) -> float:
    """The flow-matching validation loss of the cell (``flow_validation_loss``)."""
    batches = validation_batches(
        _shards(settings),
        resolution,
        settings.eval.val_loss_images,
        batch_size=settings.eval.batch_size,
        num_classes=settings.num_classes,
    )
    loss = flow_validation_loss(
        module,
        batches,
        rule=rule,
        num_t=settings.eval.val_loss_t,
        seed=settings.eval.seed,
        autocast_dtype=settings.autocast_dtype,
    )
    return loss["val_loss"]


def inception_metrics(
    fake: dict[str, torch.Tensor],
    plan: MetricPlan,
    resolution: tuple[int, int],
    settings: CellSettings,
) -> CellScores:
    """FID, sFID, IS, KID, precision/recall (those wanted) of the generated features ``fake``
    against the cell's reference."""
    h, w = resolution
    adm = (settings.eval.adm_references or {}).get(f"{h}x{w}")
    if adm:
        ref = import_adm_reference(adm, plan.inception)
    else:
        ref = reference_features(
            plan.inception,
            _shards(settings),
            resolution,
            settings.eval.reference_count,
            cache_dir=settings.eval.reference_cache,
            weights_tag=plan.weights_tag,
            num_classes=settings.num_classes,
        )
    wanted, frechet = plan.wanted, {}
    for name, key, reference in (("fid", "pool", ref.pool), ("sfid", "spatial", ref.spatial)):
        if name in wanted:
            stats = FeatureStatistics(fake[key].shape[1]).update(fake[key])
            method = settings.eval.fid_method
            frechet[name] = fid_result_from_statistics(stats, reference, method=method)
    result = {name: r.value for name, r in frechet.items()}
    if "is" in wanted and "logits_unbiased" in fake:
        result["is"] = inception_score(fake["logits_unbiased"], splits=10).mean
    if ref.pool_rows.shape[0] and "kid" in wanted:
        size = min(1000, ref.pool_rows.shape[0], fake["pool"].shape[0])
        result["kid"] = kernel_inception_distance(
            ref.pool_rows, fake["pool"], subset_size=size
        ).mean
    if ref.pool_rows.shape[0] > 3 and "precision_recall" in wanted:
        pr = precision_recall(ref.pool_rows, fake["pool"], k=3)
        result.update(precision=pr.precision, recall=pr.recall)
    return CellScores(result, frechet)


@torch.no_grad()
def score_cell(
    module: Sampler,
    rule: InferenceRule,
    resolution: int | tuple[int, int],
    chunks: Iterable[ImageChunk],
    settings: CellSettings,
    plan: MetricPlan,
) -> CellScores:
    """Every wanted metric of one cell: ``val_loss`` (models with a flow-matching objective),
    ``swd``, then the Inception metrics. ``chunks``: this rank's images of the cell, consumed
    here (a generator samples them as they are scored). Every rank must call it; every rank
    returns the same values."""
    resolution = as_height_width(resolution)
    rows = image_rows(chunks, plan, resolution, settings.eval.seed)
    metrics: dict[str, float] = {}
    if "val_loss" in plan.wanted and module.supports_validation_loss:
        metrics["val_loss"] = cell_validation_loss(module, rule, resolution, settings)
    if "swd" in plan.wanted:
        real = reference_swd_descriptors(
            _shards(settings),
            resolution,
            settings.eval.reference_count,
            seed=settings.eval.seed,
            batch_size=settings.eval.batch_size,
            num_classes=settings.num_classes,
        )
        fake = rows_to_descriptors(rows["swd"], resolution)
        levels = pyramid_resolutions(*resolution)
        swd = swd_from_descriptors(list(real), fake, levels, seed=settings.eval.seed)
        metrics["swd"] = swd.average
    if plan.inception is None:
        return CellScores(metrics)
    scores = inception_metrics(rows, plan, resolution, settings)
    return CellScores({**metrics, **scores.metrics}, scores.frechet)


def _shards(settings: CellSettings) -> str | tuple[str, ...]:
    """The validation shards as a hashable key (the SWD reference cache is keyed on them)."""
    shards = settings.val_shards
    return tuple(shards) if isinstance(shards, list) else shards
