"""The embedded photo set: a toy class-conditional data set from photographs that installed
packages ship, for CPU runs and tests. Nothing is downloaded.

Each class is one colour photograph (scikit-image, scikit-learn and matplotlib sample images,
read from the installed package folders rather than through ``skimage.data``'s fetcher). A
sample is a fixed view of its photograph: a square window whose side is ``fov`` times the photo's
short side, at a seeded random position, resampled to ``patch_size`` pixels and stored as JPEG
(quality 95, no chroma subsampling). Train and validation views are drawn independently.
"""

from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
from PIL import Image

from lit_rpe.prep.shard_writer import (
    ItemRenderer,
    ShardJob,
    WriteSummary,
    shuffled_jobs,
    write_shards,
)
from lit_rpe.training.data.shard_list import write_classes

FORMAT = "lit_rpe-photos/1"


@dataclass(frozen=True)
class BundledPhoto:
    """A sample photograph inside an installed package: ``package/relative_path``."""

    name: str
    package: str
    relative_path: str


PHOTOS = (
    BundledPhoto("astronaut", "skimage", "data/astronaut.png"),
    BundledPhoto("chelsea", "skimage", "data/chelsea.png"),
    BundledPhoto("china", "sklearn", "datasets/images/china.jpg"),
    BundledPhoto("coffee", "skimage", "data/coffee.png"),
    BundledPhoto("flower", "sklearn", "datasets/images/flower.jpg"),
    BundledPhoto("grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    BundledPhoto("hubble_deep_field", "skimage", "data/hubble_deep_field.jpg"),
    BundledPhoto("immunohistochemistry", "skimage", "data/ihc.png"),
    BundledPhoto("motorcycle", "skimage", "data/motorcycle_left.png"),
    BundledPhoto("retina", "skimage", "data/retina.jpg"),
    BundledPhoto("rocket", "skimage", "data/rocket.jpg"),
)
PHOTOS_BY_NAME = {p.name: p for p in PHOTOS}


def photo_path(photo: BundledPhoto) -> Path:
    """Location of the photograph in the installed package (without importing the package)."""
    spec = importlib.util.find_spec(photo.package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {photo.package} (for photo {photo.name}) is not installed"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / photo.relative_path
    if not path.is_file():
        raise FileNotFoundError(f"{photo.package} does not ship {photo.relative_path} ({path})")
    return path


@lru_cache(maxsize=len(PHOTOS))
def load_photo(name: str) -> Image.Image:
    """The named photograph as an RGB image (cached per process)."""
    with Image.open(photo_path(PHOTOS_BY_NAME[name])) as image:
        return image.convert("RGB")


def view_window(
    size: tuple[int, int], fov: float, seed: int, photo_index: int, split: int, index: int
) -> tuple[float, float, float, float]:
    """Source window (left, top, right, bottom) of one view of a (width, height) photo."""
    side = fov * min(size)
    rng = np.random.default_rng([seed, photo_index, split, index])
    left, top = rng.uniform(0, size[0] - side), rng.uniform(0, size[1] - side)
    return left, top, left + side, top + side


def render_view(
    fov: float, patch_size: int, seed: int, item: tuple[str, int, str, int, int]
) -> tuple[str, dict[str, bytes]]:
    """Sample of ``item = (key, label, photo name, split id, view index)``: a JPEG patch."""
    key, label, name, split, index = item
    photo = load_photo(name)
    window = view_window(photo.size, fov, seed, label, split, index)
    patch = photo.resize((patch_size, patch_size), Image.Resampling.BICUBIC, box=window)
    buffer = io.BytesIO()
    patch.save(buffer, format="JPEG", quality=95, subsampling=0)
    return key, {"jpg": buffer.getvalue(), "cls": str(label).encode()}


def plan_views(count: int, split: int, shard_size: int, seed: int, prefix: str) -> list[ShardJob]:
    """``count`` views of every photo, shuffled together (seeded), cut into shards."""
    items = [
        (f"{prefix}_{photo.name}_{i:05d}", label, photo.name, split, i)
        for label, photo in enumerate(PHOTOS)
        for i in range(count)
    ]
    return shuffled_jobs(items, shard_size, [seed, split, 0xFACE])


def build_photo_set(
    out: str | Path,
    train_per_photo: int = 300,
    val_per_photo: int = 50,
    patch_size: int = 128,
    fov: float = 0.5,
    shard_size: int = 500,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, WriteSummary]:
    """Write ``out/train/*.tar``, ``out/val/*.tar`` and ``out/classes.json``; a re-run with the
    same arguments finds every shard finished and writes nothing."""
    if not 0.0 < fov <= 1.0 or patch_size < 8 or min(train_per_photo, val_per_photo) < 1:
        raise ValueError("need 0 < fov <= 1, patch_size >= 8 and at least one view per photo")
    for photo in PHOTOS:  # every source must be present before anything is written
        photo_path(photo)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_classes(out, [photo.name for photo in PHOTOS])
    settings = {"format": FORMAT, "fov": fov, "patch_size": patch_size, "seed": seed}
    render = ItemRenderer(partial(render_view, fov, patch_size, seed))
    summaries = {}
    for split, (split_id, count) in {
        "train": (0, train_per_photo),
        "val": (1, val_per_photo),
    }.items():
        jobs = plan_views(count, split_id, shard_size, seed, split)
        summaries[split] = write_shards(
            out / split,
            jobs,
            render,
            settings,
            workers=workers,
            progress=progress,
            description=f"photos {split}",
        )
    return summaries
