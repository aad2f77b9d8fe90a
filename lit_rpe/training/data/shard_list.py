"""Shard lists: expanding patterns, checking the files, sample counts, the class-index map.

A shard specification is a path, a brace pattern (``train/shard-{000000..000099}.tar``), a glob
(``train/*.tar``), a folder (every ``.tar`` in it) or a list of these. Relative paths are resolved
against the current directory. URLs (``https://``, ``s3://``, ``gs://``, any fsspec protocol;
``file://`` is a local path) and ``pipe:<command>`` entries take brace patterns too
(``shard_url``; their set-up is in ``remote_manifest``). Every problem is reported before any
data is read, naming the pattern or file at fault.

Beside the shards the writer leaves ``shards.json`` (sample count and byte size of every shard, so
that splitting the stream across ranks needs no pass over the data) and ``classes.json`` (class
name -> index) one level up or in the same folder.
"""

from __future__ import annotations

import glob
import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from braceexpand import braceexpand

from lit_rpe.training.data.read_config import ShardReadConfig
from lit_rpe.training.data.remote_manifest import (
    read_remote_json,
    remote_classes,
    remote_sample_counts,
)
from lit_rpe.training.data.shard_source import ShardSource
from lit_rpe.training.data.shard_url import is_pipe, is_remote, local_path
from lit_rpe.training.data.tar_io import count_tar_samples

log = logging.getLogger(__name__)

MANIFEST_NAME = "shards.json"
CLASSES_NAME = "classes.json"
_GLOB_CHARS = set("*?[")


def _expand_one(pattern: str) -> list[Path | str]:
    if not pattern.strip():
        raise ValueError("empty shard path in the shard specification")
    if is_remote(pattern) or is_pipe(pattern):
        urls = list(braceexpand(pattern))
        if not is_pipe(pattern) and any(_GLOB_CHARS & set(u) for u in urls):
            raise ValueError(
                f"shard URL {pattern!r}: glob patterns work on local paths only; "
                "name the shards with a brace pattern (shard-{000000..000099}.tar)"
            )
        return urls
    found: list[Path] = []
    for item in braceexpand(local_path(pattern)):
        path = Path(item).expanduser()
        path = path if path.is_absolute() else Path.cwd() / path
        if _GLOB_CHARS & set(item):
            matches = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file())
            if not matches:
                raise FileNotFoundError(f"shard pattern {pattern!r} matches no file ({path})")
            found.extend(matches)
        elif path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.suffix == ".tar" and p.is_file())
            if not matches:
                raise FileNotFoundError(f"shard folder {path} contains no .tar file")
            found.extend(matches)
        else:
            found.append(path)
    return found


def expand_shards(spec: str | Sequence[str]) -> list[str]:
    """Absolute paths (URLs, pipes) of every shard named by ``spec``, in order; raises on a
    missing or empty local one (URLs are checked by ``shard_sample_counts``).

    Raises ``FileNotFoundError`` for a pattern that matches nothing or a missing file and
    ``ValueError`` for an empty path or a zero-byte shard."""
    patterns = [spec] if isinstance(spec, str) else list(spec)
    if not patterns:
        raise ValueError("the shard specification is an empty list")
    shards: list[Path | str] = []
    for pattern in patterns:
        shards.extend(_expand_one(str(pattern)))
    for shard in shards:
        if isinstance(shard, str):  # a URL or a pipe
            continue
        if not shard.is_file():
            raise FileNotFoundError(f"shard {shard} does not exist")
        if shard.stat().st_size == 0:
            raise ValueError(f"shard {shard} is empty (0 bytes)")
    return [str(s) for s in shards]


def _manifest_counts(folder: Path) -> dict[str, tuple[int, int]]:
    """``{shard file name: (samples, bytes)}`` from the folder's manifest, if it has one."""
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        return {}
    try:
        entries = json.loads(manifest.read_text())["shards"]
        return {e["name"]: (int(e["samples"]), int(e["bytes"])) for e in entries}
    except (ValueError, KeyError, TypeError) as err:
        log.warning("ignoring unreadable manifest %s (%s)", manifest, err)
        return {}


def shard_sample_counts(
    shards: Sequence[str], threads: int = 8, config: ShardReadConfig | None = None
) -> list[int]:
    """Sample count of every shard. Local: from ``shards.json`` where its entry matches the file
    size (a mismatch is reported), otherwise by reading the tar headers (slow on a network file
    system; logged). URLs: from their manifest, checked against the shards (``remote_manifest``;
    ``RemoteSetupError`` naming the URL). Pipes: by running the command once (logged)."""
    config = config or ShardReadConfig()
    counts: list[int | None] = [None] * len(shards)
    remote = [i for i, s in enumerate(shards) if is_remote(s)]
    remote_counts = remote_sample_counts([shards[i] for i in remote], config) if remote else []
    for i, n in zip(remote, remote_counts, strict=True):
        counts[i] = n
    for i, shard in enumerate(shards):
        if is_pipe(shard):
            log.warning("counting the samples of %s by running it (no manifest for pipes)", shard)
            counts[i] = sum(1 for _ in ShardSource(config).samples(shard))
    manifests: dict[Path, dict[str, tuple[int, int]]] = {}
    for i, shard in enumerate(shards):
        if counts[i] is not None:
            continue
        path = Path(shard)
        if path.parent not in manifests:
            manifests[path.parent] = _manifest_counts(path.parent)
        entry = manifests[path.parent].get(path.name)
        if entry is not None and entry[1] == path.stat().st_size:
            counts[i] = entry[0]
        elif entry is not None:
            log.warning(
                "%s disagrees with shard %s (%d bytes listed, %d on disk): counting its samples "
                "from the tar headers",
                path.parent / MANIFEST_NAME,
                shard,
                entry[1],
                path.stat().st_size,
            )
    missing = [i for i, c in enumerate(counts) if c is None]
    if missing:
        log.info("counting samples of %d shard(s) without a manifest entry", len(missing))
        with ThreadPoolExecutor(max_workers=max(1, min(threads, len(missing)))) as pool:
            for i, n in zip(
                missing, pool.map(count_tar_samples, [shards[i] for i in missing]), strict=True
            ):
                counts[i] = n
    for shard, n in zip(shards, counts, strict=True):
        if n == 0:
            raise ValueError(f"shard {shard} contains no samples")
    return [int(c) for c in counts]


def find_classes_file(shards: Sequence[str]) -> Path | None:
    """``classes.json`` beside the first (local) shard or in its parent folder, else ``None``."""
    if is_remote(shards[0]) or is_pipe(shards[0]):
        return None
    folder = Path(shards[0]).parent
    for candidate in (folder / CLASSES_NAME, folder.parent / CLASSES_NAME):
        if candidate.is_file():
            return candidate
    return None


def read_classes(
    shards: Sequence[str], classes_file: str | None = None, config: ShardReadConfig | None = None
) -> dict[str, int]:
    """The class map of a shard set: ``classes_file``, else the ``classes.json`` found beside the
    first shard (``find_classes_file``; for a URL, at the same location);
    ``FileNotFoundError`` naming where it was looked for."""
    if classes_file is not None and is_remote(classes_file):
        classes = read_remote_json(classes_file, config or ShardReadConfig())
        if classes is None:
            raise FileNotFoundError(f"classes_file {classes_file} does not exist")
        return _checked_classes(classes, classes_file)
    if classes_file is None and is_remote(shards[0]):
        classes = remote_classes(shards[0], config or ShardReadConfig())
        if classes is None:
            raise FileNotFoundError(
                f"no classes.json beside {shards[0]} or in its parent folder; pass num_classes= "
                "or classes_file= (make_shards and build_photos.py write it)"
            )
        return _checked_classes(classes, shards[0])
    path = classes_file or find_classes_file(shards)
    if path is None:
        raise FileNotFoundError(
            f"no classes.json beside {shards[0]} or in its parent folder; pass num_classes= "
            "or classes_file= (make_shards and build_photos.py write it)"
        )
    return load_classes(path)


def load_classes(path: str | os.PathLike) -> dict[str, int]:
    """The class name -> index map; checks that the indices are exactly 0..n-1."""
    return _checked_classes(json.loads(Path(path).read_text()), path)


def _checked_classes(classes: object, where: str | os.PathLike) -> dict[str, int]:
    if not isinstance(classes, dict) or sorted(classes.values()) != list(range(len(classes))):
        raise ValueError(f"{where} must map class names to the indices 0..n-1")
    return {str(k): int(v) for k, v in classes.items()}


def write_classes(folder: Path, names: Sequence[str]) -> None:
    """Write ``classes.json`` (name -> position in ``names``); an identical file is left alone,
    a different one is an error (two data sets in one folder)."""
    text = json.dumps({name: i for i, name in enumerate(names)}, indent=1) + "\n"
    path = folder / CLASSES_NAME
    if path.is_file():
        if json.loads(path.read_text()) != json.loads(text):
            raise FileExistsError(f"{path} lists other classes; use another output folder")
        return
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_manifest(folder: Path, entries: list[dict], extra: dict | None = None) -> None:
    """Write ``shards.json``: ``entries`` are ``{"name", "samples", "bytes"}`` per shard."""
    body = {"shards": sorted(entries, key=lambda e: e["name"]), **(extra or {})}
    text = json.dumps(body, indent=1, sort_keys=True) + "\n"
    path = folder / MANIFEST_NAME
    if path.is_file() and path.read_text() == text:
        return  # unchanged: a re-run that finds everything done leaves the folder untouched
    tmp = folder / (MANIFEST_NAME + ".partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_manifest(folder: Path) -> dict | None:
    """The parsed ``shards.json`` of a folder, or ``None`` if it has none."""
    manifest = folder / MANIFEST_NAME
    return json.loads(manifest.read_text()) if manifest.is_file() else None
