"""Helpers of the data tests: synthetic photo-like images, small shard sets, image trees."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from lit_rpe.training.data.tar_io import write_tar


def smooth_image(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A photo-like RGB image: random low-frequency colour field plus mild noise."""
    coarse = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))
    noise = rng.integers(-12, 13, size=field.shape)
    return Image.fromarray(np.clip(field.astype(int) + noise, 0, 255).astype(np.uint8))


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def write_shard_set(
    folder: Path,
    num_shards: int,
    per_shard: int,
    num_classes: int = 4,
    size: tuple[int, int] = (24, 20),
    fmt: str = "PNG",
    seed: int = 0,
) -> list[str]:
    """``num_shards`` shards of ``per_shard`` samples (keys ``s{shard}_{i}``, label i % classes)
    plus ``classes.json`` in ``folder``; returns the shard paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ext = "png" if fmt == "PNG" else "jpg"
    paths = []
    for s in range(num_shards):
        samples = []
        for i in range(per_shard):
            image = smooth_image(rng, *size)
            fields = {
                ext: encode(image, fmt),
                "cls": str((s * per_shard + i) % num_classes).encode(),
            }
            samples.append((f"s{s}_{i:04d}", fields))
        path = folder / f"shard-{s:06d}.tar"
        write_tar(path, samples)
        paths.append(str(path))
    classes = {f"class{c}": c for c in range(num_classes)}
    (folder / "classes.json").write_text(json.dumps(classes))
    return paths


def write_imagenet_tree(root: Path, classes: int = 3, per_class: int = 5, val: int = 6) -> None:
    """``root/train/<wnid>/*.JPEG`` and a flat ``root/val`` with ``LOC_val_solution.csv``."""
    rng = np.random.default_rng(7)
    wnids = [f"n0000{c}" for c in range(classes)]
    for wnid in wnids:
        folder = root / "train" / wnid
        folder.mkdir(parents=True)
        for i in range(per_class):
            image = smooth_image(rng, int(rng.integers(20, 40)), int(rng.integers(20, 40)))
            (folder / f"{wnid}_{i}.JPEG").write_bytes(encode(image, "JPEG"))
    (root / "val").mkdir()
    rows = ["ImageId,PredictionString"]
    for i in range(val):
        name = f"ILSVRC2012_val_{i:08d}"
        (root / "val" / f"{name}.JPEG").write_bytes(encode(smooth_image(rng, 30, 26), "JPEG"))
        rows.append(f"{name},{wnids[i % classes]} 1 2 3 4")
    (root / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
