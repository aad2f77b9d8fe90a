"""Build the shapes data set (offline): ``python data/build_shapes.py [--out data/shapes]``.

Writes ``OUT/train/*.tar``, ``OUT/val/*.tar`` and ``OUT/classes.json``: one coloured flat or
tall bar per image on a smooth grey background, 10 classes (colour x shape), drawn from seeded
scene records (``lit_rpe.prep.shapes``). Running it again with the same arguments does
nothing. See data/README.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from lit_rpe.prep.shapes_shards import build_shapes_set
from lit_rpe.prep.shard_writer import add_writer_options, print_summaries, run_builder

DEFAULT_OUT = Path(__file__).resolve().parent / "shapes"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the shapes data set (no download).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    parser.add_argument("--train-per-class", type=int, default=500)
    parser.add_argument("--val-per-class", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=64, help="stored image side, pixels")
    add_writer_options(parser, shard_size=1000)
    args = parser.parse_args(argv)
    summaries = build_shapes_set(
        args.out,
        args.train_per_class,
        args.val_per_class,
        args.image_size,
        args.shard_size,
        args.seed,
        args.workers,
        progress=not args.no_progress,
    )
    print_summaries(summaries, args.out, Console())


if __name__ == "__main__":
    run_builder(main)
