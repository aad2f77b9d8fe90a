"""ImageShardDataModule: the batch contract, coverage, seeding, epochs and bad input."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from lit_rpe.training.data import ImageShardDataModule


def keys_of(loader) -> list[str]:
    return [key for batch in loader for key in batch["key"]]


def make(shards, **overrides) -> ImageShardDataModule:
    settings = dict(resolution=16, batch_size=8, num_workers=0, shuffle_buffer=16, max_zoom=1.5)
    return ImageShardDataModule(shards, **{**settings, **overrides})


def test_batch_contract(shard_set):
    dm = make(shard_set, val_shards=shard_set)
    dm.setup("fit")
    assert dm.num_classes == 4 and dm.yields_latents is False
    loader = dm.train_dataloader()
    assert len(loader) == 96 // 8
    batch = next(iter(loader))
    assert set(batch) == {"image", "label", "box", "key", "corrupt"}
    assert batch["image"].shape == (8, 3, 16, 16) and batch["image"].dtype == torch.float32
    assert -1.0 <= batch["image"].min() < batch["image"].max() <= 1.0
    assert batch["label"].dtype == torch.int64 and batch["label"].shape == (8,)
    assert set(batch["label"].tolist()) <= {0, 1, 2, 3}
    assert batch["box"].shape == (8, 4) and batch["box"].dtype == torch.float32
    assert (batch["box"] >= 0).all() and (batch["box"][:, :2] + batch["box"][:, 2:] <= 1).all()
    assert len(batch["key"]) == 8 and all(isinstance(k, str) for k in batch["key"])
    assert batch["corrupt"].dtype == torch.int64 and batch["corrupt"].sum() == 0
    val = next(iter(dm.val_dataloader()))
    # 24x20 images: ADM resizes the short side (20) to 16, width 19, centre crop of 16 columns
    assert torch.allclose(val["box"], torch.tensor([0.0, 1 / 19, 1.0, 16 / 19]).expand(8, 4))


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("num_workers", [0, 2, 4])
def test_an_epoch_delivers_every_sample_once(shard_set, num_workers):
    """3 shards, up to 4 workers: ranges split inside shards, nothing read twice."""
    keys = keys_of(make(shard_set, num_workers=num_workers).train_dataloader())
    assert len(keys) == 96 and len(set(keys)) == 96


def test_order_is_seeded_and_changes_with_the_epoch(shard_set):
    first = keys_of(make(shard_set, seed=3).train_dataloader())
    assert keys_of(make(shard_set, seed=3).train_dataloader()) == first
    assert keys_of(make(shard_set, seed=4).train_dataloader()) != first
    dm = make(shard_set, seed=3)
    dm.set_epoch(1)
    second = keys_of(dm.train_dataloader())
    assert second != first and sorted(second) == sorted(first)
    # the loader reads the epoch each time it is iterated, not when it is built
    dm = make(shard_set, seed=3)
    loader = dm.train_dataloader()
    assert keys_of(loader) == first
    dm.set_epoch(1)
    assert keys_of(loader) == second


def test_more_samples_per_epoch_than_data_cycles_through_new_passes(shard_set):
    keys = keys_of(make(shard_set, samples_per_epoch=200, num_workers=2).train_dataloader())
    assert len(keys) == 200
    counts = collections.Counter(keys)
    assert len(counts) == 96 and min(counts.values()) >= 2


def test_validation_covers_the_set_in_order_with_a_partial_last_batch(shard_set):
    dm = make(shard_set, val_shards=shard_set, val_batch_size=10, num_workers=2)
    loader = dm.val_dataloader()
    batches = list(loader)
    assert len(loader) == len(batches) == 10 and [len(b["key"]) for b in batches][-1] == 6
    keys = [k for b in batches for k in b["key"]]
    assert sorted(keys) == sorted(keys_of(make(shard_set).train_dataloader()))
    assert keys_of(loader) == keys  # deterministic
    assert make(shard_set).val_dataloader() == []  # no val_shards: no validation
    assert (
        len(keys_of(make(shard_set, val_shards=shard_set, val_samples=40).val_dataloader())) == 40
    )


def test_center_crop_augmentation_and_non_square_resolution(shard_set):
    batch = next(
        iter(make(shard_set, augmentation="center_crop", resolution=(8, 16)).train_dataloader())
    )
    assert batch["image"].shape == (8, 3, 8, 16)
    # 24x20 -> both sides cover (8, 16): width binds (24 -> 16, 20 -> 13), centre 8 rows
    assert torch.allclose(batch["box"][:, 2:], torch.tensor([8 / 13, 1.0]).expand(8, 2))


def test_shard_patterns_braces_globs_lists_and_relative_paths(shard_set, monkeypatch):
    folder = Path(shard_set[0]).parent
    monkeypatch.chdir(folder.parent)
    for spec in [
        f"{folder.name}/shard-{{000000..000002}}.tar",
        f"{folder.name}/*.tar",
        [f"{folder.name}/shard-000000.tar", str(folder / "shard-00000[12].tar")],
        folder.name,
    ]:
        dm = make(spec)
        dm.setup()
        assert dm._paths("train") == shard_set


def test_bad_input_fails_early_naming_the_file(shard_set, tmp_path):
    with pytest.raises(FileNotFoundError, match="matches no file"):
        make(str(tmp_path / "nothing-*.tar")).setup()
    with pytest.raises(FileNotFoundError, match="missing.tar does not exist"):
        make([shard_set[0], str(tmp_path / "missing.tar")]).setup()
    empty = tmp_path / "empty.tar"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.tar is empty"):
        make(str(empty)).setup()
    with pytest.raises(ValueError, match="empty shard path"):
        make("").setup()
    with pytest.raises(ValueError, match="max_zoom"):
        make(shard_set, max_zoom=0.5)
    os.remove(Path(shard_set[0]).parent / "classes.json")
    with pytest.raises(FileNotFoundError, match="no classes.json beside .*shard-000000.tar"):
        make(shard_set).setup()
    assert make(shard_set, num_classes=4).num_classes == 4


def test_the_stream_refuses_a_loader_with_other_workers(shard_set):
    stream = make(shard_set, num_workers=2).train_dataloader().dataset
    with pytest.raises(RuntimeError, match="planned for 2 worker"):
        next(iter(DataLoader(stream, batch_size=None, num_workers=0)))
