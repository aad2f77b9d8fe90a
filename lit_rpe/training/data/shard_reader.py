"""Opening a shard for reading wherever it lives, with timeouts, retries and resumption.

- local files are opened directly (seekable: the tar reader steps over unread members);
- URLs are read as a sequential stream of ranged requests of ``block_size`` bytes through fsspec
  (``RangedReader``); nothing is downloaded before the first sample. A failed request (dropped
  connection, timeout, 5xx) is retried with backoff and resumes at the byte where the last one
  stopped; a missing file or denied access is not retried;
- ``pipe:`` commands are read from their standard output (``PipeReader``); a failure reruns the
  command and discards the bytes already delivered (resumption at the byte, the expensive way).

Every fault that retries cannot fix ends as ``ShardReadError`` naming the shard, which the
stream turns into "rest of the shard skipped and counted".
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import select
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import BinaryIO, TypeVar

from fsspec.exceptions import FSTimeoutError

from lit_rpe.training.data.read_config import ShardReadConfig
from lit_rpe.training.data.shard_url import (
    PIPE_PREFIX,
    call_with_timeout,
    is_pipe,
    is_remote,
    local_path,
    open_filesystem,
)
from lit_rpe.training.data.tar_io import ShardReadError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Faults a later attempt can fix. Missing files and denied access (FileNotFoundError,
# PermissionError: what fsspec raises for 404 / 403 / an unknown bucket) are not among them.
_PERMANENT: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    FSTimeoutError,
    EOFError,
)
try:  # fsspec's HTTP filesystem raises aiohttp's errors (payload cut, 5xx, disconnects)
    import aiohttp

    _TRANSIENT += (aiohttp.ClientError,)
    _CLIENT_STATUS_ERROR: type[BaseException] | None = aiohttp.ClientResponseError
except ImportError:  # pragma: no cover - aiohttp comes with fsspec[http]
    _CLIENT_STATUS_ERROR = None


def is_permanent(err: BaseException) -> bool:
    """Not worth retrying: a missing file, denied access, or an HTTP 4xx other than 408/429."""
    if isinstance(err, _PERMANENT):
        return True
    if _CLIENT_STATUS_ERROR is not None and isinstance(err, _CLIENT_STATUS_ERROR):
        return 400 <= err.status < 500 and err.status not in (408, 429)
    return not isinstance(err, _TRANSIENT)


def describe(err: BaseException) -> str:
    """One line for a log or an error: the exception's type and message, and its cause's (fsspec
    reports an HTTP 403 as a ``FileNotFoundError`` caused by the response error)."""
    text = str(err).splitlines()[0] if str(err) else ""
    line = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return f"{line} ({describe(err.__cause__)})" if err.__cause__ is not None else line


def with_retries(shard: str, what: str, attempt: Callable[[], T], config: ShardReadConfig) -> T:
    """``attempt()`` retried with backoff on transient faults; ``ShardReadError`` naming the
    shard, ``what`` was being read and the last fault once ``config.retries`` are spent."""
    fault: BaseException | None = None
    for retry in range(config.retries + 1):
        if retry:
            delay = config.retry_delay(retry)
            log.warning(
                "retry %d/%d of %s (%s) in %.1f s: %s",
                retry,
                config.retries,
                shard,
                what,
                delay,
                describe(fault),
            )
            time.sleep(delay)
        try:
            return attempt()
        except Exception as err:  # classified just below; anything unknown is permanent
            if is_permanent(err):
                raise ShardReadError(shard, f"{what}: {describe(err)}") from err
            fault = err
    raise ShardReadError(
        shard, f"{what}: gave up after {config.retries} retries: {describe(fault)}"
    ) from fault


class RangedReader(io.RawIOBase):
    """A remote file read front to back in ranged requests of ``config.block_size`` bytes.

    Seekable (a seek only moves the position), so the tar reader steps over members it does not
    need. ``size`` in bytes, e.g. from the manifest (``None``: asked from the server)."""

    def __init__(self, url: str, config: ShardReadConfig, size: int | None = None):
        super().__init__()
        self.url, self.config = url, config
        self.fs, self.path = open_filesystem(url, config)
        if size is None:
            size = with_retries(url, "size", self._info, config).get("size")
            if size is None:
                raise ShardReadError(url, "the server reports no size (no Content-Length)")
        self.size = int(size)
        self.pos = 0
        self._block_start, self._block = 0, b""

    def _info(self):
        return call_with_timeout(self.fs, "info", self.path, timeout=self.config.timeout_s)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def _fetch(self, start: int) -> bytes:
        end = min(start + self.config.block_size, self.size)

        def attempt() -> bytes:
            data = call_with_timeout(
                self.fs, "cat_file", self.path, start=start, end=end, timeout=self.config.timeout_s
            )
            if len(data) > end - start:  # the whole file: ranged reads would download it N times
                raise ValueError("the server ignores HTTP Range requests")
            if not data:
                raise EOFError(f"no data at byte {start} of {self.size}")
            return data

        return with_retries(self.url, f"bytes {start}-{end} of {self.size}", attempt, self.config)

    def readinto(self, buffer) -> int:
        if self.pos >= self.size:
            return 0
        offset = self.pos - self._block_start
        if not 0 <= offset < len(self._block):
            self._block_start, self._block = self.pos, self._fetch(self.pos)
            offset = 0
        n = min(len(buffer), len(self._block) - offset)
        buffer[:n] = self._block[offset : offset + n]
        self.pos += n
        return n


class PipeReader(io.RawIOBase):
    """The standard output of ``pipe:<command>``, read with a timeout per read.

    A read that times out, or a command that exits with an error, reruns the command (up to
    ``config.retries`` times, with backoff) and discards the bytes already delivered."""

    def __init__(self, shard: str, config: ShardReadConfig):
        super().__init__()
        self.shard, self.command, self.config = shard, shard[len(PIPE_PREFIX) :], config
        self.delivered = 0
        self._process: subprocess.Popen | None = None
        self._stderr: BinaryIO | None = None

    def readable(self) -> bool:
        return True

    def _start(self) -> None:
        self._stop()
        # stderr goes to a file: a pipe nobody reads would stall a chatty command
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            self.command, shell=True, stdout=subprocess.PIPE, stderr=self._stderr
        )
        to_skip = self.delivered
        while to_skip:
            chunk = self._read_some(min(to_skip, 1 << 20))
            if not chunk:
                raise EOFError(f"the command ended after {self.delivered - to_skip} bytes")
            to_skip -= len(chunk)

    def _read_some(self, n: int) -> bytes:
        assert self._process is not None and self._process.stdout is not None
        fd = self._process.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], self.config.timeout_s)
        if not ready:
            raise TimeoutError(f"no output within {self.config.timeout_s} s")
        chunk = os.read(fd, n)
        if not chunk and self._process.wait(timeout=self.config.timeout_s) != 0:
            self._stderr.seek(0)
            stderr = self._stderr.read().decode(errors="replace").strip()
            raise OSError(f"exit status {self._process.returncode}: {stderr[-200:]}")
        return chunk

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process.stdout.close()
            self._stderr.close()
            self._process = None

    def readinto(self, buffer) -> int:
        def attempt() -> bytes:
            try:
                if self._process is None:
                    self._start()
                return self._read_some(len(buffer))
            except Exception:
                self._stop()  # the next attempt reruns the command
                raise

        what = f"output after byte {self.delivered}"
        chunk = with_retries(self.shard, what, attempt, self.config)
        buffer[: len(chunk)] = chunk
        self.delivered += len(chunk)
        return len(chunk)

    def close(self) -> None:
        self._stop()
        super().close()


def open_shard_stream(
    shard: str, config: ShardReadConfig, size: int | None = None
) -> tuple[BinaryIO, bool]:
    """``(binary file, seekable)`` of a shard; ``ShardReadError`` naming it if it cannot be
    opened. ``size``: its byte size where known (saves a request for a URL)."""
    if is_pipe(shard):
        return io.BufferedReader(PipeReader(shard, config), 1 << 20), False
    if is_remote(shard):
        return io.BufferedReader(RangedReader(shard, config, size), 1 << 16), True
    try:
        return open(local_path(shard), "rb"), True
    except OSError as err:
        raise ShardReadError(shard, describe(err)) from err
