"""Data: WebDataset shard streaming, crops with their boxes, shard writers, the photo set, VAE.

The VAE wrapper lives in ``lit_rpe.data.vae`` (imported on demand: it pulls in diffusers).
"""

from lit_rpe.data.datamodule import ImageShardDataModule
from lit_rpe.data.decode import CorruptSample
from lit_rpe.data.latent_transforms import LatentCropWithBox
from lit_rpe.data.loader import StreamLoader
from lit_rpe.data.samples import SampleDecoder, collate
from lit_rpe.data.shard_list import expand_shards, load_classes, shard_sample_counts
from lit_rpe.data.stream import ShardStream
from lit_rpe.data.tar_io import RawSample, ShardReadError, iter_tar_samples, write_tar
from lit_rpe.data.transforms import (
    CenterCropWithBox,
    CropPlan,
    RandomResizedCropWithBox,
    adm_center_crop,
    as_height_width,
)

__all__ = [
    "CenterCropWithBox",
    "CorruptSample",
    "CropPlan",
    "ImageShardDataModule",
    "LatentCropWithBox",
    "RandomResizedCropWithBox",
    "RawSample",
    "SampleDecoder",
    "ShardReadError",
    "ShardStream",
    "StreamLoader",
    "adm_center_crop",
    "as_height_width",
    "collate",
    "expand_shards",
    "iter_tar_samples",
    "load_classes",
    "shard_sample_counts",
    "write_tar",
]
