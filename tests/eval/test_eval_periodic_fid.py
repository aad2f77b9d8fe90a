"""The periodic-FID callback: FID logged during training, early failure without weights."""

from __future__ import annotations

import math

import pytest
import torch
from eval_fixtures import calibrated_inception_state_dict
from lightning.pytorch import LightningDataModule, Trainer
from test_eval_grid import tiny_module, write_val_shards
from torch.utils.data import DataLoader

from lit_rpe.callbacks import PeriodicFIDCallback


class RandomImages(LightningDataModule):
    def __init__(self, val_shards):
        super().__init__()
        self.val_shards = val_shards

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        data = [
            {"image": torch.rand(3, 16, 16, generator=g) * 2 - 1, "label": torch.tensor(i % 3)}
            for i in range(8)
        ]
        return DataLoader(data, batch_size=4)


def fit(tmp_path, callback, steps=2):
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[callback],
    )
    module = tiny_module().train()
    module.ema.eval()  # as DiffusionModule builds it
    trainer.fit(module, datamodule=RandomImages(str(write_val_shards(tmp_path / "val"))))
    return trainer, module


def test_fid_is_logged_every_n_steps_and_at_the_end(tmp_path):
    weights = tmp_path / "inception.pth"
    torch.save(calibrated_inception_state_dict(), weights)
    callback = PeriodicFIDCallback(
        every_n_steps=2,
        num_images=6,
        batch_size=4,
        inception_weights=str(weights),
        reference_cache=str(tmp_path / "refs"),
        fid_method="eigh",
    )
    trainer, module = fit(tmp_path, callback, steps=2)
    assert [step for step, _ in callback.history] == [2]  # not again at fit end: same step
    fid = callback.history[0][1]
    assert math.isfinite(fid) and fid > 0
    assert trainer.callback_metrics["val/fid"].item() == pytest.approx(fid)
    assert not module.ema.training and module.net.training  # modes restored
    assert len(list((tmp_path / "refs").rglob("*.npz"))) == 1


def test_missing_weights_fail_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("LIT_RPE_WEIGHTS", str(tmp_path / "none"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "no_hub"))
    with pytest.raises(FileNotFoundError, match="FID Inception weights not found"):
        fit(tmp_path, PeriodicFIDCallback(every_n_steps=1, num_images=4))
