"""Precompute VAE latents of image shards (the optional fast path; trade-offs in data/README.md).

    python -m lit_rpe.prep.precompute_latents --shards 'imagenet-wds/train' \\
        --out imagenet-latents/train --vae /models/sd-vae-ft-ema --resolution 256 --zoom 1.25

Every image is resized once so that it covers ``zoom x resolution`` (short side ``zoom * R`` for a
square target), trimmed centrally to a multiple of the VAE factor and encoded (posterior mean,
scaled). Each output shard holds, per sample, ``latent.npy`` ((C, h, w) float16), optionally
``latent_flip.npy`` (the latent of the mirrored image) and the ``cls`` label; ``classes.json`` and
``shards.json`` (with the encoding settings) go beside them. Read them with
``ImageShardDataModule(precomputed_latents=True)``, which crops ``resolution / 8`` latent cells.
Re-running the command finishes missing shards only.
"""

from __future__ import annotations

import argparse
import io
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from lit_rpe.models.vae import SDVAE
from lit_rpe.prep.shard_writer import Sample, ShardJob, WriteSummary, run_builder, write_shards
from lit_rpe.resolution import as_height_width
from lit_rpe.training.data.decode import (
    CorruptSample,
    cover_scale,
    covering_size,
    image_field,
    load_rgb,
    open_image,
    parse_label,
)
from lit_rpe.training.data.shard_list import CLASSES_NAME, expand_shards, find_classes_file
from lit_rpe.training.data.tar_io import ShardReadError, iter_tar_samples
from lit_rpe.training.data.transforms import center_offsets


def encoding_size(
    image_size: tuple[int, int], target: tuple[int, int], zoom: float, factor: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(resized (width, height), trimmed (width, height)) for an image of ``image_size``: the
    resize covers ``target * zoom``; the trim is centred and a multiple of ``factor``."""
    zoomed = (round(target[0] * zoom), round(target[1] * zoom))
    resized = covering_size(image_size, cover_scale(image_size, zoomed), zoomed)
    return resized, (resized[0] // factor * factor, resized[1] // factor * factor)


def prepare_image(data: bytes, target: tuple[int, int], zoom: float, factor: int) -> np.ndarray:
    """(H', W', 3) uint8: the image resized and trimmed for encoding."""
    image = open_image(data)
    resized, trimmed = encoding_size(image.size, target, zoom, factor)
    decoded, extent = load_rgb(image, resized)
    picture = decoded.resize(resized, Image.Resampling.BICUBIC, box=(0, 0, *extent))
    top, left = center_offsets(resized, (trimmed[1], trimmed[0]))
    return np.asarray(picture.crop((left, top, left + trimmed[0], top + trimmed[1])))


class LatentEncoder:
    """Job renderer: reads one image shard, encodes its images in same-size batches."""

    def __init__(
        self,
        vae: SDVAE,
        target: tuple[int, int],
        zoom: float,
        flip: bool,
        batch_size: int,
        device: torch.device,
    ):
        self.vae, self.target, self.zoom, self.flip = vae, target, zoom, flip
        self.batch_size, self.device = batch_size, device

    def _encode(self, pictures: list[np.ndarray]) -> list[np.ndarray]:
        batch = torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).to(self.device)
        latents = self.vae.encode(batch.float().div(127.5).sub(1.0))
        return list(latents.cpu().to(torch.float16).numpy())

    def _flush(self, keys: list[str], pictures: dict[str, np.ndarray], fields: dict) -> None:
        """Encode one same-size batch (and its mirror) into ``fields``; frees the pictures."""
        variants = [("latent.npy", False)] + ([("latent_flip.npy", True)] if self.flip else [])
        for name, mirrored in variants:
            batch = [pictures[k][:, ::-1] if mirrored else pictures[k] for k in keys]
            for key, latent in zip(keys, self._encode(batch), strict=True):
                buffer = io.BytesIO()
                np.save(buffer, latent, allow_pickle=False)
                fields[key][name] = buffer.getvalue()
        for key in keys:
            del pictures[key]

    def __call__(self, job: ShardJob) -> tuple[list[Sample], list[list[Any]]]:
        shard = job.items[0][0]
        pictures: dict[str, np.ndarray] = {}
        fields: dict[str, dict[str, bytes]] = {}  # in shard order
        buckets: dict[tuple[int, ...], list[str]] = {}  # same-size images awaiting encoding
        unreadable: list[list[Any]] = []
        try:
            for raw in iter_tar_samples(shard):
                try:
                    label = parse_label(raw.fields, None)
                    picture = prepare_image(
                        image_field(raw.fields), self.target, self.zoom, self.vae.downsample
                    )
                except CorruptSample as err:
                    unreadable.append([[shard, raw.key], str(err)])
                    continue
                fields[raw.key] = {"cls": str(label).encode()}
                pictures[raw.key] = picture
                bucket = buckets.setdefault(picture.shape, [])
                bucket.append(raw.key)
                if len(bucket) == self.batch_size:
                    self._flush(buckets.pop(picture.shape), pictures, fields)
        except ShardReadError as err:
            unreadable.append([[shard, None], str(err)])
        for keys in buckets.values():
            self._flush(keys, pictures, fields)
        return list(fields.items()), unreadable


def precompute_latents(
    shards: str | list[str],
    out: str | Path,
    vae: SDVAE,
    resolution: int | tuple[int, int],
    zoom: float = 1.0,
    flip: bool = False,
    batch_size: int = 32,
    device: str = "cpu",
    progress: bool = True,
) -> WriteSummary:
    """Encode every shard of ``shards`` into ``out`` (same shard names); see the module doc."""
    target = as_height_width(resolution)
    if zoom < 1.0 or any(t % vae.downsample for t in target):
        raise ValueError(f"need zoom >= 1 and a resolution that is a multiple of {vae.downsample}")
    paths = expand_shards(shards)
    names = [Path(p).name for p in paths]
    if len(set(names)) != len(names):
        raise ValueError("input shards from different folders share file names")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    classes = find_classes_file(paths)
    if classes is not None and not (out / CLASSES_NAME).exists():
        shutil.copyfile(classes, out / CLASSES_NAME)
    settings = {
        "resolution": list(target),
        "zoom": zoom,
        "flip": flip,
        "downsample": vae.downsample,
        "scale_factor": vae.scale_factor,
    }
    jobs = [
        ShardJob(name, ((path, Path(path).stat().st_size),))
        for name, path in zip(names, paths, strict=True)
    ]
    encoder = LatentEncoder(vae.to(device), target, zoom, flip, batch_size, torch.device(device))
    return write_shards(
        out,
        jobs,
        encoder,
        settings,
        workers=1,
        progress=progress,
        description="latents",
        extra={"latent": settings},
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Precompute VAE latents of image shards.")
    parser.add_argument("--shards", required=True, nargs="+", help="input shards (pattern/folder)")
    parser.add_argument("--out", required=True, help="output folder for the latent shards")
    parser.add_argument("--vae", required=True, help="local AutoencoderKL folder")
    parser.add_argument(
        "--resolution", type=int, nargs="+", default=[256], help="training crop in pixels: R or H W"
    )
    parser.add_argument("--zoom", type=float, default=1.0, help="resize to cover zoom x resolution")
    parser.add_argument("--flip", action="store_true", help="also store the mirrored latents")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    resolution = args.resolution[0] if len(args.resolution) == 1 else tuple(args.resolution)
    summary = precompute_latents(
        args.shards,
        args.out,
        SDVAE(args.vae),
        resolution,
        args.zoom,
        args.flip,
        args.batch_size,
        args.device,
        progress=not args.no_progress,
    )
    print(
        f"{summary.samples} latent samples in {summary.written + summary.reused} shards "
        f"({summary.written} written) -> {args.out}; {len(summary.unreadable)} unreadable"
    )


if __name__ == "__main__":
    run_builder(main)
