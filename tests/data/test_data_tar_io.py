"""Tar shards: deterministic writing, range reading, counting, compatibility with webdataset."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import webdataset as wds

from lit_rpe.data.tar_io import (
    ShardReadError,
    count_tar_samples,
    iter_tar_samples,
    split_member_name,
    write_tar,
)

SAMPLES = [(f"k{i:03d}", {"cls": str(i).encode(), "png": bytes([i]) * (100 + i)}) for i in range(7)]


def test_member_names_split_on_the_first_dot_of_the_base_name():
    assert split_member_name("key.jpg") == ("key", "jpg")
    assert split_member_name("dir.v1/key.seg.PNG") == ("dir.v1/key", "seg.png")
    assert split_member_name("nodot") is None
    assert split_member_name(".hidden") is None


def test_write_then_read_everything_and_any_range(tmp_path: Path):
    path = tmp_path / "a.tar"
    assert write_tar(path, SAMPLES) == 7
    assert count_tar_samples(path) == 7
    read = list(iter_tar_samples(path))
    assert [(s.key, s.fields, s.index) for s in read] == [
        (k, f, i) for i, (k, f) in enumerate(SAMPLES)
    ]
    assert all(s.shard == str(path) for s in read)
    middle = list(iter_tar_samples(path, 2, 5))
    assert [s.key for s in middle] == ["k002", "k003", "k004"]
    assert [s.index for s in middle] == [2, 3, 4]
    assert [s.key for s in iter_tar_samples(path, 6)] == ["k006"]
    assert list(iter_tar_samples(path, 3, 3)) == []


def test_writing_is_byte_identical_and_atomic(tmp_path: Path):
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    write_tar(a, SAMPLES)
    write_tar(b, SAMPLES)
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    with pytest.raises(ValueError, match="contains a dot"):
        write_tar(tmp_path / "c.tar", [("bad.key", {"cls": b"1"})])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar", "b.tar"]  # no partial left


def test_official_webdataset_reader_sees_the_same_samples(tmp_path: Path):
    path = tmp_path / "a.tar"
    write_tar(path, SAMPLES)
    samples = list(wds.WebDataset(str(path), shardshuffle=False, empty_check=False))
    assert [s["__key__"] for s in samples] == [k for k, _ in SAMPLES]
    assert [s["png"] for s in samples] == [f["png"] for _, f in SAMPLES]
    assert [int(s["cls"]) for s in samples] == list(range(7))


def test_truncated_and_garbage_shards_raise_naming_the_file(tmp_path: Path):
    path = tmp_path / "a.tar"
    write_tar(path, SAMPLES)
    cut = tmp_path / "cut.tar"
    cut.write_bytes(path.read_bytes()[:1800])
    with pytest.raises(ShardReadError, match="cut.tar"):
        list(iter_tar_samples(cut))
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"not a tar file at all" * 50)
    with pytest.raises(ShardReadError, match="garbage.tar"):
        count_tar_samples(garbage)
