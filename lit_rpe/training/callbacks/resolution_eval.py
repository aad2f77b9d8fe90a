"""Watch resolution generalization while training: the EMA scored at several resolutions and
inference rules every n steps, with the eval grid's own code, on any number of processes."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from lit_rpe.eval.settings import EvalSettings
from lit_rpe.posenc import InferenceRule
from lit_rpe.precision import accelerator_device_type, resolve_precision
from lit_rpe.training.callbacks.eval_history import EvalHistory
from lit_rpe.training.callbacks.eval_progress import EvalProgress
from lit_rpe.training.callbacks.image_logging import (
    EVAL_GRID_IMAGES,
    KeptImages,
    is_logged_eval_cell,
    save_eval_samples,
)


@dataclasses.dataclass(frozen=True)
class EvalCell:
    """One (resolution, rule) pair the callback scores; ``label`` is ``<H>x<W>/<rule label>``."""

    resolution: tuple[int, int]
    rule: InferenceRule

    @property
    def label(self) -> str:
        return f"{self.resolution[0]}x{self.resolution[1]}/{self.rule.label}"


class ResolutionEvalCallback(Callback):
    """Score the EMA weights at every resolution x rule of ``settings`` every ``every_n_steps``
    optimizer steps (0: only at the end) and at the end of training.

    settings: an ``EvalSettings`` (``lit_rpe.eval.settings``), the type a grid file holds:
    resolutions, rules (names or mappings with add-ons), num_images, metrics, sampler,
    precision, batch_size, val_shards (default: the data module's), the validation-loss
    protocol, the Inception and reference options. Each cell samples ``num_images``
    seed-indexed images (image i: seed ``seed + i``, label ``i % classes``) and is scored by the
    eval grid's own code (``lit_rpe.eval.cell``), so a cell's numbers equal the grid's for the
    same weights and settings, and do not depend on the number of processes (when
    ``batch_size`` divides each rank's share of the validation images). ``metrics: auto``: the
    validation loss and SWD always, the Inception metrics when the weights exist.

    Writes ``<run dir>/eval/history.csv`` (step, cell, metric, value), ``history.png`` (each
    metric against the step, one line per cell) and ``protocol.json`` (each cell's protocol card,
    ``lit_rpe.eval.protocol``, as of the last evaluation) from rank 0, and logs
    ``eval/<metric>/<cell>`` to every logger. The history is checkpointed: a resumed run
    continues the curves.
    """

    def __init__(self, settings: EvalSettings, every_n_steps: int = 20000):
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be >= 0, got {every_n_steps}")
        self.settings = EvalSettings.of(settings, "ResolutionEvalCallback settings")
        self.cells = [EvalCell(res, rule) for res, rule in self.settings.cells]
        self.every_n_steps = every_n_steps
        self.history = EvalHistory()
        self.cards: dict[str, dict] = {}  # cell label -> protocol card of its last evaluation
        self._settings = None
        self._plan = None

    # ------------------------------------------------------------------------------- set-up

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Check every cell, the data and the metrics before the first training step."""
        if stage != "fit":
            return
        from lit_rpe.eval.cell import CellSettings

        shards = self._checked_val_shards(trainer)
        for cell in self.cells:
            self._check_cell(pl_module, cell)
        self._plan = self._metric_plan()
        device = accelerator_device_type(trainer.accelerator)
        precision = resolve_precision(self.settings.precision, device)
        rank_zero_info(f"ResolutionEvalCallback: {precision.describe()}")
        num_classes = self.settings.num_classes or pl_module.net.num_classes
        self._settings = CellSettings(self.settings, shards, precision, num_classes)

    def _checked_val_shards(self, trainer: Trainer) -> str | tuple[str, ...]:
        from lit_rpe.training.data import ImageShardDataModule
        from lit_rpe.training.data.shard_list import expand_shards, shard_sample_counts

        shards = self.settings.val_shards
        if shards is None and isinstance(trainer.datamodule, ImageShardDataModule):
            shards = trainer.datamodule.val_shards
        if shards is None:
            raise ValueError(
                "ResolutionEvalCallback needs validation shards: set settings.val_shards or "
                "the data module's data.val_shards"
            )
        try:
            paths = expand_shards(shards)
        except (FileNotFoundError, ValueError) as err:
            raise FileNotFoundError(f"ResolutionEvalCallback: val_shards not found: {err}") from err
        available = sum(shard_sample_counts(paths))
        needed = max(self.settings.reference_count, self.settings.val_loss_images)
        if available < needed:
            raise ValueError(
                f"ResolutionEvalCallback: {shards} holds {available} validation images, fewer "
                f"than the {needed} it needs (num_reference, val_loss_images)"
            )
        world = trainer.world_size
        for name, count in (
            ("num_reference", self.settings.reference_count),
            ("val_loss_images", self.settings.val_loss_images),
        ):
            if count % world:
                raise ValueError(
                    f"ResolutionEvalCallback: {name} ({count}) must split evenly over the "
                    f"{world} processes, or the scores would depend on the number of processes"
                )
        return tuple(shards) if isinstance(shards, list) else shards

    def _check_cell(self, pl_module: LightningModule, cell: EvalCell) -> None:
        from lit_rpe.eval.metrics.swd import pyramid_resolutions
        from lit_rpe.sampling.sampler import RuleNotApplicable

        try:
            pl_module.check_resolution(cell.resolution, cell.rule)
            pyramid_resolutions(*cell.resolution)  # SWD needs 16 px on the shorter side
        except RuleNotApplicable as err:
            raise RuleNotApplicable(f"ResolutionEvalCallback cell {cell.label}: {err}") from err
        except ValueError as err:
            raise ValueError(f"ResolutionEvalCallback cell {cell.label}: {err}") from err

    def _metric_plan(self):
        from lit_rpe.eval.cell import plan_metrics
        from lit_rpe.eval.metrics.inception_weights import (
            TORCH_FIDELITY_FILENAME,
            default_weights_dir,
        )

        plan = plan_metrics(self.settings)
        if plan.dropped:
            rank_zero_warn(
                "ResolutionEvalCallback (metrics: auto): no FID Inception weights found, so only "
                "the offline metrics (val_loss, swd) are logged, not "
                f"{', '.join(plan.dropped)}. To add them, put {TORCH_FIDELITY_FILENAME} in "
                f"{default_weights_dir()}."
            )
        return plan

    # -------------------------------------------------------------------------------- hooks

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.history.rows:  # a resumed run: the files show what its checkpoint knows
            self._write_files(trainer, figure=False)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # Before ModelCheckpoint's hook (Lightning runs checkpoint callbacks last): the
        # checkpoint of step s already holds the evaluation of step s.
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return
        step = trainer.global_step
        due = self.every_n_steps and step % self.every_n_steps == 0
        last = 0 < trainer.max_steps <= step
        if (due or last) and step not in self.history.steps():
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # on_fit_end would be too late: the strategy's teardown has moved the model to the CPU.
        if trainer.global_step not in self.history.steps():
            self.evaluate(trainer, pl_module)  # writes the files
        else:
            self._write_files(trainer, figure=True)

    def state_dict(self) -> dict:
        return {"history": self.history.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history.load_state_dict(state_dict["history"])

    # ------------------------------------------------------------------------- evaluation

    @torch.no_grad()
    def evaluate(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Score every cell at the current step (all ranks), log and record the numbers."""
        from lit_rpe.eval.cell import score_cell
        from lit_rpe.eval.generation import generate_chunks
        from lit_rpe.eval.metrics.references import reference_swd_descriptors
        from lit_rpe.eval.protocol import cell_card

        if self._settings is None:
            raise RuntimeError("ResolutionEvalCallback.evaluate before setup('fit')")
        step, settings, plan = trainer.global_step, self._settings, self._plan
        if plan.inception is not None:
            plan.inception.to(pl_module.device)
        progress = EvalProgress(len(self.cells), step) if trainer.is_global_zero else None
        modes = {m: m.training for m in pl_module.modules()}  # the EMA stays in eval mode
        pl_module.eval()
        results = {}
        try:
            for cell in self.cells:
                started = time.perf_counter()
                rule = cell.rule
                shown = is_logged_eval_cell(cell.resolution, tuple(pl_module.resolution))
                images = KeptImages(
                    generate_chunks(
                        pl_module,
                        num_images=self.settings.num_images,
                        batch_size=self.settings.batch_size,
                        resolution=cell.resolution,
                        rule=rule,
                        seed=self.settings.seed,
                        autocast_dtype=settings.autocast_dtype,
                        **settings.sample_kwargs,
                    ),
                    EVAL_GRID_IMAGES if shown and trainer.is_global_zero else 0,
                )
                scores = score_cell(pl_module, rule, cell.resolution, images, settings, plan)
                results[cell.label] = scores.metrics
                for name, frechet in scores.frechet.items():
                    if frechet.retried:
                        rank_zero_warn(
                            f"ResolutionEvalCallback step {step}, {cell.label}: the matrix "
                            f"square root of {name} was retried with an eps offset; "
                            f"{frechet.reason}"
                        )
                if trainer.is_global_zero:  # the progress line and the cell's protocol card
                    seconds = time.perf_counter() - started
                    progress.cell_done(
                        cell.label, self.settings.num_images, seconds, scores.metrics
                    )
                    card = cell_card(
                        settings, pl_module, rule, cell.resolution, inception_tag=plan.inception_tag
                    )
                    self.cards[cell.label] = {"step": step, **card.as_dict()}
                    if shown:  # its images to eval/samples/ and the image loggers
                        save_eval_samples(trainer, images, cell.resolution, cell.rule.label, step)
        finally:
            for module, mode in modes.items():
                module.training = mode
            reference_swd_descriptors.cache_clear()  # large at 1024 px: not kept while training
        rows = [row for label, m in results.items() for row in self.history.add(step, label, m)]
        values = {row.log_key: row.value for row in rows}
        for key, value in values.items():  # for ModelCheckpoint(monitor=...) and the like
            trainer.callback_metrics[key] = torch.tensor(value)
        if trainer.is_global_zero:
            for logger in trainer.loggers:  # directly: on_train_end is outside self.log's hooks
                logger.log_metrics(values, step=step)
            self._write_files(trainer, figure=True)

    def _write_files(self, trainer: Trainer, *, figure: bool) -> None:
        if not trainer.is_global_zero or not self.history.rows:
            return
        folder = Path(trainer.default_root_dir) / "eval"
        self.history.write_csv(folder / "history.csv")
        if self.cards:  # a resumed run keeps the file until its first evaluation
            (folder / "protocol.json").write_text(json.dumps(self.cards, indent=1))
        if figure:
            self.history.plot(folder / "history.png")
