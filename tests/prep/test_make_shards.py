"""The shard writer: image tree -> shards -> reader gives the same pixels and labels; resumes."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import encode, smooth_image, write_imagenet_tree
from PIL import Image

from lit_rpe.prep.make_shards import convert_tree, main
from lit_rpe.training.data import ImageShardDataModule, iter_tar_samples
from lit_rpe.training.data.shard_list import read_manifest, write_manifest


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def read_split(folder: Path) -> dict[str, tuple[bytes, int]]:
    samples = {}
    for shard in sorted(folder.glob("*.tar")):
        for s in iter_tar_samples(shard):
            image = s.fields.get("jpg", s.fields.get("png"))
            samples[s.key] = (image, int(s.fields["cls"]))
    return samples


@pytest.fixture
def imagenet_tree(tmp_path) -> Path:
    root = tmp_path / "imagenet"
    write_imagenet_tree(root)
    rng = np.random.default_rng(11)
    train = root / "train"
    (train / "n00001" / "n00001_broken.JPEG").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (train / "n00002" / "n00002_png.JPEG").write_bytes(encode(smooth_image(rng, 21, 17), "PNG"))
    smooth_image(rng, 19, 23).convert("L").save(
        train / "n00000" / "n00000_grey.JPEG", format="JPEG"
    )
    smooth_image(rng, 18, 18).save(train / "n00001" / "n00001_bitmap.bmp", format="BMP")
    return root


def test_round_trip_same_pixels_and_labels(imagenet_tree, tmp_path):
    out = tmp_path / "shards"
    summaries = convert_tree(
        imagenet_tree,
        out,
        imagenet_tree / "LOC_val_solution.csv",
        shard_size=4,
        workers=2,
        progress=False,
    )
    classes = json.loads((out / "classes.json").read_text())
    assert classes == {"n00000": 0, "n00001": 1, "n00002": 2}
    train = read_split(out / "train")
    sources = {p.stem: p for p in (imagenet_tree / "train").rglob("*") if p.is_file()}
    assert set(train) == set(sources) - {"n00001_broken"}  # 15 + grey + png + bmp
    for key, (data, label) in train.items():
        assert label == classes[sources[key].parent.name]
        assert np.array_equal(pixels(data), pixels(sources[key].read_bytes()))
    assert train["n00002_png"][0][:4] == b"\x89PNG"  # stored as what it really is
    assert summaries["train"].samples == 18 and len(summaries["train"].unreadable) == 1
    assert "n00001_broken" in (out / "train" / "unreadable.txt").read_text()
    assert len(list((out / "train").glob("*.tar"))) == 5  # 19 files, 1 unreadable, 4 per shard

    val = read_split(out / "val")
    assert {k: v[1] for k, v in val.items()} == {f"ILSVRC2012_val_{i:08d}": i % 3 for i in range(6)}
    for key, (data, _) in val.items():
        assert np.array_equal(
            pixels(data), pixels((imagenet_tree / "val" / f"{key}.JPEG").read_bytes())
        )

    dm = ImageShardDataModule(
        str(out / "train"),
        str(out / "val"),
        resolution=16,
        batch_size=6,
        num_workers=0,
        augmentation="center_crop",
        hflip=False,
    )
    assert dm.num_classes == 3
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (6, 3, 16, 16)
    assert {k: int(v) for k, v in zip(batch["key"], batch["label"], strict=True)} == {
        k: v[1] for k, v in val.items()
    }


def digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.tar"))
    }


def test_a_resumed_run_produces_identical_shards(imagenet_tree, tmp_path):
    args = dict(val_labels=imagenet_tree / "LOC_val_solution.csv", shard_size=3, progress=False)
    convert_tree(imagenet_tree, tmp_path / "a", workers=2, **args)
    convert_tree(imagenet_tree, tmp_path / "b", workers=1, **args)
    reference = digests(tmp_path / "a" / "train")
    assert digests(tmp_path / "b" / "train") == reference and len(reference) == 7  # 19 files

    # the state a stopped run leaves: shards missing, a half-written one, one written but not
    # yet entered in the manifest
    folder = tmp_path / "b" / "train"
    (folder / "shard-000001.tar").unlink()
    (folder / "shard-000004.tar").unlink()
    (folder / "shard-000002.tar.partial").write_bytes(b"half a shard")
    manifest = read_manifest(folder)
    entries = [e for e in manifest.pop("shards") if e["name"] != "shard-000003.tar"]
    write_manifest(folder, entries, manifest)
    summaries = convert_tree(imagenet_tree, tmp_path / "b", workers=2, **args)
    assert summaries["train"].written == 3 and summaries["train"].reused == 4
    assert summaries["train"].samples == 18 and len(summaries["train"].unreadable) == 1
    assert digests(folder) == reference
    assert not list(folder.glob("*.partial"))
    assert convert_tree(imagenet_tree, tmp_path / "b", **args)["train"].written == 0

    with pytest.raises(FileExistsError, match="other inputs or settings"):
        convert_tree(imagenet_tree, tmp_path / "b", **{**args, "shard_size": 5})


def test_class_folder_tree_with_held_out_fraction_and_cli(tmp_path, capsys):
    root = tmp_path / "flowers"
    rng = np.random.default_rng(2)
    for name in ("daisy", "rose"):
        (root / name / "sub").mkdir(parents=True)
        for i in range(5):
            smooth_image(rng, 16, 16).save(root / name / f"{i}.png")
        (root / name / "notes.txt").write_text("not an image")
    main(
        [
            str(root),
            "--out",
            str(tmp_path / "out"),
            "--val-fraction",
            "0.4",
            "--shard-size",
            "3",
            "--workers",
            "1",
            "--no-progress",
        ]
    )
    train, val = read_split(tmp_path / "out" / "train"), read_split(tmp_path / "out" / "val")
    assert len(train) == 6 and len(val) == 4 and not set(train) & set(val)
    assert all("/" in k for k in train)  # stems repeat across classes: keys keep the folder
    assert sorted(v[1] for v in val.values()) == [0, 0, 1, 1]
    assert "6 samples in 2 shards" in capsys.readouterr().out


@pytest.mark.parametrize(
    "lines, error",
    [
        (["{a} n00000", "{b} n00001"], None),
        (["n00000", "n00001"], None),
        (["1", "2"], "integer labels are ambiguous"),
        (["{a} n00000"], "no label for 1 file"),
        (["{a} n00009", "{b} n00001"], "not among the training classes"),
    ],
)
def test_flat_validation_label_files(tmp_path, lines, error):
    root = tmp_path / "tree"
    write_imagenet_tree(root, classes=2, per_class=2, val=0)
    names = ["ILSVRC2012_val_a.JPEG", "ILSVRC2012_val_b.JPEG"]
    for name in names:
        (root / "val" / name).write_bytes(
            encode(smooth_image(np.random.default_rng(0), 12, 12), "JPEG")
        )
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(line.format(a=names[0], b=names[1]) for line in lines) + "\n")
    if error:
        with pytest.raises(ValueError, match=error):
            convert_tree(root, tmp_path / "out", labels, progress=False)
        return
    convert_tree(root, tmp_path / "out", labels, progress=False)
    val = read_split(tmp_path / "out" / "val")
    assert {k: v[1] for k, v in val.items()} == {"ILSVRC2012_val_a": 0, "ILSVRC2012_val_b": 1}
