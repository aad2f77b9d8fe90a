"""Shared inputs of the callback tests (and of eval_ddp_probe.py): a tiny training set and a
fit of the tiny eval-grid model (DiT-N/2, pixel space, 16 px) with a callback."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from test_eval_grid import NUM_CLASSES
from torch.utils.data import DataLoader

from lit_rpe.training.module import DiffusionModule


class RandomImages(LightningDataModule):
    """8 fixed random 16 x 16 images, labels ``i % 3``, batches of 4: an epoch is 2 steps, so a
    checkpoint every 2 steps resumes on an epoch boundary (a map-style loader cannot resume
    mid-epoch)."""

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        data = [
            {
                "image": torch.rand(3, 16, 16, generator=g) * 2 - 1,
                "label": torch.tensor(i % NUM_CLASSES),
            }
            for i in range(8)
        ]
        return DataLoader(data, batch_size=4)


def training_module(lr: float = 1e-3) -> DiffusionModule:
    """The eval grid's tiny model (DiT-N/2, RPE-2D, 16 px, 2 Euler steps) for training: EMA
    decay 0.5, so the sampled weights move every step (with ``lr=0`` towards the fixed net)."""
    torch.manual_seed(0)
    module = DiffusionModule(  # config groups as LightningCLI passes them (loggers save them)
        net={"name": "DiT-N/2", "encoder": "rope", "train_positions": "rpe2d"},
        resolution=16,
        num_classes=NUM_CLASSES,
        optim={"lr": lr},
        ema_decay=0.5,
        ema_warmup=False,
        sampling={"steps": 2, "method": "euler"},
    )
    with torch.no_grad():  # leave the all-zero adaLN start so outputs depend on the weights
        for p in module.ema.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return module


def fit(
    root: Path,
    callback,
    *,
    steps: int,
    module=None,
    checkpoint_every: int = 0,
    resume: Path | None = None,
    logger=None,
    **trainer_kwargs,
) -> tuple[Trainer, object]:
    """Train ``module`` (default ``training_module()``) for ``steps`` with ``callback`` (one or a
    list), ``logger`` (default a CSV logger under ``root/logs``) and, with ``checkpoint_every``,
    ``root/checkpoints/last.ckpt``."""
    callbacks = list(callback) if isinstance(callback, list) else [callback]
    if checkpoint_every:
        callbacks.append(
            ModelCheckpoint(
                dirpath=root / "checkpoints", every_n_train_steps=checkpoint_every, save_last=True
            )
        )
    trainer = Trainer(
        default_root_dir=root,
        max_steps=steps,
        accelerator="cpu",
        logger=CSVLogger(root, name="logs") if logger is None else logger,
        enable_checkpointing=bool(checkpoint_every),
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        **trainer_kwargs,
    )
    module = module if module is not None else training_module()
    module.ema.eval()  # as DiffusionModule builds it
    trainer.fit(module, datamodule=RandomImages(), ckpt_path=str(resume) if resume else None)
    return trainer, module
