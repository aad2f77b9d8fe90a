"""A Lightning callback that measures a fit: images/s after warm-up, step times, peak memory.

Added to ``lit-rpe fit`` by the GPU check
(``--trainer.callbacks+=bench.gpu.check_callback.FitMeter``, the repository on ``PYTHONPATH``). It
costs two device synchronisations per fit (at the end of the warm-up and at the last step) and none
on the other steps: step times are host timestamps at each batch end, which stay in step with the
device because Lightning reads the logged loss on every step. Validation time inside the measured
window is subtracted. At the end of training it writes ``<out_dir>/fit_from<start step>.json``: see
``FitMeter.summary``.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback
from lightning.pytorch.utilities import rank_zero_info


def window_rate(
    stamps: list[tuple[int, float]],
    warmup: int,
    batch_size: int,
    pauses: list[tuple[float, float]] = (),
) -> tuple[float | None, int]:
    """Images/s over the steps after the first ``warmup`` of ``stamps`` ((step, time) at each
    batch end), not counting the parts of ``pauses`` ((start, end) times of validation runs)
    that fall inside that window. Returns (images/s, or None when fewer than 2 stamps remain;
    the number of steps measured)."""
    if len(stamps) <= warmup + 1:
        return None, 0
    (_, t0), (_, t1) = stamps[warmup], stamps[-1]
    paused = sum(max(0.0, min(end, t1) - max(start, t0)) for start, end in pauses)
    steps = len(stamps) - 1 - warmup
    return steps * batch_size / (t1 - t0 - paused), steps


class FitMeter(Callback):
    """Records batch-end times, losses at both ends, validation pauses and CUDA peak memory.

    out_dir: folder of the JSON written at the end of the fit. warmup_steps: steps of each fit
    (a resumed fit too) left out of the images/s: compilation, allocator and loader warm-up.
    """

    def __init__(self, out_dir: str, warmup_steps: int = 10):
        self.out_dir = Path(out_dir)
        self.warmup_steps = warmup_steps
        self.stamps: list[tuple[int, float]] = []
        self.batch_size = 0
        self.start_step = 0
        self.first_loss: torch.Tensor | None = None
        self.last_loss: torch.Tensor | None = None
        self.pauses: list[tuple[float, float]] = []
        self._val_start: float | None = None
        self._fit_start = self._train_end = 0.0
        self.after_training_s = 0.0

    def _sync(self, pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_start(self, trainer, pl_module) -> None:
        self.start_step = trainer.global_step
        self._fit_start = time.perf_counter()
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            if self.first_loss is None:
                self.first_loss = loss.detach().clone()
            self.last_loss = loss.detach()
        self.batch_size = int(batch["image"].shape[0])
        # The window starts and ends with the device caught up: two syncs per fit.
        if len(self.stamps) == self.warmup_steps or trainer.global_step >= trainer.max_steps:
            self._sync(pl_module)
        self.stamps.append((trainer.global_step, time.perf_counter()))

    def on_validation_start(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._val_start is not None:
            self.pauses.append((self._val_start, time.perf_counter()))
        self._val_start = None

    def on_train_end(self, trainer, pl_module) -> None:
        self._train_end = time.perf_counter()

    def on_fit_end(self, trainer, pl_module) -> None:
        # After the last checkpoint and the experiment's end-of-fit sample grids.
        self.after_training_s = time.perf_counter() - self._train_end
        if trainer.global_rank != 0:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"fit_from{self.start_step:07d}.json"
        summary = self.summary(trainer, pl_module)
        path.write_text(json.dumps(summary, indent=1) + "\n")
        rate, peak = summary["images_per_s"], summary["peak_gib"]
        rank_zero_info(
            f"FitMeter: steps {summary['start_step']}-{summary['end_step']}, "
            + (f"{rate:.1f} images/s after {self.warmup_steps} warm-up steps" if rate else "")
            + (f", peak {peak:.2f} GiB allocated" if peak is not None else "")
            + f" -> {path}"
        )

    def summary(self, trainer, pl_module) -> dict:
        """start/end step, batch, images/s after warm-up, median step ms, losses at both ends,
        peak allocated/reserved GiB (CUDA), seconds of training (validation included) and after
        it (the final checkpoint and the sample grids of the fit's end)."""
        rate, measured = window_rate(self.stamps, self.warmup_steps, self.batch_size, self.pauses)
        kept = [t for _, t in self.stamps[self.warmup_steps :]]
        gaps = [b - a for a, b in zip(kept, kept[1:], strict=False)]
        cuda = pl_module.device.type == "cuda"
        return {
            "start_step": self.start_step,
            "end_step": trainer.global_step,
            "batch_size": self.batch_size,
            "warmup_steps": self.warmup_steps,
            "measured_steps": measured,
            "images_per_s": rate,
            "median_step_ms": 1e3 * statistics.median(gaps) if gaps else None,
            "validation_s": sum(end - start for start, end in self.pauses),
            "loss_first": None if self.first_loss is None else float(self.first_loss),
            "loss_last": None if self.last_loss is None else float(self.last_loss),
            "peak_gib": torch.cuda.max_memory_allocated(pl_module.device) / 2**30 if cuda else None,
            "peak_reserved_gib": (
                torch.cuda.max_memory_reserved(pl_module.device) / 2**30 if cuda else None
            ),
            "train_s": self._train_end - self._fit_start,
            "after_training_s": self.after_training_s,
        }
