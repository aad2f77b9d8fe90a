"""``DivergenceGuard``: stop a run whose loss runs away while staying finite.

A loss is *high* when it is not finite or above ``factor`` times the median of the last
``window`` normal losses (high ones are kept out of the median, so a climbing loss cannot drag
its own reference up). ``patience`` high losses in a row stop the run with ``TrainingDiverged``
(a ``FloatingPointError``, like the module's NaN stop), naming the step, the loss, the median
and the last good checkpoint. Nothing is judged before ``min_history`` normal losses are known
(default 1: a run that diverges from its first update is judged against its first loss).

The losses stay on the device and are read every ``check_every_n_steps`` steps (one host sync
each), and before any checkpoint is written: a run that has diverged by then stops instead of
saving, so the last good checkpoint is never overwritten with diverged weights. The window is
part of the checkpoint (the callback's state), so a resumed run judges as an uninterrupted one.
"""

from __future__ import annotations

import statistics
from collections import deque
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class TrainingDiverged(FloatingPointError):
    """The training loss diverged (or became non-finite); the message says where and why."""


class DivergenceGuard(Callback):
    """Stops training when ``patience`` losses in a row exceed ``factor`` x the running median.

    Args:
        factor: a loss above ``factor`` x the median of the window is high (> 1).
        patience: high losses in a row that stop the run (>= 1).
        window: normal losses the median is taken over.
        min_history: normal losses needed before anything is judged (<= window).
        check_every_n_steps: how often the losses are read from the device (one sync each).
    """

    def __init__(
        self,
        factor: float = 10.0,
        patience: int = 20,
        window: int = 200,
        min_history: int = 1,
        check_every_n_steps: int = 10,
    ):
        if factor <= 1:
            raise ValueError(f"DivergenceGuard factor must be > 1, got {factor}")
        if patience < 1 or check_every_n_steps < 1:
            raise ValueError(
                f"DivergenceGuard patience and check_every_n_steps must be >= 1, got "
                f"{patience} and {check_every_n_steps}"
            )
        if not 1 <= min_history <= window:
            raise ValueError(
                f"DivergenceGuard needs 1 <= min_history <= window, got {min_history} and {window}"
            )
        self.factor, self.patience, self.window = factor, patience, window
        self.min_history, self.check_every_n_steps = min_history, check_every_n_steps
        self.history: deque[float] = deque(maxlen=window)
        self.high_in_a_row = 0
        self._pending: list[tuple[int, torch.Tensor]] = []
        self._trainer: Trainer | None = None

    def judge(self, step: int, loss: float) -> str | None:
        """Take one loss; the reason to stop, or None. Pure bookkeeping (no tensors)."""
        finite = loss == loss and abs(loss) != float("inf")
        ready = len(self.history) >= self.min_history
        median = statistics.median(self.history) if ready else None
        high = not finite or (median is not None and loss > self.factor * median)
        if not high:
            self.history.append(loss)
            self.high_in_a_row = 0
            return None
        self.high_in_a_row += 1
        if self.high_in_a_row < self.patience:
            return None
        reference = f"{self.factor:g} x the running median {median:.4g}" if median else "finite"
        return (
            f"training loss diverged: {self.high_in_a_row} steps in a row above {reference}, "
            f"{loss:.4g} at step {step}"
        )

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._trainer = trainer

    def _flush(self) -> None:
        if not self._pending:
            return
        trainer = self._trainer
        steps = [step for step, _ in self._pending]
        losses = torch.stack([loss for _, loss in self._pending]).float()
        if trainer.world_size > 1:  # every rank judges the same mean loss and stops together
            losses = trainer.strategy.reduce(losses, reduce_op="mean")
        self._pending = []
        for step, loss in zip(steps, losses.cpu().tolist(), strict=True):
            reason = self.judge(step, loss)
            if reason is not None:
                callback = trainer.checkpoint_callback
                last = (callback.last_model_path if callback else "") or "none saved yet"
                raise TrainingDiverged(
                    f"{reason}; stopping without saving. Last good checkpoint: {last}. Lower "
                    "optim.lr, raise optim.warmup_steps or check the data."
                )

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return  # the step returned no loss (skipped): nothing to judge
        self._pending.append((trainer.global_step, loss.detach()))
        if len(self._pending) >= self.check_every_n_steps:
            self._flush()

    def state_dict(self) -> dict[str, Any]:
        # Lightning asks for this while it writes a checkpoint, on every rank: read the pending
        # losses first, so a diverged run stops instead of saving and the window is complete.
        self._flush()
        return {"history": list(self.history), "high_in_a_row": self.high_in_a_row}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = deque(state_dict["history"], maxlen=self.window)
        self.high_in_a_row = int(state_dict["high_in_a_row"])
