"""Save PNG grids sampled from the EMA weights during and after training."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only

from lit_rpe.sampling.sampler import seeds_and_labels


class SampleGridCallback(Callback):
    """Every ``every_n_steps`` optimizer steps (0: only at the end of fit), sample ``num_images``
    images from the EMA at the training resolution times each of ``scales`` with the module's
    default inference rule, and write ``<run dir>/samples/step<N>_<H>x<W>.png``; the grid also
    goes to every TensorBoard logger as ``samples/<H>x<W>`` at the step.

    Labels cycle through the classes and image i uses seed ``seed + i``, so the grids of
    successive steps show the same noise and classes: progress is visible at a glance.
    """

    def __init__(
        self,
        every_n_steps: int = 0,
        num_images: int = 16,
        scales: list[float] = [1.0, 2.0],  # noqa: B006 (jsonargparse needs a literal default)
        seed: int = 0,
    ):
        self.every_n_steps = every_n_steps
        self.num_images = num_images
        self.scales = list(scales)
        self.seed = seed
        self.saved: list[Path] = []

    def resolutions(self, pl_module: LightningModule) -> list[tuple[int, int]]:
        """Training resolution x scales, rounded to the nearest valid multiple."""
        step = pl_module.latent_factor * pl_module.net.patch_size
        return [
            tuple(max(step, round(r * s / step) * step) for r in pl_module.resolution)
            for s in self.scales
        ]

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # Bad resolutions or rules fail here, before the first training step.
        for res in self.resolutions(pl_module):
            pl_module.check_resolution(res)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if (
            self.every_n_steps
            and step % self.every_n_steps == 0
            and (batch_idx + 1) % (trainer.accumulate_grad_batches) == 0
        ):
            self.save_grids(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Not on_fit_end: by then Lightning's teardown has moved the module back to the CPU, and
        # a DiT-XL/2 grid would be drawn there in minutes. Here it still sits on its device.
        self.save_grids(trainer, pl_module)

    @rank_zero_only
    def save_grids(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from lit_rpe.image_io import image_grid, write_png
        from lit_rpe.training.callbacks.image_logging import log_image_grid

        out_dir = Path(trainer.default_root_dir) / "samples"
        labels, seeds = seeds_and_labels(
            range(self.num_images), seed=self.seed, num_classes=pl_module.net.num_classes
        )
        for h, w in self.resolutions(pl_module):
            with trainer.precision_plugin.forward_context():  # the run's precision (autocast)
                images = pl_module.sample(labels, seeds, resolution=(h, w))
            grid = image_grid(images)
            path = write_png(grid, out_dir / f"step{trainer.global_step:07d}_{h}x{w}.png")
            log_image_grid(trainer, f"samples/{h}x{w}", grid, trainer.global_step)
            self.saved.append(path)
            rank_zero_info(f"sample grid: {path}")
