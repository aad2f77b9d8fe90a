"""Set-up of shards behind URLs: their manifest, their sizes and their class map.

Sample counts come from the ``shards.json`` beside the shards (one request per folder), so the
split across ranks and workers reads no shard. Every shard is asked for its size (one request
each, in parallel threads): a missing shard, denied access or an unknown bucket is an error here,
before the first step, naming the URL, and a shard whose size differs from its manifest entry is
reported as the manifest disagreeing with its shards.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from lit_rpe.training.data.read_config import ShardReadConfig
from lit_rpe.training.data.shard_reader import describe, with_retries
from lit_rpe.training.data.shard_url import (
    call_with_timeout,
    open_filesystem,
    parent_url,
    sibling_url,
)
from lit_rpe.training.data.tar_io import ShardReadError

log = logging.getLogger(__name__)

MAKE_MANIFEST_HINT = (
    "write it where the shards were made with "
    "`python -m lit_rpe.training.data.make_manifest <folder>` "
    "and upload it beside them"
)


class RemoteSetupError(RuntimeError):
    """Shards behind a URL cannot be used: missing, not accessible, or no usable manifest."""


def read_remote_json(url: str, config: ShardReadConfig) -> object | None:
    """The JSON document at ``url``; ``None`` if there is none; ``RemoteSetupError`` naming the
    URL when it cannot be read (access denied, unknown bucket, retries spent) or parsed."""
    fs, path = open_filesystem(url, config)

    def attempt() -> bytes:
        return call_with_timeout(fs, "cat_file", path, timeout=config.timeout_s)

    try:
        text = with_retries(url, "reading", attempt, config)
    except ShardReadError as err:
        if isinstance(err.__cause__, FileNotFoundError):
            return None
        raise RemoteSetupError(str(err)) from err
    try:
        return json.loads(text)
    except ValueError as err:
        raise RemoteSetupError(f"{url} is not valid JSON: {err}") from err


def _size(url: str, config: ShardReadConfig) -> int:
    fs, path = open_filesystem(url, config)
    try:
        info = with_retries(
            url,
            "size",
            lambda: call_with_timeout(fs, "info", path, timeout=config.timeout_s),
            config,
        )
    except ShardReadError as err:
        raise RemoteSetupError(str(err)) from err
    if info.get("size") is None:  # ranged reads need it: a server that hides it cannot serve
        raise RemoteSetupError(f"{url}: the server reports no size (no Content-Length)")
    return int(info["size"])


def remote_sample_counts(
    urls: Sequence[str], config: ShardReadConfig, threads: int = 16
) -> list[int]:
    """Sample count of every shard URL from the ``shards.json`` of its folder, after checking
    that every shard exists, is readable and has its manifest's byte size."""
    manifests: dict[str, dict[str, tuple[int, int]]] = {}
    for url in urls:
        folder = parent_url(url)
        if folder in manifests:
            continue
        manifest_url = sibling_url(url, "shards.json")
        body = read_remote_json(manifest_url, config)
        if body is None:
            raise RemoteSetupError(
                f"no shards.json at {manifest_url}: shards behind a URL need their manifest "
                f"(its sample counts split them across ranks unread); {MAKE_MANIFEST_HINT}"
            )
        try:
            entries = body["shards"]
            manifests[folder] = {e["name"]: (int(e["samples"]), int(e["bytes"])) for e in entries}
        except (KeyError, TypeError, ValueError) as err:
            raise RemoteSetupError(f"unreadable manifest {manifest_url}: {describe(err)}") from err
    listed = []
    for url in urls:
        entry = manifests[parent_url(url)].get(url.rpartition("/")[2])
        if entry is None:
            raise RemoteSetupError(
                f"{url} is not listed in {sibling_url(url, 'shards.json')}; {MAKE_MANIFEST_HINT}"
            )
        listed.append(entry)
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(urls)))) as pool:
        sizes = list(pool.map(lambda u: _size(u, config), urls))
    for url, (samples, size), actual in zip(urls, listed, sizes, strict=True):
        if actual != size:
            raise RemoteSetupError(
                f"shards.json disagrees with {url}: it lists {size} bytes, the shard has "
                f"{actual}; {MAKE_MANIFEST_HINT}"
            )
        if samples == 0:
            raise RemoteSetupError(f"shard {url} contains no samples")
    return [samples for samples, _ in listed]


def remote_classes(first_url: str, config: ShardReadConfig) -> dict[str, int] | None:
    """The ``classes.json`` beside the first shard or in its parent folder, else ``None``."""
    folder = parent_url(first_url)
    candidates = [f"{folder}/classes.json"]
    try:
        candidates.append(f"{parent_url(folder)}/classes.json")
    except ValueError:  # the shards sit at the top of a bucket or server
        pass
    for url in candidates:
        body = read_remote_json(url, config)
        if body is not None:
            if not isinstance(body, dict):
                raise RemoteSetupError(f"{url} must map class names to the indices 0..n-1")
            log.info("class map from %s", url)
            return body
    return None
