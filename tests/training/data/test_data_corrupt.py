"""Corrupt, unlabeled and unreadable samples are skipped, counted in the batch and logged."""

from __future__ import annotations

import json
import logging
import tarfile
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import encode, smooth_image, write_shard_set

from lit_rpe.training.data import ImageShardDataModule
from lit_rpe.training.data.make_manifest import manifest_entries
from lit_rpe.training.data.read_config import ShardReadConfig, TooManySkippedSamples
from lit_rpe.training.data.shard_list import write_manifest
from lit_rpe.training.data.tar_io import ShardReadError, write_tar

# These shards are a quarter bad on purpose: lift the skipped-sample limit to see every skip.
NO_LIMIT = ShardReadConfig(max_skipped_fraction=1.0)
BAD = {"cut": "cannot decode", "garbage": "cannot open", "nolabel": "no label", "range": "outside"}


@pytest.fixture
def dirty_shards(tmp_path):
    """Two shards, 20 samples, 4 of them bad in different ways."""
    rng = np.random.default_rng(0)
    samples = []
    for i in range(16):
        samples.append(
            (
                f"good{i:02d}",
                {"jpg": encode(smooth_image(rng, 20, 20), "JPEG"), "cls": str(i % 2).encode()},
            )
        )
    whole = encode(smooth_image(rng, 64, 64), "JPEG")
    samples.insert(3, ("cut", {"jpg": whole[: len(whole) // 2], "cls": b"1"}))
    samples.insert(7, ("garbage", {"jpg": b"\x00" * 300, "cls": b"0"}))
    samples.insert(12, ("nolabel", {"jpg": encode(smooth_image(rng, 20, 20), "JPEG")}))
    samples.insert(15, ("range", {"jpg": encode(smooth_image(rng, 20, 20), "JPEG"), "cls": b"9"}))
    folder = tmp_path / "dirty"
    folder.mkdir()
    write_tar(folder / "a.tar", samples[:10])
    write_tar(folder / "b.tar", samples[10:])
    (folder / "classes.json").write_text(json.dumps({"x": 0, "y": 1}))
    return str(folder)


def test_bad_samples_are_skipped_counted_and_logged(dirty_shards, caplog):
    dm = ImageShardDataModule(
        dirty_shards,
        resolution=8,
        batch_size=4,
        num_workers=0,
        shuffle_buffer=4,
        samples_per_epoch=16,
        read=NO_LIMIT,
    )
    with caplog.at_level(logging.WARNING, logger="lit_rpe.training.data"):
        batches = list(dm.train_dataloader())
    keys = [k for b in batches for k in b["key"]]
    assert len(batches) == 4 and sorted(keys) == [f"good{i:02d}" for i in range(16)]
    assert sum(int(b["corrupt"].sum()) for b in batches) == 4
    messages = [r.getMessage() for r in caplog.records]
    for key, reason in BAD.items():
        hits = [m for m in messages if repr(key) in m]
        assert len(hits) == 1, key
        assert ".tar" in hits[0] and reason in hits[0]
    assert any("skipped 4 corrupt or unlabeled" in m for m in messages)  # the epoch summary


def test_corrupt_counts_sit_on_the_sample_after_the_skipped_ones(dirty_shards):
    dm = ImageShardDataModule(
        dirty_shards,
        resolution=8,
        batch_size=20,
        num_workers=0,
        shuffle_buffer=0,
        samples_per_epoch=20,
        val_shards=dirty_shards,
    )
    batch = next(iter(dm.val_dataloader()))  # in stream order, no shuffle
    order = batch["key"][:16]
    assert order == [f"good{i:02d}" for i in range(16)]
    skipped = dict(zip(order, batch["corrupt"][:16].tolist(), strict=True))
    assert skipped["good03"] == 1 and skipped["good06"] == 1 and skipped["good10"] == 1
    assert skipped["good12"] == 1 and sum(skipped.values()) == 4
    # validation pads its fixed count by reading its range again: 4 repeats, 4 more skipped
    assert batch["key"][16:] == ["good00", "good01", "good02", "good03"]
    assert int(batch["corrupt"].sum()) == 5


def test_worker_processes_report_what_they_skip(dirty_shards):
    """Each worker needs 16 good samples from a 10-sample range: it reads its range twice,
    meeting its 2 bad samples at least once (a bad sample is only met when another is needed,
    and that next good one carries the count)."""
    dm = ImageShardDataModule(
        dirty_shards,
        resolution=8,
        batch_size=4,
        num_workers=2,
        shuffle_buffer=4,
        samples_per_epoch=32,
        read=NO_LIMIT,
    )
    batches = list(dm.train_dataloader())
    assert all(k.startswith("good") for b in batches for k in b["key"])
    assert 4 <= sum(int(b["corrupt"].sum()) for b in batches) <= 8


def test_a_shard_that_becomes_unreadable_is_skipped_and_counted(dirty_shards, caplog):
    folder = Path(dirty_shards)
    good = folder / "a.tar"
    size = (folder / "b.tar").stat().st_size
    (folder / "b.tar").write_bytes(b"\xff" * size)  # same size, no longer a tar
    manifest = {
        "shards": [
            {"name": "a.tar", "samples": 10, "bytes": good.stat().st_size},
            {"name": "b.tar", "samples": 10, "bytes": size},
        ]
    }
    (folder / "shards.json").write_text(json.dumps(manifest))
    dm = ImageShardDataModule(
        dirty_shards,
        resolution=8,
        batch_size=4,
        num_workers=0,
        shuffle_buffer=0,
        samples_per_epoch=8,
        read=NO_LIMIT,
    )
    with caplog.at_level(logging.WARNING, logger="lit_rpe.training.data"):
        batches = list(dm.train_dataloader())
    assert sum(len(b["key"]) for b in batches) == 8
    assert any("b.tar" in r.getMessage() and "unreadable" in r.getMessage() for r in caplog.records)
    assert sum(int(b["corrupt"].sum()) for b in batches) >= 1


@pytest.fixture
def damaged_set(tmp_path: Path) -> tuple[Path, Path]:
    """2 shards x 20 samples with a correct manifest; returns (folder, second shard)."""
    paths = write_shard_set(tmp_path / "set", num_shards=2, per_shard=20)
    write_manifest(tmp_path / "set", manifest_entries(tmp_path / "set"))
    return tmp_path / "set", Path(paths[1])


def _header_offset(path: Path, member: int) -> int:
    with tarfile.open(path) as tar:
        return tar.getmembers()[member].offset


def test_garbage_over_a_header_skips_the_rest_of_the_shard_counted_and_named(damaged_set, caplog):
    """tarfile took such a shard for a short one: half of it lost, data/skipped = 0 (issue 24)."""
    folder, shard = damaged_set
    offset = _header_offset(shard, 20)  # the header of sample 10 (two members per sample)
    data = shard.read_bytes()
    shard.write_bytes(data[:offset] + b"\x7f" * 512 + data[offset + 512 :])  # same size
    dm = ImageShardDataModule(
        str(folder), str(folder), resolution=8, num_workers=0, val_batch_size=40, read=NO_LIMIT
    )
    with caplog.at_level(logging.WARNING, logger="lit_rpe.training.data"):
        batch = next(iter(dm.val_dataloader()))  # in stream order
    delivered = sum(k.startswith("s1_") for k in batch["key"])
    assert delivered == 9  # samples 0-8; sample 9, read when the header broke, is not trusted
    assert int(batch["corrupt"].sum()) == 20 - delivered
    skip = [r.getMessage() for r in caplog.records if "skipped the rest" in r.getMessage()]
    assert (
        len(skip) == 1
        and str(shard) in skip[0]
        and f"unreadable header at byte {offset}" in skip[0]
    )
    training = ImageShardDataModule(str(folder), resolution=8, batch_size=4, num_workers=0)
    with pytest.raises(TooManySkippedSamples, match="more than read.max_skipped_fraction allows"):
        list(training.train_dataloader())  # the default limit: 5% of the epoch


def test_a_shard_cut_at_a_member_boundary_is_reported_at_set_up(damaged_set, caplog):
    folder, shard = damaged_set
    shard.write_bytes(shard.read_bytes()[: _header_offset(shard, 20)])
    dm = ImageShardDataModule(str(folder), resolution=8, num_workers=0)
    with caplog.at_level(logging.WARNING), pytest.raises(ShardReadError, match=shard.name):
        dm.setup("fit")
    assert any("disagrees with shard" in r.getMessage() for r in caplog.records)
