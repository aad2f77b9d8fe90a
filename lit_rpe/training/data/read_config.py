"""``ShardReadConfig``: how shards are read, the one home of every read policy setting.

Timeouts, retries and the block size apply to shards behind a URL (``http(s)://``, ``s3://``,
``gs://``, any fsspec protocol) and to ``pipe:`` commands; the skipped-sample limit applies to
every shard, local ones included (a truncated or damaged shard loses samples wherever it lives).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class TooManySkippedSamples(RuntimeError):
    """More samples of an epoch were skipped than ``max_skipped_fraction`` allows."""


@dataclass(frozen=True)
class ShardReadConfig:
    """Args:
    timeout_s: seconds any single network read (or connection) may wait before it counts as a
        failed attempt.
    retries: further attempts after a failed read (dropped connection, timeout, 5xx) before the
        rest of the shard is skipped; each resumes at the byte where the last one stopped.
    retry_delay_s: wait before the first retry, doubled for each further one (backoff).
    block_size: bytes fetched per ranged request of a remote shard (read sequentially).
    max_skipped_fraction: training stops with ``TooManySkippedSamples`` once the samples skipped
        in an epoch (corrupt, unlabeled, lost with an unreadable shard) exceed this fraction of
        the epoch's samples on a rank; 1.0 never stops.
    cache_dir: keep a copy of every remote shard in this folder (shared safely by ranks and
        workers) and read it from there; ``None`` streams every epoch from the source.
    cache_limit_gb: the cache's size limit; the least recently used shards are removed.
    storage_options: options of the fsspec filesystem per protocol, e.g.
        ``{"s3": {"endpoint_url": "http://minio:9000"}}`` (credentials come from the usual
        environment of boto3 / gcsfs, never from here).
    """

    timeout_s: float = 60.0
    retries: int = 5
    retry_delay_s: float = 1.0
    block_size: int = 4 * 1024 * 1024
    max_skipped_fraction: float = 0.05
    cache_dir: str | None = None
    cache_limit_gb: float = 100.0
    storage_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.retry_delay_s < 0:
            raise ValueError("read.timeout_s must be > 0 and read.retry_delay_s >= 0")
        if self.retries < 0 or self.block_size < 1:
            raise ValueError("read.retries must be >= 0 and read.block_size >= 1")
        if not 0.0 <= self.max_skipped_fraction <= 1.0:
            raise ValueError(
                f"read.max_skipped_fraction must be in [0, 1], got {self.max_skipped_fraction}"
            )
        if self.cache_limit_gb <= 0:
            raise ValueError(f"read.cache_limit_gb must be > 0, got {self.cache_limit_gb}")

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based): exponential backoff."""
        return self.retry_delay_s * 2 ** (attempt - 1)

    def skip_budget(self, samples: int) -> int:
        """Samples of ``samples`` that may be skipped before ``TooManySkippedSamples``."""
        return int(self.max_skipped_fraction * samples)
