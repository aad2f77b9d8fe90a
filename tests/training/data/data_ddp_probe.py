"""A 2-process CPU DDP fit that records which samples every rank reads (run by
test_data_ddp.py as ``python data_ddp_probe.py SHARDS OUT``; Lightning's ``ddp`` strategy
re-launches this script for rank 1)."""

from __future__ import annotations

import json
import sys
import warnings
from datetime import timedelta
from pathlib import Path

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.strategies import DDPStrategy

from lit_rpe.training.data import ImageShardDataModule


class Probe(LightningModule):
    def __init__(self, out: Path):
        super().__init__()
        self.out = out
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.train_keys: dict[int, list[list[str]]] = {}
        self.val_keys: dict[int, list[list[str]]] = {}

    def training_step(self, batch, batch_idx):
        self.train_keys.setdefault(self.current_epoch, []).append(batch["key"])
        return (self.weight * batch["image"].mean()).sum()

    def validation_step(self, batch, batch_idx):
        self.val_keys.setdefault(self.current_epoch, []).append(batch["key"])
        self.log("val_size", float(len(batch["key"])), sync_dist=True)  # would hang if uneven

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def on_fit_end(self):
        record = {
            "rank": self.global_rank,
            "world": self.trainer.world_size,
            "train": self.train_keys,
            "val": self.val_keys,
        }
        (self.out / f"rank{self.global_rank}.json").write_text(json.dumps(record))


def main() -> None:
    shards, out = sys.argv[1], Path(sys.argv[2])
    warnings.simplefilter("ignore")
    dm = ImageShardDataModule(
        shards,
        val_shards=shards,
        resolution=12,
        batch_size=4,
        val_batch_size=5,
        num_workers=2,
        shuffle_buffer=8,
        seed=1,
    )
    # a collective that waits more than a minute means a hang: fail instead of waiting 30 min
    strategy = DDPStrategy(process_group_backend="gloo", timeout=timedelta(seconds=60))
    trainer = Trainer(
        accelerator="cpu",
        devices=2,
        strategy=strategy,
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(Probe(out), datamodule=dm)


if __name__ == "__main__":
    main()
