"""The shapes data set as shards: ``build_shapes_set`` writes ``train/`` and ``val/`` with the
suite's shard writer, ``load_scenes`` reads the scene records back for references.

A sample is ``{key}.png`` (the scene rendered at ``image_size``, lossless), ``{key}.cls`` (the
label) and ``{key}.json`` (the scene record, ``Scene.to_dict``; the image readers ignore it).
Scenes are drawn from the seed sequence ``[seed, split id, label, index]``, ``per_class`` of
every class, shuffled together (seeded) and cut into shards.

Stored size (default 64 px, twice the CPU study's 32 px training resolution): the ADM centre
crop at 32 px is then one box-filter halving of a 64 px render of the whole canvas (the object
keeps its relative size and place), and RPE-2D's random resize-and-crop (zoom u <= 2) only ever
downsamples, so its crops stay sharp. That crop shows a window of 1/u of the canvas: objects
look u times larger and one near the edge may be cut; this is the augmentation under study, so
sizes are compared against true renders of the whole canvas (``load_scenes`` +
``render_scenes``), not against training crops.
"""

from __future__ import annotations

import io
import json
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from lit_rpe.prep.shapes import CLASSES, Scene, draw_scene, render_scene, render_scenes
from lit_rpe.prep.shard_writer import (
    ItemRenderer,
    ShardJob,
    WriteSummary,
    shuffled_jobs,
    write_shards,
)
from lit_rpe.training.data.shard_list import expand_shards, write_classes
from lit_rpe.training.data.tar_io import iter_tar_samples

FORMAT = "lit_rpe-shapes/2"  # bump when the drawing or the rendering changes
SPLITS = {"train": 0, "val": 1}


def encode_png(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes (deterministic for a given zlib)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def render_sample(
    image_size: int, seed: int, item: tuple[str, int, int, int]
) -> tuple[str, dict[str, bytes]]:
    """Sample of ``item = (key, label, split id, index)``: PNG, label and scene record."""
    key, label, split, index = item
    scene = draw_scene(label, [seed, split, label, index])
    fields = {
        "png": encode_png(render_scene(scene, image_size)),
        "cls": str(label).encode(),
        "json": json.dumps(scene.to_dict(), sort_keys=True).encode(),
    }
    return key, fields


def plan_scenes(per_class: int, split: str, shard_size: int, seed: int) -> list[ShardJob]:
    """``per_class`` scenes of every class of ``split``, shuffled together, cut into shards."""
    items = [
        (f"{split}_{name}_{i:05d}", label, SPLITS[split], i)
        for label, name in enumerate(CLASSES)
        for i in range(per_class)
    ]
    return shuffled_jobs(items, shard_size, [seed, SPLITS[split], 0x5A9E])


def build_shapes_set(
    out: str | Path,
    train_per_class: int = 500,
    val_per_class: int = 100,
    image_size: int = 64,
    shard_size: int = 1000,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, WriteSummary]:
    """Write ``out/train/*.tar``, ``out/val/*.tar`` and ``out/classes.json``; a re-run with the
    same arguments finds every shard finished and writes nothing."""
    if image_size < 8 or min(train_per_class, val_per_class) < 1 or shard_size < 1:
        raise ValueError(
            "need image_size >= 8 px, at least one scene per class and split, shard_size >= 1; "
            f"got image_size={image_size}, train_per_class={train_per_class}, "
            f"val_per_class={val_per_class}, shard_size={shard_size}"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_classes(out, CLASSES)
    settings = {"format": FORMAT, "image_size": image_size, "seed": seed}
    render = ItemRenderer(partial(render_sample, image_size, seed))
    summaries = {}
    for split, per_class in (("train", train_per_class), ("val", val_per_class)):
        summaries[split] = write_shards(
            out / split,
            plan_scenes(per_class, split, shard_size, seed),
            render,
            settings,
            workers=workers,
            progress=progress,
            description=f"shapes {split}",
        )
    return summaries


def load_scenes(shards: str | list[str], limit: int | None = None) -> list[tuple[str, int, Scene]]:
    """(key, label, scene) of the samples of ``shards`` (a folder, pattern or list), in shard
    order, the first ``limit`` of them; raises ``ValueError`` for a sample without a scene."""
    found: list[tuple[str, int, Scene]] = []
    for shard in expand_shards(shards):
        for sample in iter_tar_samples(shard):
            if limit is not None and len(found) >= limit:
                return found
            if "json" not in sample.fields or "cls" not in sample.fields:
                raise ValueError(f"{shard}: sample {sample.key} has no scene record (.json)")
            scene = Scene.from_dict(json.loads(sample.fields["json"]))
            label = int(sample.fields["cls"])
            if scene.label != label:
                raise ValueError(
                    f"{shard}: sample {sample.key} is labelled {label}, its scene "
                    f"is of class {scene.label}"
                )
            found.append((sample.key, label, scene))
    return found


def reference_renders(
    shards: str | list[str], resolution: int | tuple[int, int], num_images: int
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``num_images`` scenes of ``shards`` drawn afresh at ``resolution``: true renders
    of the data distribution at any size. Returns (N, H, W, 3) uint8 images, (N,) int64 labels."""
    scenes = load_scenes(shards, num_images)
    if len(scenes) < num_images:
        raise ValueError(f"{shards} holds {len(scenes)} scenes, fewer than the {num_images} asked")
    labels = np.array([label for _, label, _ in scenes], dtype=np.int64)
    return render_scenes([scene for _, _, scene in scenes], resolution), labels
