"""Synthetic inputs of the GPU check: latent shards and a randomly initialised SD-VAE folder.

The device has no ImageNet and no SD-VAE weights. The Lightning run reads latent shards in
exactly the format ``lit_rpe.prep.precompute_latents`` writes (``{key}.latent.npy`` (4, h, w)
float16 + ``{key}.cls``, ``shards.json`` with the ``latent`` settings, ``classes.json``), written
through the same ``write_shards``, so the real ``ImageShardDataModule(precomputed_latents=True)``
streams them. Each latent is a fixed pattern of its class plus noise, so the loss has something
to learn. The VAE folder is a ``diffusers.AutoencoderKL`` with the SD-VAE architecture (or a tiny
one for CPU smoke runs) and random weights, saved as ``save_pretrained`` writes it: decoding
costs what the real VAE costs, and the images are noise.

    python -m bench.gpu.check_data <folder> [--resolution 256] [--train 2048] [--vae sd|tiny]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from lit_rpe.prep.shard_writer import ItemRenderer, Sample, ShardJob, write_shards
from lit_rpe.training.data.shard_list import write_classes

SCALE_FACTOR = 0.18215  # SD-VAE's latent scale
DOWNSAMPLE = 8
# The SD-VAE's architecture (stabilityai/sd-vae-ft-ema's config.json), and a tiny one with the
# same 8x downsampling and 4 latent channels for CPU runs.
VAE_CONFIGS = {
    "sd": dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32),
    "tiny": dict(block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4),
}


class LatentSampleMaker:
    """Picklable item renderer: sample index -> ``(key, {latent.npy, cls})``."""

    def __init__(self, side: int, num_classes: int, seed: int):
        self.side, self.num_classes, self.seed = side, num_classes, seed

    def pattern(self, label: int) -> np.ndarray:
        return np.random.default_rng([self.seed, 1, label]).standard_normal(
            (4, self.side, self.side)
        )

    def __call__(self, index: int) -> Sample:
        rng = np.random.default_rng([self.seed, 0, index])
        label = int(rng.integers(self.num_classes))
        noise = rng.standard_normal((4, self.side, self.side))
        latent = (0.8 * self.pattern(label) + 0.6 * noise).astype(np.float16)
        buffer = io.BytesIO()
        np.save(buffer, latent, allow_pickle=False)
        return f"sample{index:07d}", {"latent.npy": buffer.getvalue(), "cls": str(label).encode()}


def write_latent_shards(
    folder: str | Path,
    *,
    num_samples: int,
    resolution: int,
    zoom: float = 1.125,
    num_classes: int = 1000,
    shard_size: int = 512,
    seed: int = 0,
) -> Path:
    """Write ``num_samples`` latent samples of a ``resolution`` x ``zoom`` image (the random crop
    then has room to move) into ``folder``, with ``classes.json`` beside the shards."""
    folder = Path(folder)
    side = round(resolution * zoom) // DOWNSAMPLE
    settings = {
        "resolution": [resolution, resolution],
        "zoom": zoom,
        "flip": False,
        "downsample": DOWNSAMPLE,
        "scale_factor": SCALE_FACTOR,
        "synthetic": {"num_classes": num_classes, "seed": seed},
    }
    jobs = [
        ShardJob(f"shard-{n:06d}.tar", tuple(range(start, min(start + shard_size, num_samples))))
        for n, start in enumerate(range(0, num_samples, shard_size))
    ]
    render = ItemRenderer(LatentSampleMaker(side, num_classes, seed))
    write_shards(folder, jobs, render, settings, progress=False, extra={"latent": settings})
    write_classes(folder, [f"class{i:04d}" for i in range(num_classes)])
    return folder


def write_random_vae(folder: str | Path, size: str = "sd", seed: int = 0) -> Path:
    """A diffusers ``AutoencoderKL`` folder (config.json + safetensors) with random weights."""
    import torch
    from diffusers import AutoencoderKL

    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(seed)
    blocks = len(VAE_CONFIGS[size]["block_out_channels"])
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        latent_channels=4,
        sample_size=256,
        scaling_factor=SCALE_FACTOR,
        **VAE_CONFIGS[size],
    )
    vae.save_pretrained(str(folder), safe_serialization=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--train", type=int, default=2048, help="train samples")
    parser.add_argument("--val", type=int, default=256, help="validation samples")
    parser.add_argument("--vae", choices=list(VAE_CONFIGS), default="sd")
    args = parser.parse_args()
    root = Path(args.folder)
    write_latent_shards(root / "train", num_samples=args.train, resolution=args.resolution)
    write_latent_shards(root / "val", num_samples=args.val, resolution=args.resolution, seed=1)
    write_random_vae(root / "vae", args.vae)
    print(f"latent shards and a random {args.vae} VAE in {root}")


if __name__ == "__main__":
    main()
