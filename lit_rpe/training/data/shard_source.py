"""``ShardSource``: the samples of a shard wherever it lives (local, URL, pipe, cache).

The one object the stream needs to read shards: it holds the read policy (``ShardReadConfig``)
and is sent to every loader worker with the stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from lit_rpe.training.data.read_config import ShardReadConfig
from lit_rpe.training.data.shard_cache import ShardCache
from lit_rpe.training.data.shard_reader import open_shard_stream
from lit_rpe.training.data.shard_url import is_remote
from lit_rpe.training.data.tar_io import RawSample, iter_tar_samples

_GIB = 1024**3


@dataclass(frozen=True)
class ShardSource:
    """Reads samples of shards by the rules of ``config``."""

    config: ShardReadConfig = field(default_factory=ShardReadConfig)

    def cache(self) -> ShardCache | None:
        """The shared local cache of remote shards, if ``config.cache_dir`` asks for one."""
        if self.config.cache_dir is None:
            return None
        return ShardCache(self.config.cache_dir, int(self.config.cache_limit_gb * _GIB))

    def samples(
        self, shard: str, start: int = 0, stop: int | None = None, size: int | None = None
    ) -> Iterator[RawSample]:
        """Samples ``start <= index < stop`` of ``shard`` (``tar_io.iter_tar_samples``);
        ``size``: its byte size where known. ``ShardReadError`` naming the shard on a fault
        that retries could not fix."""
        cache = self.cache() if is_remote(shard) else None
        if cache is not None:
            source, seekable = open(cache.fetch(shard, self.config, size), "rb"), True
        else:
            source, seekable = open_shard_stream(shard, self.config, size)
        with source:
            yield from iter_tar_samples(shard, start, stop, source=source, seekable=seekable)
