"""Exact resume: a run stopped mid-epoch and resumed sees exactly the uninterrupted stream."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from lit_rpe.training.data import ImageShardDataModule

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def make(shards, **overrides) -> ImageShardDataModule:
    settings = dict(
        resolution=12, batch_size=8, num_workers=2, shuffle_buffer=16, max_zoom=1.5, seed=5
    )
    return ImageShardDataModule(shards, **{**settings, **overrides})


def test_state_dict_round_trip_without_a_trainer(shard_set):
    reference = make(shard_set)
    reference.set_epoch(2)
    full = list(reference.train_dataloader())
    assert len(full) == 12

    stopped = make(shard_set)
    stopped.set_epoch(2)
    iterator = iter(stopped.train_dataloader())
    head = [next(iterator) for _ in range(5)]
    state = stopped.state_dict()
    del iterator
    assert state["epoch"] == 2 and state["batches_consumed"] == 5

    resumed = make(shard_set)
    resumed.load_state_dict(state)
    tail = list(resumed.train_dataloader())
    assert len(tail) == 7
    for got, want in zip(head + tail, full, strict=True):
        assert got["key"] == want["key"]
        assert torch.equal(got["image"], want["image"]) and torch.equal(got["box"], want["box"])
    resumed.set_epoch(3)  # the following epoch is whole again, and shuffled differently
    following = list(resumed.train_dataloader())
    assert len(following) == 12 and following[0]["key"] != full[0]["key"]


class KeyRecorder(LightningModule):
    """Records the keys of every training batch; a zero learning rate keeps it trivial."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[int, tuple[str, ...]]] = []

    def training_step(self, batch, batch_idx):
        self.seen.append((self.current_epoch, tuple(batch["key"])))
        return (self.weight * batch["image"].mean()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def fit(shards, ckpt_path=None, callbacks=(), caught=None, **trainer_args) -> KeyRecorder:
    """Train a KeyRecorder; the warnings raised go to the list ``caught`` when one is given."""
    model = KeyRecorder()
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=bool(callbacks),
        callbacks=list(callbacks),
        **trainer_args,
    )
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        trainer.fit(model, datamodule=make(shards), ckpt_path=ckpt_path)
    if caught is not None:
        caught.extend(str(r.message) for r in records)
    return model


class SaveBeforeStep(Callback):
    """Saves a checkpoint in ``on_train_batch_start`` of one global step, as a preemption signal
    handler (Lightning's SLURM requeue) does in the middle of an epoch."""

    def __init__(self, path: Path, step: int):
        self.path, self.step = path, step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            trainer.save_checkpoint(self.path)


@pytest.mark.parametrize("reload", [0, 1])
def test_lightning_resume_continues_the_same_stream(shard_set, tmp_path: Path, reload: int):
    """12 batches per epoch, 2 epochs; resume from checkpoints taken mid-epoch and at an epoch
    end: the resumed run sees exactly the rest of the uninterrupted stream, whether or not
    Lightning rebuilds the loader every epoch (``reload_dataloaders_every_n_epochs``)."""
    folder = tmp_path / "ckpt"
    callbacks = [
        ModelCheckpoint(dirpath=folder, filename="{step}", every_n_train_steps=7, save_top_k=-1),
        ModelCheckpoint(dirpath=folder, filename="end-{epoch}", every_n_epochs=1, save_top_k=-1),
        SaveBeforeStep(folder / "signal.ckpt", step=17),
    ]
    uninterrupted = fit(
        shard_set, max_epochs=2, callbacks=callbacks, reload_dataloaders_every_n_epochs=reload
    ).seen
    assert len(uninterrupted) == 24
    assert [e for e, _ in uninterrupted] == [0] * 12 + [1] * 12
    assert uninterrupted[0][1] != uninterrupted[12][1]  # the epoch reshuffles
    assert uninterrupted == fit(shard_set, max_epochs=2).seen  # the stream ignores reloading
    for name, done in [("step=7", 7), ("step=14", 14), ("signal", 17), ("end-epoch=0", 12)]:
        resumed = fit(
            shard_set,
            ckpt_path=folder / f"{name}.ckpt",
            max_epochs=2,
            reload_dataloaders_every_n_epochs=reload,
        )
        assert resumed.seen == uninterrupted[done:], name


def test_mid_epoch_resume_raises_no_false_not_resumable_warning(shard_set, tmp_path: Path):
    """Lightning warns "your dataloader is not resumable" on a mid-epoch resume unless the
    train loader has the stateful interface; ours has it and restores the stream exactly."""
    folder = tmp_path / "ckpt"
    saver = ModelCheckpoint(dirpath=folder, filename="{step}", every_n_train_steps=5, save_top_k=-1)
    uninterrupted = fit(shard_set, max_epochs=1, callbacks=[saver]).seen
    caught: list[str] = []
    resumed = fit(shard_set, ckpt_path=folder / "step=5.ckpt", max_epochs=1, caught=caught)
    assert resumed.seen == uninterrupted[5:]
    assert not [m for m in caught if "not resumable" in m], caught
    state = torch.load(folder / "step=5.ckpt", weights_only=True)["loops"]["fit_loop"]
    assert state["state_dict"]["combined_loader"][0]["batches_consumed"] == 5


class ValidatingKeyRecorder(KeyRecorder):
    def validation_step(self, batch, batch_idx):
        return None


def test_resume_from_checkpoints_saved_after_validation(shard_set, tmp_path: Path):
    """Validation every 6 batches; ModelCheckpoint saves on each validation end (mid-epoch
    and at the epoch end)."""
    folder = tmp_path / "ckpt"

    def run(ckpt_path=None, callbacks=()):
        model = ValidatingKeyRecorder()
        trainer = Trainer(
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=list(callbacks),
            max_epochs=2,
            val_check_interval=6,
            limit_val_batches=1,
            num_sanity_val_steps=0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(
                model, datamodule=make(shard_set, val_shards=shard_set), ckpt_path=ckpt_path
            )
        return model.seen

    saver = ModelCheckpoint(dirpath=folder, filename="{step}", save_top_k=-1)
    uninterrupted = run(callbacks=[saver])
    assert len(uninterrupted) == 24
    for done in (6, 12, 18):
        assert run(folder / f"step={done}.ckpt") == uninterrupted[done:], done


@pytest.mark.parametrize("every_n", [5, 1000])
def test_resume_from_the_last_checkpoint_of_a_run_that_reached_max_steps(
    shard_set, tmp_path: Path, every_n
):
    """N = 5 steps (mid-epoch: 12 per epoch), then resumed to 2N from its ``last.ckpt``: the
    resumed run sees the batches 5..9 of the uninterrupted run, and a second resume to 20 (into
    the next epoch) continues it again. With ``every_n_train_steps=1000`` ``last.ckpt`` is
    written by ``on_train_end``, after Lightning marked the cut-short epoch complete."""
    uninterrupted = fit(shard_set, max_steps=20).seen
    folder = tmp_path / "ckpt"

    def saver():
        return ModelCheckpoint(dirpath=folder, save_last=True, every_n_train_steps=every_n)

    fit(shard_set, max_steps=5, callbacks=[saver()])
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] == 5
    resumed = fit(shard_set, ckpt_path=folder / "last.ckpt", max_steps=10, callbacks=[saver()])
    assert [keys for _, keys in resumed.seen] == [keys for _, keys in uninterrupted[5:10]]
    again = fit(shard_set, ckpt_path=folder / "last.ckpt", max_steps=20, callbacks=[saver()])
    assert [keys for _, keys in again.seen] == [keys for _, keys in uninterrupted[10:20]]
