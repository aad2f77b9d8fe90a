"""Loader throughput: the streaming shard pipeline against a naive decode-then-resize loader,
and local shards against the same shards streamed from a loopback HTTP server.

    python -m bench.cpu.loader [--images 480] [--resolution 256] [--workers 2]

Builds a set of large JPEG photographs (views of the bundled sample photos, long side 600-1400
px, quality 90), writes them once as shards and once as a plain folder (the same bytes), and
times one epoch of each loader with the same augmentation (RPE-2D random resize-and-crop, zoom
up to 1.5, flips) and the same number of DataLoader workers:

- stream, draft decode: ``ImageShardDataModule`` (tar shards, JPEG draft-mode decoding, only
  the crop window resampled);
- stream, full decode: the same with ``fast_decode=False``;
- naive folder: map-style dataset over the files: full PIL decode, float tensor, antialiased
  bicubic ``interpolate`` of the whole image, then crop and flip.

Then the shards are served by an HTTP server in this process (a thread, on 127.0.0.1, with byte
ranges: the tests' ``remote_servers.http_server``) and read through ``http://`` URLs with their
``shards.json``: local vs HTTP with 1 and ``--workers`` workers, and HTTP with the local cache
(``read.cache_dir``, timed on its second, cached epoch). The overhead is HTTP / local time.

Reports images/s over the whole epoch (worker start-up included) and after the first batch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from bench.common.machine import machine_line
from lit_rpe.prep.photos import PHOTOS, load_photo
from lit_rpe.training.data import ImageShardDataModule
from lit_rpe.training.data.make_manifest import manifest_entries
from lit_rpe.training.data.read_config import ShardReadConfig
from lit_rpe.training.data.shard_list import write_manifest
from lit_rpe.training.data.tar_io import write_tar

# the loopback HTTP server with byte ranges the remote-shard tests use: one home for it
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "training" / "data"))
from remote_servers import http_server  # noqa: E402


def make_photos(folder: Path, count: int, long_side: tuple[int, int], seed: int) -> list[Path]:
    """``count`` JPEGs: random views (aspect 4:3, 3:4 or 1:1) of the bundled photographs."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        photo = load_photo(PHOTOS[i % len(PHOTOS)].name)
        aspect = [4 / 3, 3 / 4, 1.0][int(rng.integers(3))]
        height = min(photo.height, photo.width / aspect) * rng.uniform(0.7, 1.0)
        width = height * aspect
        left, top = rng.uniform(0, photo.width - width), rng.uniform(0, photo.height - height)
        size = int(rng.integers(*long_side))
        out = (size, round(size / aspect)) if aspect >= 1 else (round(size * aspect), size)
        view = photo.resize(
            out, Image.Resampling.BICUBIC, box=(left, top, left + width, top + height)
        )
        path = folder / f"img{i:05d}.jpg"
        view.save(path, format="JPEG", quality=90)
        paths.append(path)
    return paths


def write_bench_shards(paths: list[Path], folder: Path, per_shard: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n, start in enumerate(range(0, len(paths), per_shard)):
        samples = [
            (p.stem, {"jpg": p.read_bytes(), "cls": str(i % len(PHOTOS)).encode()})
            for i, p in enumerate(paths[start : start + per_shard], start)
        ]
        write_tar(folder / f"shard-{n:06d}.tar", samples)


class NaiveFolderDataset(Dataset):
    """Decode everything, convert to float, resize the whole image, then crop: the usual
    first implementation of a random resize-and-crop."""

    def __init__(self, paths: list[Path], resolution: int, max_zoom: float, seed: int):
        self.paths, self.resolution, self.max_zoom, self.seed = paths, resolution, max_zoom, seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        with Image.open(self.paths[index]) as image:
            pixels = torch.from_numpy(np.asarray(image.convert("RGB")).copy())
        x = pixels.permute(2, 0, 1)[None].float() / 127.5 - 1
        height, width = x.shape[-2:]
        scale = self.resolution * rng.uniform(1, self.max_zoom) / min(height, width)
        size = (
            max(self.resolution, round(height * scale)),
            max(self.resolution, round(width * scale)),
        )
        x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)[0]
        top = int(rng.integers(0, size[0] - self.resolution + 1))
        left = int(rng.integers(0, size[1] - self.resolution + 1))
        x = x[:, top : top + self.resolution, left : left + self.resolution]
        if rng.random() < 0.5:
            x = x.flip(-1)
        return {"image": x.clamp(-1, 1), "label": torch.tensor(index % len(PHOTOS))}


def time_epoch(loader) -> tuple[int, float, float]:
    """(images, seconds for the epoch, seconds after the first batch arrived)."""
    start = time.perf_counter()
    images, first = 0, None
    for batch in loader:
        images += batch["image"].shape[0]
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    return images, end - start, end - first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=480)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--long-side", type=int, nargs=2, default=(600, 1400))
    parser.add_argument("--repeats", type=int, default=2, help="epochs per loader; best is kept")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp:
        paths = make_photos(Path(tmp) / "files", args.images, tuple(args.long_side), args.seed)
        write_bench_shards(paths, Path(tmp) / "shards", per_shard=64)
        classes = {photo.name: i for i, photo in enumerate(PHOTOS)}
        (Path(tmp) / "shards" / "classes.json").write_text(json.dumps(classes))
        sizes = [Image.open(p).size for p in paths]
        mean_pixels = np.mean([w * h for w, h in sizes]) / 1e6
        common = dict(
            resolution=args.resolution,
            batch_size=args.batch_size,
            num_workers=args.workers,
            shuffle_buffer=64,
            max_zoom=1.5,
            samples_per_epoch=args.images,
            seed=args.seed,
        )
        loaders = {
            "stream, draft decode": ImageShardDataModule(str(Path(tmp) / "shards"), **common),
            "stream, full decode": ImageShardDataModule(
                str(Path(tmp) / "shards"), fast_decode=False, **common
            ),
            "naive folder": DataLoader(
                NaiveFolderDataset(paths, args.resolution, 1.5, args.seed),
                batch_size=args.batch_size,
                num_workers=args.workers,
                shuffle=True,
                drop_last=True,
            ),
        }
        print(machine_line())
        print("precision: none (decoding and resizing only, uint8 and float32; no model runs)")
        print(
            f"{args.images} JPEGs, mean {mean_pixels:.2f} MP (long side {args.long_side[0]}-"
            f"{args.long_side[1]} px) -> {args.resolution}px random resize-and-crop, "
            f"batch {args.batch_size}, {args.workers} workers, {os.cpu_count()} CPU cores"
        )
        print(f"{'loader':<36}{'images/s':>10}{'after 1st batch':>18}{'epoch s':>10}")
        results = {}
        for name, source in loaders.items():
            results[name] = time_best(source, args)
            print_row(name, results[name])
        ratio = results["stream, draft decode"][0] / results["naive folder"][0]
        print(f"streaming pipeline / naive baseline: {ratio:.2f}x")
        compare_http(Path(tmp) / "shards", common, args)


def time_best(source, args) -> tuple[float, float, float]:
    """Best of ``args.repeats`` epochs: (images/s, images/s after the first batch, seconds);
    printed as a row."""
    best = None
    for _ in range(args.repeats):
        loader = source.train_dataloader() if isinstance(source, ImageShardDataModule) else source
        images, total, steady = time_epoch(loader)
        run = (images / total, (images - args.batch_size) / steady, total)
        best = run if best is None or run[0] > best[0] else best
    return best


def print_row(name: str, result: tuple[float, float, float]) -> None:
    print(f"{name:<36}{result[0]:>10.1f}{result[1]:>18.1f}{result[2]:>10.2f}")


def compare_http(folder: Path, common: dict, args) -> None:
    """Local shards against the same shards over loopback HTTP, 1 and ``args.workers``
    workers, and HTTP through the local cache (its second epoch)."""
    write_manifest(folder, manifest_entries(folder))
    names = sorted(p.name for p in folder.glob("*.tar"))
    spec = f"shard-{{000000..{len(names) - 1:06d}}}.tar"
    print(f"\nlocal vs loopback HTTP ({len(names)} shards, read.block_size 4 MiB)")
    print(f"{'loader':<36}{'images/s':>10}{'after 1st batch':>18}{'epoch s':>10}")
    with http_server(folder.parent) as (base, _), tempfile.TemporaryDirectory() as cache:
        url = f"{base}/{folder.name}/{spec}"
        rows = {}
        for workers in sorted({1, args.workers}):
            options = {**common, "num_workers": workers}
            local = ImageShardDataModule(str(folder), **options)
            remote = ImageShardDataModule(url, **options)
            rows[f"local, {workers} worker(s)"] = time_best(local, args)
            rows[f"http, {workers} worker(s)"] = time_best(remote, args)
            print_row(f"local, {workers} worker(s)", rows[f"local, {workers} worker(s)"])
            print_row(f"http, {workers} worker(s)", rows[f"http, {workers} worker(s)"])
        cached = ImageShardDataModule(url, **common, read=ShardReadConfig(cache_dir=cache))
        time_epoch(cached.train_dataloader())  # fills the cache
        rows["http + cache (warm)"] = time_best(cached, args)
        print_row(f"http + cache (warm), {args.workers} worker(s)", rows["http + cache (warm)"])
    for workers in sorted({1, args.workers}):
        local, http = rows[f"local, {workers} worker(s)"], rows[f"http, {workers} worker(s)"]
        print(
            f"http / local, {workers} worker(s): epoch time {local[0] / http[0]:.2f}x, "
            f"after the first batch {local[1] / http[1]:.2f}x"
        )


if __name__ == "__main__":
    main()
