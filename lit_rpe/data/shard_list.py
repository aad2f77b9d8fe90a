"""Shard lists: expanding patterns, checking the files, sample counts, the class-index map.

A shard specification is a path, a brace pattern (``train/shard-{000000..000099}.tar``), a glob
(``train/*.tar``), a folder (every ``.tar`` in it) or a list of these. Relative paths are resolved
against the current directory. Every problem is reported before any data is read, naming the
pattern or file at fault.

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

from lit_rpe.data.tar_io import count_tar_samples

log = logging.getLogger(__name__)

MANIFEST_NAME = "shards.json"
CLASSES_NAME = "classes.json"
_GLOB_CHARS = set("*?[")


def _expand_one(pattern: str) -> list[Path]:
    if not pattern.strip():
        raise ValueError("empty shard path in the shard specification")
    found: list[Path] = []
    for item in braceexpand(pattern):
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
    """Absolute paths of every shard named by ``spec``, in order; raises on a missing or empty one.

    Raises ``FileNotFoundError`` for a pattern that matches nothing or a missing file and
    ``ValueError`` for an empty path or a zero-byte shard."""
    patterns = [spec] if isinstance(spec, str) else list(spec)
    if not patterns:
        raise ValueError("the shard specification is an empty list")
    shards: list[Path] = []
    for pattern in patterns:
        shards.extend(_expand_one(str(pattern)))
    for shard in shards:
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


def shard_sample_counts(shards: Sequence[str], threads: int = 8) -> list[int]:
    """Sample count of every shard: from ``shards.json`` where its entry matches the file size,
    otherwise by reading the tar headers (slow on a network file system; logged)."""
    manifests: dict[Path, dict[str, tuple[int, int]]] = {}
    counts: list[int | None] = []
    for shard in shards:
        path = Path(shard)
        if path.parent not in manifests:
            manifests[path.parent] = _manifest_counts(path.parent)
        entry = manifests[path.parent].get(path.name)
        fresh = entry is not None and entry[1] == path.stat().st_size
        counts.append(entry[0] if fresh else None)
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
    """``classes.json`` beside the first shard or in its parent folder, else ``None``."""
    folder = Path(shards[0]).parent
    for candidate in (folder / CLASSES_NAME, folder.parent / CLASSES_NAME):
        if candidate.is_file():
            return candidate
    return None


def read_classes(shards: Sequence[str], classes_file: str | None = None) -> dict[str, int]:
    """The class map of a shard set: ``classes_file``, else the ``classes.json`` found beside the
    first shard (``find_classes_file``); ``FileNotFoundError`` naming where it was looked for."""
    path = classes_file or find_classes_file(shards)
    if path is None:
        raise FileNotFoundError(
            f"no classes.json beside {shards[0]} or in its parent folder; pass num_classes= "
            "or classes_file= (make_shards and build_photos.py write it)"
        )
    return load_classes(path)


def load_classes(path: str | os.PathLike) -> dict[str, int]:
    """The class name -> index map; checks that the indices are exactly 0..n-1."""
    classes = json.loads(Path(path).read_text())
    if not isinstance(classes, dict) or sorted(classes.values()) != list(range(len(classes))):
        raise ValueError(f"{path} must map class names to the indices 0..n-1")
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
