"""DivergenceGuard: a finite runaway loss stops the run before a checkpoint of it is written
(issue 24 item 4)."""

from __future__ import annotations

import warnings

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from lit_rpe.training.callbacks.divergence import DivergenceGuard, TrainingDiverged


def test_patience_high_losses_in_a_row_stop_and_a_normal_one_resets():
    guard = DivergenceGuard(factor=10, patience=3, window=4, min_history=2)
    assert guard.judge(0, 100.0) is None  # nothing judged before min_history losses
    assert guard.judge(1, 1.0) is None
    assert guard.judge(2, 3.0) is None  # median 50.5: not high
    for step, loss in enumerate([1.0, 1.0], start=3):
        assert guard.judge(step, loss) is None
    assert list(guard.history) == [1.0, 3.0, 1.0, 1.0]  # window 4: the first loss has left
    assert guard.judge(7, 20.1) is None and guard.judge(8, 25.0) is None  # median 1.0
    assert guard.judge(9, 1.5) is None and guard.high_in_a_row == 0  # a normal loss resets
    assert guard.judge(10, 1e22) is None and guard.judge(11, float("inf")) is None
    reason = guard.judge(12, 1e26)
    assert reason == (
        "training loss diverged: 3 steps in a row above 10 x the running median 1.25, "
        "1e+26 at step 12"
    )
    assert 1e22 not in guard.history  # high losses never raise their own reference


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="factor must be > 1, got 1"):
        DivergenceGuard(factor=1)
    with pytest.raises(ValueError, match="patience and check_every_n_steps must be >= 1"):
        DivergenceGuard(patience=0)
    with pytest.raises(ValueError, match="1 <= min_history <= window, got 30 and 20"):
        DivergenceGuard(window=20, min_history=30)


class ScriptedLoss(LightningModule):
    """Its loss is 1 for the first ``good`` steps and 1e6 after (finite, never NaN)."""

    def __init__(self, good: int):
        super().__init__()
        self.good = good
        self.weight = torch.nn.Parameter(torch.ones(1))

    def training_step(self, batch, batch_idx):
        scale = 1.0 if self.global_step < self.good else 1e6
        return self.weight.sum() * scale

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def train_dataloader(self):
        return DataLoader(torch.zeros(64, 1), batch_size=1)


def test_a_diverged_run_stops_without_overwriting_the_last_good_checkpoint(tmp_path):
    saver = ModelCheckpoint(dirpath=tmp_path, save_last=True, every_n_train_steps=2)
    guard = DivergenceGuard(factor=10, patience=3, check_every_n_steps=5)
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_steps=40,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[guard, saver],
    )
    with warnings.catch_warnings(), pytest.raises(TrainingDiverged) as caught:
        warnings.simplefilter("ignore")
        trainer.fit(ScriptedLoss(good=10))
    # losses of steps 11, 12, 13, ... are high; the save of step 12 (2 high losses) goes
    # through, the save of step 14 reads 13 and 14 first and stops instead
    message = str(caught.value)
    assert message.startswith("training loss diverged: 3 steps in a row above 10 x the running")
    assert "at step 13" in message and f"Last good checkpoint: {tmp_path / 'last.ckpt'}" in message
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 12
    assert not (tmp_path / "epoch=0-step=14.ckpt").exists()


def test_the_window_travels_with_the_checkpoint():
    guard = DivergenceGuard(window=3)
    for step, loss in enumerate([2.0, 1.0, 1.5, 1.2]):
        guard.judge(step, loss)
    guard.high_in_a_row = 2
    restored = DivergenceGuard(window=3)
    restored.load_state_dict(guard.state_dict())
    assert list(restored.history) == [1.0, 1.5, 1.2] and restored.high_in_a_row == 2
