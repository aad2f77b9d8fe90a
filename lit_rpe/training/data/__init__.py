"""The training data loader: WebDataset shards streamed as crops with their boxes.

- ``datamodule``: ``ImageShardDataModule``, train/val loaders, epochs, exact mid-epoch resume.
- ``stream``, ``stream_plan``: ``ShardStream`` (the batches of one rank) and how ranks x workers
  split the shards; ``loader``: ``StreamLoader``, the DataLoader that learns its epoch when
  iterated and carries the resume state.
- ``validation_images``: ``validation_batches``, centre-cropped validation images for evaluation.
- ``shard_list``, ``tar_io``: shard patterns, counts, ``classes.json``; reading and writing tars.
- ``read_config``, ``shard_url``, ``shard_reader``, ``shard_source``, ``shard_cache``,
  ``remote_manifest``, ``make_manifest``: shards behind URLs and ``pipe:`` commands (timeouts,
  retries, resumption, cache, manifests) and the limit on skipped samples.
- ``decode``, ``transforms``, ``latent_transforms``: image decoding, crops with their boxes;
  ``samples``: raw sample -> decoded crop -> batch dict.

The offline builders (shard writer, photo set, latents) are in ``lit_rpe.prep``.
Names are imported on first use.
"""

from lit_rpe._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "CenterCropWithBox": "transforms",
        "CorruptSample": "decode",
        "CropPlan": "transforms",
        "ImageShardDataModule": "datamodule",
        "LatentCropWithBox": "latent_transforms",
        "RandomResizedCropWithBox": "transforms",
        "RawSample": "tar_io",
        "SampleDecoder": "samples",
        "ShardReadConfig": "read_config",
        "ShardSource": "shard_source",
        "ShardReadError": "tar_io",
        "ShardStream": "stream",
        "StreamLoader": "loader",
        "TooManySkippedSamples": "read_config",
        "adm_center_crop": "transforms",
        "collate": "samples",
        "expand_shards": "shard_list",
        "iter_tar_samples": "tar_io",
        "load_classes": "shard_list",
        "shard_sample_counts": "shard_list",
        "validation_batches": "validation_images",
        "write_tar": "tar_io",
    },
)
