"""A local copy of remote shards, shared by every rank and worker of a machine.

A shard is downloaded (with the reader's retries and resumption) to a file with a unique
``.partial`` name in the cache folder and renamed to its final name once complete, so a reader
never opens a half-written copy and several processes fetching the same shard at once each end
with a whole file (the last rename wins; the copies are identical). The least recently used
shards are removed when the folder exceeds its limit; a process still reading a removed shard
keeps reading it (POSIX keeps an open file until it is closed).
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from pathlib import Path

from lit_rpe.training.data.read_config import ShardReadConfig
from lit_rpe.training.data.shard_reader import RangedReader, describe
from lit_rpe.training.data.tar_io import ShardReadError

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
_COPY_CHUNK = 1 << 20


class ShardCache:
    """Shards of any URL kept in ``folder`` up to ``limit_bytes`` (least recently used go)."""

    def __init__(self, folder: str | os.PathLike, limit_bytes: int):
        self.folder = Path(folder).expanduser()
        self.limit_bytes = int(limit_bytes)

    def path_for(self, url: str) -> Path:
        """The cache file of ``url``: a hash of the whole URL (two buckets may hold the same
        file name) followed by the file name, for people looking at the folder."""
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        return self.folder / f"{digest}-{url.rstrip('/').rpartition('/')[2]}"

    def fetch(self, url: str, config: ShardReadConfig, size: int | None = None) -> Path:
        """The local copy of ``url``, downloaded first if the cache has none (or one of another
        size than ``size``); ``ShardReadError`` naming the URL if it cannot be downloaded."""
        path = self.path_for(url)
        if path.is_file() and (size is None or path.stat().st_size == size):
            os.utime(path)  # recently used: evicted last
            return path
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ShardReadError(url, f"cache folder {self.folder}: {describe(err)}") from err
        partial = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}")
        try:
            with RangedReader(url, config, size) as source, open(partial, "wb") as out:
                while chunk := source.read(_COPY_CHUNK):
                    out.write(chunk)
            os.replace(partial, path)
        except OSError as err:  # a full or read-only cache disk
            raise ShardReadError(url, f"caching to {partial}: {describe(err)}") from err
        finally:
            partial.unlink(missing_ok=True)
        log.info("cached %s as %s", url, path)
        self.evict(keep=path)
        return path

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Remove the least recently used whole shards until the folder fits its limit (never
        ``keep``); returns what was removed."""
        entries = []
        for entry in self.folder.iterdir():
            if entry.name.endswith(PARTIAL_SUFFIX) or not entry.is_file():
                continue
            try:
                stat = entry.stat()
            except FileNotFoundError:  # removed by another process meanwhile
                continue
            entries.append((stat.st_mtime_ns, stat.st_size, entry))
        total = sum(size for _, size, _ in entries)
        removed = []
        for _, size, entry in sorted(entries):
            if total <= self.limit_bytes:
                break
            if entry == keep:
                continue
            entry.unlink(missing_ok=True)
            total -= size
            removed.append(entry)
        if removed:
            log.info("cache %s: removed %d least recently used shard(s)", self.folder, len(removed))
        return removed
