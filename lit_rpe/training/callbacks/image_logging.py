"""Sample grids of a training run, to PNG files and to every image-capable logger.

The callbacks' grids (``SampleGridCallback``, ``ResolutionEvalCallback``) go to each
``TensorBoardLogger`` of the Trainer with the optimizer step, so a run can be watched at 2x its
training resolution while it trains (TensorBoard's Images tab); loggers without images (CSV) are
left out. ``KeptImages`` keeps the first images of a stream of chunks that a metric consumes, so
the evaluation's own images are shown, not a second sample.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger

from lit_rpe.image_io import image_grid, write_png

# Images of one evaluated cell shown in its grid (4 x 4).
EVAL_GRID_IMAGES = 16


def log_image_grid(trainer: Trainer, tag: str, grid: np.ndarray, step: int) -> int:
    """Add ``grid`` (H, W, 3) uint8 to every TensorBoard logger of ``trainer`` under ``tag`` at
    ``step``; returns how many loggers took it."""
    taken = 0
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(tag, grid, global_step=step, dataformats="HWC")
            taken += 1
    return taken


class KeptImages:
    """Passes (indices, uint8 (B, 3, H, W)) chunks through unchanged, keeping (on the CPU) the
    first ``count`` images that pass."""

    def __init__(self, chunks: Iterable[tuple[range, torch.Tensor]], count: int):
        self.chunks = chunks
        self.count = count
        self.kept: list[torch.Tensor] = []

    def __iter__(self) -> Iterator[tuple[range, torch.Tensor]]:
        held = 0
        for indices, pixels in self.chunks:
            if held < self.count:
                self.kept.append(pixels[: self.count - held].cpu())
                held += len(self.kept[-1])
            yield indices, pixels

    def grid(self) -> np.ndarray:
        """The kept images tiled into one (H', W', 3) uint8 grid."""
        if not self.kept:
            raise ValueError("no image passed through KeptImages")
        images = torch.cat(self.kept).float() / 127.5 - 1
        return image_grid(images)


def is_logged_eval_cell(resolution: tuple[int, int], train_resolution: tuple[int, int]) -> bool:
    """Whether an evaluated cell's samples are kept: the training resolution and the
    extrapolated ones (no side smaller than training's); smaller cells are scored only."""
    return all(r >= t for r, t in zip(resolution, train_resolution, strict=True))


def save_eval_samples(
    trainer: Trainer, kept: KeptImages, resolution: tuple[int, int], rule: str, step: int
) -> Path:
    """Write ``<run dir>/eval/samples/step<N>_<H>x<W>_<rule>.png`` and log it as
    ``eval_samples/<H>x<W>/<rule>`` to every image logger; returns the PNG's path."""
    h, w = resolution
    grid = kept.grid()
    folder = Path(trainer.default_root_dir) / "eval" / "samples"
    path = write_png(grid, folder / f"step{step:07d}_{h}x{w}_{rule}.png")
    log_image_grid(trainer, f"eval_samples/{h}x{w}/{rule}", grid, step)
    return path
