"""Validation images for evaluation: the data module's validation stream, without a trainer."""

from __future__ import annotations

import pytest
import torch

from lit_rpe.training.data import ImageShardDataModule, validation_batches


def test_validation_batches_are_the_data_modules_validation_stream(shard_set):
    batches = list(validation_batches(shard_set, 16, 40, batch_size=16))
    assert [b["image"].shape[0] for b in batches] == [16, 16, 8]
    keys = [k for b in batches for k in b["key"]]
    assert keys == [f"s0_{i:04d}" for i in range(32)] + [f"s1_{i:04d}" for i in range(8)]
    data = ImageShardDataModule(
        shard_set, shard_set, resolution=16, val_batch_size=16, val_samples=40, num_workers=0
    )
    for ours, theirs in zip(batches, data.val_dataloader(), strict=True):
        assert ours["key"] == theirs["key"]
        torch.testing.assert_close(ours["image"], theirs["image"], rtol=0, atol=0)
        assert torch.equal(ours["label"], theirs["label"])
    with pytest.raises(ValueError, match="holds 96 images, fewer than the 97 asked"):
        validation_batches(shard_set, 16, 97)
