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
    """Trains one rank with base learning rate ``lr`` (its scheduler's base rates, so the
    warm-up still applies) while the others keep theirs: that rank's weights run away alone."""

    def __init__(self, rank: int = 1, lr: float = 1e6):
        self.rank, self.lr = rank, lr

    def on_train_start(self, trainer, pl_module):
        if trainer.global_rank != self.rank:
            return
        for config in trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            groups = scheduler.optimizer.param_groups
            for group, base in zip(groups, scheduler.base_lrs, strict=True):
                group["lr"] *= self.lr / base  # the rate of this step, warm-up included
            scheduler.base_lrs = [self.lr] * len(groups)
