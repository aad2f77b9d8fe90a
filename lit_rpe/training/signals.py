"""Stop on SIGTERM, SIGUSR1 or SIGINT at a step boundary, with a checkpoint, resumably.

A signal only sets a flag. At the end of the step that is running (``on_train_batch_end``,
where ``ModelCheckpoint`` saves: its checkpoints resume at the next step exactly) the run saves
a checkpoint; at the start of the next batch (the step's loss logged, its validation run) it
raises ``TrainingInterrupted``; the CLI prints one line and exits with ``EXIT_INTERRUPTED``
(75, ``EX_TEMPFAIL``: "try again"). A signal during the last step lets the run finish.

- Off SLURM the checkpoint is ``last.ckpt`` of the checkpoint folder.
- Under SLURM (``SLURMEnvironment`` with ``auto_requeue``) it is Lightning's
  ``hpc_ckpt_<n>.ckpt`` in the run directory, and global rank 0 then requeues the job with
  ``scontrol requeue`` as Lightning's own handler does (a missing ``scontrol`` is a warning).
- Under DDP the ranks agree with one all-reduce (max) of the signal number per step (only when
  world > 1), so all of them save and stop at the same step, whichever received the signal, and
  all name the signal that was received.
- A second SIGINT interrupts at once (Python's KeyboardInterrupt), for an impatient Ctrl-C.

Lightning's own handlers (SIGTERM: stop with exit status 0 and no checkpoint; SLURM's SIGUSR1:
a checkpoint in the middle of a step) are replaced while training runs and restored after.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path
from types import FrameType

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.trainer.connectors.checkpoint_connector import _CheckpointConnector
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

EXIT_INTERRUPTED = 75  # EX_TEMPFAIL (sysexits.h): interrupted, resumable; run it again
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving ``checkpoint`` at ``step``."""

    def __init__(self, signum: int, step: int, checkpoint: Path, requeued: bool):
        name = signal.Signals(signum).name
        then = "the job was requeued" if requeued else "run the same command again to resume"
        super().__init__(
            f"interrupted by {name} after step {step}: saved {checkpoint}; {then} "
            f"(exit status {EXIT_INTERRUPTED}: resumable)"
        )
        self.signum, self.step, self.checkpoint, self.requeued = signum, step, checkpoint, requeued


def slurm_environment(trainer: Trainer) -> SLURMEnvironment | None:
    """The trainer's SLURM environment when it requeues automatically, else None."""
    # Lightning keeps the cluster environment on its accelerator connector (as its own signal
    # connector reads it); strategies without a cluster environment have no public accessor.
    environment = trainer._accelerator_connector.cluster_environment
    if isinstance(environment, SLURMEnvironment) and environment.auto_requeue:
        return environment
    return None


def requeue_slurm_job() -> bool:
    """``scontrol requeue`` this job (array jobs: ``<array id>_<task id>``); True on success."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = (
        f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
        if array_job
        else os.environ["SLURM_JOB_ID"]
    )
    if not re.fullmatch(r"[0-9_]+", job):
        rank_zero_warn(f"not requeueing: SLURM job id {job!r} is not a job id")
        return False
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    except FileNotFoundError:
        rank_zero_warn(f"scontrol not found: cannot requeue job {job}; submit it again to resume")
        return False
    if done.returncode != 0:
        rank_zero_warn(f"scontrol requeue {job} failed ({done.returncode}): {done.stderr.strip()}")
        return False
    rank_zero_info(f"requeued SLURM job {job}")
    return True


def last_checkpoint_path(trainer: Trainer) -> Path:
    """Where the run's ``last`` checkpoint goes: ``ModelCheckpoint``'s last name, recorded as
    its own (so the resumed run's ``ModelCheckpoint`` overwrites it instead of writing
    ``last-v1.ckpt`` beside it), else ``<run dir>/checkpoints/last.ckpt``."""
    callback = trainer.checkpoint_callback
    if callback is None or not callback.dirpath:
        return Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
    metrics = {"step": trainer.global_step, "epoch": trainer.current_epoch}
    path = callback.format_checkpoint_name(metrics, callback.CHECKPOINT_NAME_LAST)
    if callback.save_last:
        callback.last_model_path = path
    return Path(path)


class StopOnSignal(Callback):
    """Turns SIGTERM / SIGUSR1 / SIGINT into a checkpoint at the next step boundary and a
    ``TrainingInterrupted`` (see the module docstring). ``LitRPETrainer`` adds it to every run."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._saved: TrainingInterrupted | None = None  # raised at the next batch start
        self._seen_step = -1  # the global step of the previous batch end
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.received == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        if self.received is None:
            self.received = signum
            # print, not log: a signal handler must not take the logging module's locks
            print(
                f"received {signal.Signals(signum).name}: saving a checkpoint at the end of "
                "this step, then stopping",
                flush=True,
            )

    def _install(self) -> None:
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) != self._handle:
                self._previous.setdefault(signum, signal.getsignal(signum))
                signal.signal(signum, self._handle)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":
            self._install()  # a signal during set-up is honoured before the first step

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._install()  # again: Lightning's signal connector registered its own since setup

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore()  # training is complete: a late signal has nothing left to save

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        self._restore()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        # Save where ModelCheckpoint saves (its checkpoints resume at the next step exactly);
        # stop only at the next batch start, after this step's logging and validation.
        stepped, self._seen_step = trainer.global_step != self._seen_step, trainer.global_step
        if not stepped:
            return  # a micro-batch of gradient accumulation: not a step boundary
        received = self.received or 0  # 0: no signal (no signal has number 0)
        if trainer.world_size > 1:
            flag = torch.tensor(received, device=trainer.strategy.root_device)
            received = int(trainer.strategy.reduce(flag, reduce_op="max"))
        if not received or self._saved is not None:
            return
        slurm = slurm_environment(trainer)
        if slurm is not None:
            path = Path(_CheckpointConnector.hpc_save_path(trainer.default_root_dir))
        else:
            path = last_checkpoint_path(trainer)
        trainer.save_checkpoint(path)
        requeued = slurm is not None and trainer.is_global_zero and requeue_slurm_job()
        self._saved = TrainingInterrupted(received, trainer.global_step, path, requeued)

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int
    ) -> None:
        if self._saved is not None:
            raise self._saved
