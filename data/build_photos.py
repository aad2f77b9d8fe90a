"""Build the embedded photo set (offline): ``python data/build_photos.py [--out data/photos]``.

Writes ``OUT/train/*.tar``, ``OUT/val/*.tar`` and ``OUT/classes.json`` from the sample photographs
that scikit-image, scikit-learn and matplotlib install (one class per photograph, many fixed
views of each). Running it again with the same arguments does nothing. See data/README.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from lit_rpe.prep.photos import build_photo_set
from lit_rpe.prep.shard_writer import add_writer_options, print_summaries, run_builder

DEFAULT_OUT = Path(__file__).resolve().parent / "photos"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the embedded photo set (no download).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    parser.add_argument("--train-per-photo", type=int, default=300)
    parser.add_argument("--val-per-photo", type=int, default=50)
    parser.add_argument("--patch-size", type=int, default=128, help="stored patch side, pixels")
    parser.add_argument(
        "--fov", type=float, default=0.5, help="patch side as a fraction of the photo's short side"
    )
    add_writer_options(parser, shard_size=500)
    args = parser.parse_args(argv)
    summaries = build_photo_set(
        args.out,
        args.train_per_photo,
        args.val_per_photo,
        args.patch_size,
        args.fov,
        args.shard_size,
        args.seed,
        args.workers,
        progress=not args.no_progress,
    )
    print_summaries(summaries, args.out, Console())


if __name__ == "__main__":
    run_builder(main)
