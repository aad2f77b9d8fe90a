"""Where a shard lives: a local path, a URL of any fsspec protocol, or a ``pipe:`` command.

A shard specification entry is one of
- a local path (``/data/train/shard-000000.tar``, ``file:///data/...`` is the same file),
- a URL that fsspec opens: ``http(s)://``, ``s3://`` (extra ``lit_rpe[s3]``), ``gs://``
  (extra ``lit_rpe[gcs]``), or any other protocol fsspec has a filesystem for,
- ``pipe:<command>``: the WebDataset convention, the command's standard output is the tar.

The manifest (``shards.json``) and ``classes.json`` of a URL shard are read from the same
location (the URL with its last path segment replaced), so no pass over remote data is needed.
"""

from __future__ import annotations

from typing import Any

import fsspec
from fsspec.asyn import AsyncFileSystem

from lit_rpe.training.data.read_config import ShardReadConfig

PIPE_PREFIX = "pipe:"
_SCHEME_SEPARATOR = "://"


def is_pipe(shard: str) -> bool:
    """``pipe:<command>`` shards (read from the command's standard output)."""
    return shard.startswith(PIPE_PREFIX)


def url_protocol(shard: str) -> str | None:
    """The protocol of a URL (``"http"``, ``"s3"``), ``None`` for a local path or a pipe."""
    if is_pipe(shard):
        return None
    scheme, separator, _ = shard.partition(_SCHEME_SEPARATOR)
    return scheme.lower() if separator and scheme.isidentifier() else None


def is_remote(shard: str) -> bool:
    """True for shards read through fsspec (``http``, ``s3``, ...): not local files or pipes."""
    return url_protocol(shard) not in (None, "file")


def local_path(shard: str) -> str:
    """The file path of a local shard (``file://`` stripped)."""
    return shard[len("file://") :] if url_protocol(shard) == "file" else shard


def sibling_url(url: str, name: str) -> str:
    """``name`` in the folder of ``url``: ``s3://b/train/a.tar`` -> ``s3://b/train/<name>``."""
    return f"{parent_url(url)}/{name}"


def parent_url(url: str) -> str:
    """The URL of the folder that holds ``url`` (its last path segment removed)."""
    head, _, _ = url.rstrip("/").rpartition("/")
    if head.endswith(":/") or not head:
        raise ValueError(f"{url!r} names no file inside a folder or bucket")
    return head


def filesystem_options(protocol: str, config: ShardReadConfig) -> dict[str, Any]:
    """The fsspec options of ``protocol``: ``config.storage_options`` plus the read timeouts
    (botocore's own retries are turned off, since the reader retries with resumption at the
    byte; see ``shard_reader``)."""
    options = dict(config.storage_options.get(protocol, {}))
    if protocol in ("http", "https"):
        import aiohttp  # fsspec's HTTP filesystem is built on it

        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=config.timeout_s, sock_read=config.timeout_s
        )
        options.setdefault("client_kwargs", {"timeout": timeout})
    elif protocol in ("s3", "s3a"):
        options.setdefault(
            "config_kwargs",
            {
                "connect_timeout": config.timeout_s,
                "read_timeout": config.timeout_s,
                "retries": {"max_attempts": 1},
            },
        )
    return options


def open_filesystem(url: str, config: ShardReadConfig) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem serving ``url`` and the path within it.

    Raises ``ValueError`` naming the protocol and the extra to install when fsspec has no
    filesystem for it or its library is missing."""
    protocol = url_protocol(url) or "file"
    try:
        cls = fsspec.get_filesystem_class(protocol)
    except (ValueError, ImportError) as err:
        extra = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}.get(protocol)
        hint = f"pip install 'lit_rpe[{extra}]'" if extra else "a filesystem fsspec knows"
        raise ValueError(f"cannot read {url}: no filesystem for {protocol}:// ({hint})") from err
    fs = cls(**filesystem_options(protocol, config))
    return fs, cls._strip_protocol(url) if protocol not in ("http", "https") else url


def call_with_timeout(fs: fsspec.AbstractFileSystem, method: str, *args, timeout: float, **kw):
    """``fs.<method>(*args, **kw)`` that raises ``fsspec.FSTimeoutError`` after ``timeout``
    seconds on an asynchronous filesystem (http, s3, gcs); plain call otherwise."""
    if isinstance(fs, AsyncFileSystem):
        return getattr(fs, method)(*args, timeout=timeout, **kw)
    return getattr(fs, method)(*args, **kw)
