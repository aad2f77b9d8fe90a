"""``python -m lit_rpe.training.data.make_manifest FOLDER``: write ``shards.json`` for a folder
of shards.

The suite's shard writers leave a manifest beside their shards; shards made by other tools do not.
Shards read from a URL need one (their sample counts split them across ranks and workers without
reading them), so make it where the shards are local, then upload it beside them.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lit_rpe.training.data.shard_list import MANIFEST_NAME, write_manifest
from lit_rpe.training.data.tar_io import count_tar_samples


def manifest_entries(folder: Path, threads: int = 8) -> list[dict]:
    """``{"name", "samples", "bytes"}`` of every ``.tar`` in ``folder``, counted from the tar
    headers (whose end is checked: a damaged shard is an error naming it)."""
    shards = sorted(p for p in folder.iterdir() if p.suffix == ".tar" and p.is_file())
    if not shards:
        raise FileNotFoundError(f"{folder} contains no .tar file")
    with ThreadPoolExecutor(max_workers=threads) as pool:
        counts = list(pool.map(count_tar_samples, shards))
    return [
        {"name": p.name, "samples": n, "bytes": p.stat().st_size}
        for p, n in zip(shards, counts, strict=True)
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the folder of .tar shards")
    folder = parser.parse_args(argv).folder
    entries = manifest_entries(folder)
    write_manifest(folder, entries)
    total = sum(e["samples"] for e in entries)
    print(f"{folder / MANIFEST_NAME}: {len(entries)} shard(s), {total} samples")


if __name__ == "__main__":
    main()
