"""A callback the CLI tests load into a ``lit-rpe fit`` subprocess (``--trainer.callbacks+=``):
it appends every global step it sees to a file, so the test knows when training runs and where
a resumed run started."""

import time
from pathlib import Path

from lightning.pytorch import Callback


class StepProbe(Callback):
    def __init__(self, path: str, delay: float = 0.0):
        self.path, self.delay = Path(path), delay

    def on_train_start(self, trainer, pl_module):
        with self.path.open("a") as f:
            f.write(f"start {trainer.global_step}\n")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        with self.path.open("a") as f:
            f.write(f"step {trainer.global_step}\n")
        time.sleep(self.delay)  # leave the test time to signal mid-run


class RunawayLrOnRank(Callback):
    """Multiplies the learning rate of one rank by ``factor`` (its scheduler's base rates, so
    the warm-up keeps scaling it): that rank's weights run away while the others' do not."""

    def __init__(self, rank: int = 1, factor: float = 1e6):
        self.rank, self.factor = rank, factor

    def on_train_start(self, trainer, pl_module):
        if trainer.global_rank != self.rank:
            return
        for config in trainer.lr_scheduler_configs:
            config.scheduler.base_lrs = [lr * self.factor for lr in config.scheduler.base_lrs]
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] *= self.factor
