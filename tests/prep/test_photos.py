"""The embedded photo set builds offline, deterministically, and feeds the data module."""

from __future__ import annotations

import hashlib
import io
import json

from PIL import Image

from lit_rpe.prep.photos import PHOTOS, build_photo_set, load_photo
from lit_rpe.training.data import ImageShardDataModule, iter_tar_samples


def snapshot(folder):
    return {
        p.relative_to(folder).as_posix(): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_photo_set_builds_offline_and_is_idempotent(tmp_path, offline):
    out = tmp_path / "photos"
    summaries = build_photo_set(
        out,
        train_per_photo=6,
        val_per_photo=2,
        patch_size=64,
        shard_size=20,
        workers=2,
        progress=False,
    )
    assert summaries["train"].samples == 6 * len(PHOTOS) and summaries["val"].samples == 2 * len(
        PHOTOS
    )
    classes = json.loads((out / "classes.json").read_text())
    assert len(classes) == len(PHOTOS) == 11 and sorted(classes.values()) == list(range(11))
    train_shards = sorted((out / "train").glob("*.tar"))
    assert len(train_shards) == 4 and len(list((out / "val").glob("*.tar"))) == 2
    samples = [s for shard in train_shards for s in iter_tar_samples(shard)]
    labels = sorted(int(s.fields["cls"]) for s in samples)
    assert labels == sorted(list(range(11)) * 6)
    with Image.open(io.BytesIO(samples[0].fields["jpg"])) as patch:
        assert patch.size == (64, 64) and patch.mode == "RGB"
    before = snapshot(out)
    again = build_photo_set(
        out,
        train_per_photo=6,
        val_per_photo=2,
        patch_size=64,
        shard_size=20,
        workers=1,
        progress=False,
    )
    assert again["train"].written == again["val"].written == 0
    assert snapshot(out) == before  # nothing rewritten, not even touched

    dm = ImageShardDataModule(
        str(out / "train"),
        str(out / "val"),
        resolution=32,
        batch_size=11,
        num_workers=0,
        shuffle_buffer=32,
    )
    assert dm.num_classes == 11
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (11, 3, 32, 32)


def test_views_are_seeded_and_differ_between_photos_and_seeds(tmp_path, offline):
    kwargs = dict(train_per_photo=2, val_per_photo=1, patch_size=32, shard_size=100, progress=False)
    build_photo_set(tmp_path / "a", seed=0, **kwargs)
    build_photo_set(tmp_path / "b", seed=0, **kwargs)
    build_photo_set(tmp_path / "c", seed=1, **kwargs)
    read = {
        name: {
            s.key: s.fields["jpg"]
            for s in iter_tar_samples(tmp_path / name / "train" / "shard-000000.tar")
        }
        for name in "abc"
    }
    assert read["a"] == read["b"]
    assert read["a"].keys() == read["c"].keys() and read["a"] != read["c"]
    assert len(set(read["a"].values())) == 22  # every view distinct


def test_every_bundled_photo_loads_in_colour():
    for photo in PHOTOS:
        image = load_photo(photo.name)
        assert image.mode == "RGB" and min(image.size) >= 256, photo.name
