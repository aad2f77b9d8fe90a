"""Tar shards: deterministic writing, range reading, counting, compatibility with webdataset."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from data_fixtures import encode, smooth_image
from PIL import Image

from lit_rpe.training.data import ImageShardDataModule, adm_center_crop
from lit_rpe.training.data.tar_io import (
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


def test_shards_written_by_webdataset_feed_the_data_module(tmp_path: Path):
    """webdataset's own TarWriter, extra members (.json, .txt) and .jpeg / .webp / .png / .jpg
    images: our reader keeps every member, and the data module yields each image's pixels
    (ADM centre crop of the stored bytes) with its label, in shard order."""
    folder = tmp_path / "wds"
    folder.mkdir()
    rng = np.random.default_rng(0)
    formats = {"jpeg": "JPEG", "webp": "WEBP", "png": "PNG", "jpg": "JPEG"}
    stored = []
    with wds.TarWriter(str(folder / "shard-000000.tar")) as sink:
        for i in range(8):
            ext = list(formats)[i % 4]
            data = encode(smooth_image(rng, 20 + i, 16), formats[ext])
            meta = json.dumps({"index": i}).encode()
            sample = {"__key__": f"sample{i:03d}", ext: data, "cls": str(i % 3).encode()}
            sink.write({**sample, "json": meta, "txt": b"a caption"})
            stored.append((f"sample{i:03d}", ext, data, i % 3))
    (folder / "classes.json").write_text(json.dumps({"a": 0, "b": 1, "c": 2}))

    raw = list(iter_tar_samples(folder / "shard-000000.tar"))
    assert [s.key for s in raw] == [key for key, *_ in stored]
    assert [sorted(s.fields) for s in raw] == [
        sorted([ext, "cls", "json", "txt"]) for _, ext, *_ in stored
    ]
    data = ImageShardDataModule(
        str(folder), str(folder), resolution=16, batch_size=4, num_workers=0, fast_decode=False
    )
    batches = list(data.val_dataloader())
    assert [k for b in batches for k in b["key"]] == [key for key, *_ in stored]
    assert torch.cat([b["label"] for b in batches]).tolist() == [label for *_, label in stored]
    images = torch.cat([b["image"] for b in batches])
    for image, (_, _, encoded, _) in zip(images, stored, strict=True):
        crop = adm_center_crop(Image.open(io.BytesIO(encoded)).convert("RGB"), 16)
        expected = torch.from_numpy(np.array(crop)).permute(2, 0, 1).float() / 127.5 - 1
        torch.testing.assert_close(image, expected, rtol=0, atol=1e-6)


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


def _member_offsets(path: Path) -> list[int]:
    """Byte offset of every member's header, in archive order."""
    with tarfile.open(path) as tar:
        return [m.offset for m in tar.getmembers()]


@pytest.fixture
def seven(tmp_path: Path) -> Path:
    path = tmp_path / "seven.tar"
    write_tar(path, SAMPLES)
    return path


def test_a_shard_cut_at_a_member_boundary_is_an_error_not_a_short_shard(seven: Path):
    """tarfile reads a cut at a header boundary as the end of the archive (issue 24)."""
    cut = seven.with_name("cut.tar")
    cut.write_bytes(seven.read_bytes()[: _member_offsets(seven)[6]])  # 3 whole samples
    with pytest.raises(ShardReadError, match=r"cut.tar: ends at byte \d+ without an end-of-arch"):
        count_tar_samples(cut)
    read = []
    with pytest.raises(ShardReadError, match="without an end-of-archive marker"):
        read.extend(s.key for s in iter_tar_samples(cut))
    # the samples before are delivered; the last one before the cut is not (it may lack fields)
    assert read == ["k000", "k001"]


def test_garbage_or_zeros_over_a_header_in_the_middle_is_an_error(seven: Path):
    offset = _member_offsets(seven)[6]
    data = seven.read_bytes()
    garbage = seven.with_name("garbage.tar")
    garbage.write_bytes(data[:offset] + b"\x7f" * 512 + data[offset + 512 :])
    with pytest.raises(ShardReadError, match=f"garbage.tar: unreadable header at byte {offset}"):
        count_tar_samples(garbage)
    zeroed = seven.with_name("zeroed.tar")
    zeroed.write_bytes(data[:offset] + b"\0" * 512 + data[offset + 512 :])
    with pytest.raises(ShardReadError, match=f"zeroed.tar: a zeroed header at byte {offset}"):
        list(iter_tar_samples(zeroed, 1))


def test_a_shard_with_fewer_samples_than_expected_is_an_error(seven: Path):
    assert [s.key for s in iter_tar_samples(seven, 5, 7)] == ["k005", "k006"]
    with pytest.raises(ShardReadError, match="seven.tar: holds 7 samples, 9 were expected"):
        list(iter_tar_samples(seven, 5, 9))
