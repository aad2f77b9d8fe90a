"""Convert an ImageNet-style or class-per-folder image tree into WebDataset shards.

    python -m lit_rpe.prep.make_shards /data/imagenet --out /data/imagenet-wds \\
        [--val-labels LOC_val_solution.csv] [--shard-size 1000] [--workers 16]

writes ``OUT/classes.json`` (class name -> index, sorted names) and ``OUT/<split>/shard-NNNNNN.tar``
with ``shards.json``. Samples are shuffled across shards (seeded), so a shuffle buffer mixes
classes from the first batch on. JPEG and PNG files are stored byte for byte (decoding a sample
gives exactly the pixels of the original file); other formats are stored as lossless PNG.
Unreadable files are skipped and listed in ``OUT/<split>/unreadable.txt`` and in the summary.
Stopping and re-running the same command finishes the missing shards only.
"""

from __future__ import annotations

import argparse
import io
import os
from functools import partial
from pathlib import Path

from PIL import Image
from rich.console import Console

from lit_rpe.prep.image_tree import Entry, discover, sample_keys
from lit_rpe.prep.shard_writer import (
    ItemRenderer,
    ShardJob,
    UnreadableItem,
    WriteSummary,
    add_writer_options,
    print_summaries,
    run_builder,
    shuffled_jobs,
    write_shards,
)
from lit_rpe.training.data.shard_list import write_classes

FORMAT = "lit_rpe-shards/1"
SPLIT_IDS = {"train": 0, "val": 1}


def encode_file(data: bytes, path: Path, verify: str) -> dict[str, bytes]:
    """``{"jpg"|"png": bytes}`` for one image file; raises ``UnreadableItem`` if it cannot be
    read. ``verify="decode"`` decodes every pixel, ``"header"`` only parses the header."""
    try:
        image = Image.open(io.BytesIO(data))
        if verify == "decode" or image.format not in ("JPEG", "PNG"):
            image.load()
        if image.format == "JPEG":
            return {"jpg": data}
        if image.format == "PNG":
            return {"png": data}
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG")
        return {"png": buffer.getvalue()}
    except Exception as err:  # any decoder failure makes the file unreadable, not the run
        raise UnreadableItem(f"{path}: {type(err).__name__}: {err}") from None


def render_file(root: str, verify: str, item: tuple[str, int, str]) -> tuple[str, dict[str, bytes]]:
    """Sample ``(key, fields)`` of ``item = (key, label, path relative to root)``."""
    key, label, relative = item
    path = Path(root) / relative
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UnreadableItem(f"{path}: {err}") from None
    return key, {**encode_file(data, path, verify), "cls": str(label).encode()}


def plan_split(
    entries: list[Entry], classes: list[str], shard_size: int, seed: int, split: str
) -> list[ShardJob]:
    """Shuffle the split's samples (seeded) and cut them into shards of ``shard_size``."""
    index = {name: i for i, name in enumerate(classes)}
    items = [
        (key, index[name], rel)
        for key, (rel, name) in zip(sample_keys(entries), entries, strict=True)
    ]
    return shuffled_jobs(items, shard_size, [seed, SPLIT_IDS.get(split, 2)])


def convert_tree(
    src: str | os.PathLike,
    out: str | os.PathLike,
    val_labels: str | os.PathLike | None = None,
    val_fraction: float = 0.0,
    shard_size: int = 1000,
    workers: int = 1,
    seed: int = 0,
    verify: str = "decode",
    progress: bool = True,
) -> dict[str, WriteSummary]:
    """Convert the tree at ``src`` into shards under ``out``; returns a summary per split."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    if verify not in ("decode", "header"):
        raise ValueError(f"verify must be 'decode' or 'header', got {verify!r}")
    root = Path(src).expanduser().resolve()
    out = Path(out).expanduser().resolve()
    classes, splits = discover(root, val_labels, val_fraction, seed)
    write_classes(out, classes)
    render = ItemRenderer(partial(render_file, str(root), verify))
    summaries = {}
    for split, entries in splits.items():
        jobs = plan_split(entries, classes, shard_size, seed, split)
        summary = write_shards(
            out / split,
            jobs,
            render,
            {"format": FORMAT, "verify": verify},
            workers=workers,
            progress=progress,
            description=split,
            extra={"source": str(root)},
        )
        if summary.unreadable:
            lines = [f"{item[2]}\t{reason}" for item, reason in summary.unreadable]
            (out / split / "unreadable.txt").write_text("\n".join(lines) + "\n")
        summaries[split] = summary
    return summaries


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="image tree: train/<class>/*, val/..., or <class>/*")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--val-labels", help="label file for a flat val/ folder")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.0,
        help="hold out this fraction per class as val (class-per-folder trees)",
    )
    add_writer_options(parser, shard_size=1000)
    parser.add_argument(
        "--verify",
        choices=("decode", "header"),
        default="decode",
        help="decode every image (finds truncated files) or parse headers only",
    )
    args = parser.parse_args(argv)
    summaries = convert_tree(
        args.src,
        args.out,
        args.val_labels,
        args.val_fraction,
        args.shard_size,
        args.workers,
        args.seed,
        args.verify,
        progress=not args.no_progress,
    )
    print_summaries(summaries, Path(args.out).resolve(), Console())


if __name__ == "__main__":
    run_builder(main)
