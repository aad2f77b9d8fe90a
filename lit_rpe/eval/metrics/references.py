"""Reference images and statistics: the validation set, ADM centre-cropped at any resolution.

Every evaluated resolution gets its own reference: the same validation images, centre-cropped
(ADM protocol) to that H x W. Inception statistics of a reference are cached on disk under a
key of (data set, resolution, crop, number of images, Inception weights), so a grid computes
each one once; the SWD descriptors of a reference are kept in memory for the last two
resolutions (``reference_swd_descriptors``). ADM's published reference batches
(``VIRTUAL_imagenet256_labeled.npz``, ``VIRTUAL_imagenet512.npz``) can stand in at 256 and 512
(``import_adm_reference``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lit_rpe.distributed import all_gather_rows, gather_in_index_order, rank_and_world
from lit_rpe.eval.metrics.statistics import FeatureStatistics
from lit_rpe.eval.metrics.swd import (
    descriptor_row_width,
    descriptor_rows,
    laplacian_descriptors,
    rows_to_descriptors,
)
from lit_rpe.image_io import quantize_uint8
from lit_rpe.resolution import as_height_width
from lit_rpe.training.data.shard_list import expand_shards
from lit_rpe.training.data.shard_url import is_pipe, is_remote
from lit_rpe.training.data.validation_images import validation_batches

CROP = "adm_center"


def reference_images_uint8(
    shards: str | list[str], resolution: int | tuple[int, int], num_images: int, **kwargs
) -> torch.Tensor:
    """The first ``num_images`` validation images (``validation_batches``: ADM centre crop) of all
    ranks as uint8 (N, 3, H, W); kwargs go to ``validation_batches``."""
    chunks = [
        quantize_uint8(b["image"])
        for b in validation_batches(shards, resolution, num_images, **kwargs)
    ]
    images = torch.cat(chunks)
    return all_gather_rows(images.flatten(1)).view(-1, *images.shape[1:])


def dataset_key(shards: str | list[str]) -> str:
    """A short name for a shard set: its folder name plus a hash of the paths and sizes.

    Shards behind a URL or a ``pipe:`` command are keyed by their specification alone (no
    request is made for a cache name): a remote file replaced under the same URL keeps its key.
    """
    paths = expand_shards(shards)
    listing = [
        (p, None)
        if is_remote(p) or is_pipe(p)
        else (str(Path(p).resolve()), Path(p).stat().st_size)
        for p in paths
    ]
    digest = hashlib.sha1(json.dumps(listing).encode()).hexdigest()[:10]
    folder = paths[0].rstrip("/").rsplit("/", 2)[-2] if is_remote(paths[0]) else None
    return f"{folder or Path(paths[0]).parent.name}-{digest}"


@dataclass
class ReferenceFeatures:
    """Inception features of a reference set: streamed statistics plus the pooled rows.

    pool / spatial: FID and sFID statistics. pool_rows (N, 2048): for KID and precision/recall.
    """

    pool: FeatureStatistics
    spatial: FeatureStatistics
    pool_rows: torch.Tensor

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {**self.pool.arrays(), **self.spatial.arrays("_s")}
        tmp = path.with_suffix(".tmp.npz")  # written whole, then renamed: no half caches
        np.savez(tmp, pool_rows=self.pool_rows.numpy().astype(np.float32), **arrays)
        tmp.replace(path)

    def as_stored(self) -> ReferenceFeatures:
        """These statistics as ``save`` + ``load`` give them back (rebuilt from mu and sigma),
        so a freshly computed reference scores exactly like its cached copy."""
        pool, spatial = self.pool.arrays(), self.spatial.arrays()
        return ReferenceFeatures(
            FeatureStatistics.from_moments(pool["mu"], pool["sigma"], self.pool.count),
            FeatureStatistics.from_moments(spatial["mu"], spatial["sigma"], self.spatial.count),
            self.pool_rows.float(),
        )

    @classmethod
    def load(cls, path: Path) -> ReferenceFeatures:
        with np.load(path) as data:
            rows = torch.from_numpy(data["pool_rows"]) if "pool_rows" in data else None
        return cls(
            FeatureStatistics.load_npz(path),
            FeatureStatistics.load_npz(path, suffix="_s"),
            rows if rows is not None else torch.empty(0, 2048),
        )


def image_features(inception, images_uint8: torch.Tensor, batch_size: int = 50):
    """Run the FID Inception over uint8 (N, 3, H, W) images in batches; dict of (N, d) tensors."""
    device = next(inception.parameters()).device
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, images_uint8.shape[0], batch_size):
        out = inception(images_uint8[start : start + batch_size].to(device))
        for key, value in out.items():
            parts.setdefault(key, []).append(value.cpu())
    return {key: torch.cat(values) for key, values in parts.items()}


def reference_cache_path(
    cache_dir: str | Path,
    shards: str | list[str],
    resolution: int | tuple[int, int],
    num_images: int,
    weights_tag: str,
) -> Path:
    """``<cache_dir>/<dataset>/<crop>_<H>x<W>_n<N>_<weights_tag>.npz``: where the statistics of
    a reference are cached; a different data set, resolution, crop, count or weight file gets
    its own file."""
    h, w = as_height_width(resolution)
    return Path(cache_dir) / dataset_key(shards) / f"{CROP}_{h}x{w}_n{num_images}_{weights_tag}.npz"


def adm_reference_count(npz_path: str | Path) -> int:
    """The number of images of an ADM reference batch, read from the header of its ``arr_0``
    member without loading the images."""
    with zipfile.ZipFile(npz_path) as archive, archive.open("arr_0.npy") as member:
        version = np.lib.format.read_magic(member)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, _ = read_header(member)
    return int(shape[0])


def reference_features(
    inception,
    shards: str | list[str],
    resolution: int | tuple[int, int],
    num_images: int,
    *,
    cache_dir: str | Path,
    weights_tag: str,
    num_classes: int | None = None,
) -> ReferenceFeatures:
    """Inception statistics of ``num_images`` centre-cropped validation images, cached in
    ``reference_cache_path(...)``."""
    h, w = as_height_width(resolution)
    path = reference_cache_path(cache_dir, shards, (h, w), num_images, weights_tag)
    if path.is_file():
        return ReferenceFeatures.load(path)
    images = reference_images_uint8(shards, (h, w), num_images, num_classes=num_classes)
    feats = image_features(inception, images)
    ref = ReferenceFeatures(
        FeatureStatistics(feats["pool"].shape[1]).update(feats["pool"]),
        FeatureStatistics(feats["spatial"].shape[1]).update(feats["spatial"]),
        feats["pool"],
    )
    if rank_and_world()[0] == 0:  # every rank computed the same features; one writes them
        ref.save(path)
    return ref.as_stored()


@functools.lru_cache(maxsize=2)
def reference_swd_descriptors(
    shards: str | tuple[str, ...],
    resolution: tuple[int, int],
    num_images: int,
    *,
    seed: int,
    batch_size: int,
    num_classes: int | None = None,
) -> tuple[torch.Tensor, ...]:
    """SWD descriptors (``laplacian_descriptors``, finest level first, each (N * 128, 3, 7, 7))
    of the first ``num_images`` centre-cropped validation images at ``resolution``.

    Each rank describes its contiguous share (``validation_batches``) by global image index,
    so the patch positions and the gathered result do not depend on the number of ranks.
    Cached in memory for the last two (shards, resolution, ...) asked for; ``cache_clear()``
    frees them. Returns a tuple: the cached tensors are shared, never modify them.
    """
    rank, world = rank_and_world()
    first = rank * (num_images // world)  # validation_batches: rank r's share starts here
    indices, rows = [], []
    batches = validation_batches(
        list(shards) if isinstance(shards, tuple) else shards,
        resolution,
        num_images,
        batch_size=batch_size,
        num_classes=num_classes,
    )
    for batch in batches:
        images = quantize_uint8(batch["image"])
        start = first + len(indices)
        described = laplacian_descriptors(images, seed=seed, first_index=start)
        rows.append(descriptor_rows(described, images.shape[0]))
        indices += range(start, start + images.shape[0])
    local = torch.cat(rows) if rows else torch.empty(0, descriptor_row_width(resolution))
    return tuple(rows_to_descriptors(gather_in_index_order(indices, local), resolution))


def import_adm_reference(npz_path: str | Path, inception=None) -> ReferenceFeatures:
    """ADM's reference batch (``arr_0`` images, ``mu``/``sigma``, ``mu_s``/``sigma_s``).

    The published moments come from the TensorFlow graph and are used as they are for FID and
    sFID; with ``inception`` the images are also embedded here for KID and precision/recall.
    """
    path = Path(npz_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"ADM reference batch not found: {path}. Get VIRTUAL_imagenet256_labeled.npz or "
            "VIRTUAL_imagenet512.npz from the openai/guided-diffusion evaluations page."
        )
    with np.load(path) as data:
        missing = {"arr_0", "mu", "sigma", "mu_s", "sigma_s"} - set(data.files)
        if missing:
            raise KeyError(f"{path} is not an ADM reference batch: missing {sorted(missing)}")
        count = data["arr_0"].shape[0]
        pool = FeatureStatistics.from_moments(data["mu"], data["sigma"], count)
        spatial = FeatureStatistics.from_moments(data["mu_s"], data["sigma_s"], count)
        rows = torch.empty(0, pool.dim)
        if inception is not None:
            images = torch.from_numpy(data["arr_0"]).permute(0, 3, 1, 2).contiguous()
            rows = image_features(inception, images)["pool"]
    return ReferenceFeatures(pool, spatial, rows)
