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
