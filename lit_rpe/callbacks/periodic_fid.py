"""FID during training: a few thousand EMA samples at the training resolution, every n steps."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from lit_rpe.eval.generation import chunks_of_rank
from lit_rpe.eval.inception_weights import weights_tag
from lit_rpe.eval.statistics import FeatureStatistics, fid_from_statistics
from lit_rpe.image_io import quantize_uint8
from lit_rpe.sampler import seeds_and_labels


class PeriodicFIDCallback(Callback):
    """Log ``val/fid`` every ``every_n_steps`` optimizer steps (and at the end of fit).

    Image i uses seed ``seed + i`` and label ``i % classes`` with the module's default rule and
    sampler, split across ranks in chunks of ``batch_size``; statistics are reduced over ranks.
    The reference is ``num_reference`` (default ``num_images``) validation images of the data
    module (or ``val_shards``), ADM centre-cropped, cached under ``reference_cache``. Missing
    Inception weights or validation shards fail at setup, before the first training step.
    """

    def __init__(
        self,
        every_n_steps: int = 10000,
        num_images: int = 5000,
        batch_size: int = 50,
        inception_weights: str | None = None,
        val_shards: str | None = None,
        num_reference: int | None = None,
        reference_cache: str = "runs/reference_stats",
        seed: int = 0,
        fid_method: str = "sqrtm",
    ):
        if num_images < 2:
            raise ValueError(f"num_images must be at least 2, got {num_images}")
        self.every_n_steps = every_n_steps
        self.num_images = num_images
        self.batch_size = batch_size
        self.inception_weights = inception_weights
        self.val_shards = val_shards
        self.num_reference = num_reference or num_images
        self.reference_cache = reference_cache
        self.seed = seed
        self.fid_method = fid_method
        self.history: list[tuple[int, float]] = []
        self._inception = None
        self._last_step = -1

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        from lit_rpe.eval.inception_weights import resolve_inception_weights

        self._weights = resolve_inception_weights(self.inception_weights)  # fails early
        if self.val_shards is None:
            self.val_shards = getattr(trainer.datamodule, "val_shards", None)
        if self.val_shards is None:
            raise ValueError("PeriodicFIDCallback needs val_shards (or a data module with them)")

    def _network(self, device: torch.device):
        if self._inception is None:
            from lit_rpe.eval.inception import FIDInceptionV3

            self._inception = FIDInceptionV3(self._weights)
            self._tag = weights_tag(self._weights)
        return self._inception.to(device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        boundary = (batch_idx + 1) % trainer.accumulate_grad_batches == 0
        if self.every_n_steps and step % self.every_n_steps == 0 and boundary:
            self.evaluate(trainer, pl_module)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._last_step != trainer.global_step:
            self.evaluate(trainer, pl_module)

    @torch.no_grad()
    def compute_fid(self, trainer: Trainer, pl_module: LightningModule) -> float:
        from lit_rpe.eval.references import reference_features

        inception = self._network(pl_module.device)
        stats = FeatureStatistics(2048)
        world, rank = trainer.world_size, trainer.global_rank
        classes = pl_module.net.num_classes
        for chunk in chunks_of_rank(self.num_images, self.batch_size, rank, world):
            labels, seeds = seeds_and_labels(chunk, seed=self.seed, num_classes=classes)
            images = pl_module.sample(labels, seeds)
            stats.update(inception(quantize_uint8(images))["pool"])
        stats.all_reduce_()
        ref = reference_features(
            inception,
            self.val_shards,
            pl_module.resolution,
            self.num_reference,
            cache_dir=self.reference_cache,
            weights_tag=self._tag,
        )
        return fid_from_statistics(stats, ref.pool, method=self.fid_method)

    def evaluate(self, trainer: Trainer, pl_module: LightningModule) -> None:
        modes = {m: m.training for m in pl_module.modules()}  # the EMA stays in eval mode
        pl_module.eval()
        try:
            fid = self.compute_fid(trainer, pl_module)
        finally:
            for module, mode in modes.items():
                module.training = mode
        self._last_step = trainer.global_step
        self.history.append((trainer.global_step, fid))
        for logger in trainer.loggers:  # log directly: on_fit_end is outside self.log's hooks
            logger.log_metrics({"val/fid": fid}, step=trainer.global_step)
        trainer.callback_metrics["val/fid"] = torch.tensor(fid)
