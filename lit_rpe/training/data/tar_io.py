"""Reading and writing WebDataset tar shards.

A shard is a plain tar file whose members are named ``{key}.{field}``; consecutive members with
the same key form one sample (``n01440764_10026.jpg`` + ``n01440764_10026.cls``). The key is
everything before the first dot of the member's base name (directories included), the field is
everything after it, as in the WebDataset reference reader.

Reading checks how an archive ends. ``tarfile`` takes a cut at a member boundary, a header
overwritten with garbage or a zero block in the middle for the end of the archive and stops
without a word; here each of these is a ``ShardReadError``, as is an archive that ends before
the sample count the caller expects (the manifest's).

Writing is byte-for-byte deterministic (fixed mtime, owner and mode; fields in sorted order) and
atomic (a ``.partial`` file renamed into place), so a converter that is stopped and re-run
produces exactly the shards an uninterrupted run would have produced.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

PARTIAL_SUFFIX = ".partial"


class ShardReadError(RuntimeError):
    """A shard could not be opened or ended in the middle of a member (truncated, not a tar)."""

    def __init__(self, shard: str | Path, detail: str):
        super().__init__(f"cannot read shard {shard}: {detail}")
        self.shard = str(shard)


@dataclass
class RawSample:
    """One undecoded sample: ``fields`` maps a field name (``"jpg"``, ``"cls"``) to its bytes.

    ``index`` is the position of the sample inside its shard (0-based, every sample counted)."""

    key: str
    fields: dict[str, bytes]
    shard: str
    index: int


def split_member_name(name: str) -> tuple[str, str] | None:
    """``"a/b/key.seg.png"`` -> ``("a/b/key", "seg.png")``; ``None`` for a name without a field."""
    directory, _, base = name.rpartition("/")
    stem, dot, field = base.partition(".")
    if not dot or not stem or not field:
        return None
    return (f"{directory}/{stem}" if directory else stem), field.lower()


# Bytes after the end-of-archive marker that are checked to be zeros: a real end has at most a
# record's padding (10 KiB) there; data after a zero block means a header was zeroed.
_TRAILER_CHECK_BYTES = 1 << 20


class _CheckedTarInfo(tarfile.TarInfo):
    """Records on its archive why reading a header failed (``tarfile`` hides it)."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tarfile_)
        except tarfile.HeaderError as err:
            if isinstance(tarfile_, _CheckedTarFile):
                tarfile_.end_error = err
            raise


class _CheckedTarFile(tarfile.TarFile):
    """A ``TarFile`` that remembers the header error that ended it (``end_error``)."""

    tarinfo = _CheckedTarInfo
    end_error: tarfile.HeaderError | None = None


def _open_shard(shard: str, source: BinaryIO | None, seekable: bool) -> tarfile.TarFile:
    """Open a (possibly compressed) tar shard, or raise ``ShardReadError`` naming it.

    ``source``: an open binary stream of the shard (``None``: open the local file ``shard``);
    ``seekable=False`` reads it as a pure stream (``r|*``, a pipe)."""
    mode = "r:*" if seekable else "r|*"
    try:
        if source is None:
            return _CheckedTarFile.open(shard, mode=mode)
        return _CheckedTarFile.open(fileobj=source, mode=mode)
    except (tarfile.TarError, OSError) as err:
        raise ShardReadError(shard, f"{type(err).__name__}: {err}") from err


def _check_end(tar: _CheckedTarFile, shard: str) -> None:
    """Raise ``ShardReadError`` unless the archive ended at a proper end-of-archive marker."""
    err = tar.end_error
    if isinstance(err, tarfile.EOFHeaderError):
        trailer = tar.fileobj.read(_TRAILER_CHECK_BYTES)
        if trailer.strip(b"\0"):
            raise ShardReadError(shard, f"a zeroed header at byte {tar.offset} hides the rest")
        return
    if isinstance(err, tarfile.InvalidHeaderError):
        raise ShardReadError(shard, f"unreadable header at byte {tar.offset} ({err})")
    if isinstance(err, tarfile.TruncatedHeaderError):
        raise ShardReadError(shard, f"cut inside the header at byte {tar.offset}")
    raise ShardReadError(shard, f"ends at byte {tar.offset} without an end-of-archive marker")


def _tar_members(tar: _CheckedTarFile, shard: str) -> Iterator[tarfile.TarInfo]:
    """Regular-file members in archive order; reading a header skips over the previous data.
    The end of the archive is checked (``_check_end``)."""
    while True:
        try:
            member = tar.next()
        except (tarfile.TarError, EOFError, OSError) as err:
            raise ShardReadError(shard, f"{type(err).__name__}: {err}") from err
        if member is None:
            _check_end(tar, shard)
            return
        if member.isfile():
            yield member


def iter_tar_samples(
    path: str | Path,
    start: int = 0,
    stop: int | None = None,
    source: BinaryIO | None = None,
    seekable: bool = True,
) -> Iterator[RawSample]:
    """Samples ``start <= index < stop`` of one shard, in archive order.

    Samples before ``start`` are stepped over by their headers only (their data is never read
    from a seekable source), so reading the second half of a shard costs no more I/O than the
    half itself. ``source``/``seekable``: an open stream of the shard (``shard_reader``), else
    the local file ``path`` is opened. Raises ``ShardReadError`` naming the shard when the
    archive is unreadable, truncated, damaged, or ends before sample ``stop``."""
    shard = str(path)
    tar = _open_shard(shard, source, seekable)
    with tar:
        index, key, fields = -1, None, {}
        for member in _tar_members(tar, shard):
            parts = split_member_name(member.name)
            if parts is None:
                continue
            member_key, field = parts
            if member_key != key:
                if key is not None and index >= start:
                    yield RawSample(key, fields, shard, index)
                index, key, fields = index + 1, member_key, {}
                if stop is not None and index >= stop:
                    return
            if index >= start:
                handle = tar.extractfile(member)
                try:
                    fields[field] = handle.read() if handle is not None else b""
                except (tarfile.TarError, EOFError, OSError) as err:
                    raise ShardReadError(shard, f"member {member.name}: {err}") from err
                if len(fields[field]) != member.size:
                    raise ShardReadError(shard, f"member {member.name} is truncated")
        if key is not None and index >= start:
            yield RawSample(key, fields, shard, index)
        if stop is not None and index + 1 < stop:
            raise ShardReadError(shard, f"holds {index + 1} samples, {stop} were expected")


def count_tar_samples(path: str | Path) -> int:
    """Number of samples (distinct consecutive keys) in a shard, from its headers only."""
    shard = str(path)
    tar = _open_shard(shard, None, True)
    with tar:
        count, key = 0, None
        for member in _tar_members(tar, shard):
            parts = split_member_name(member.name)
            if parts is not None and parts[0] != key:
                count, key = count + 1, parts[0]
        return count


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0  # fixed metadata: identical content gives identical bytes
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_tar(path: str | Path, samples: Iterable[tuple[str, dict[str, bytes]]]) -> int:
    """Write ``(key, {field: bytes})`` samples to ``path`` atomically; returns the sample count.

    Keys must not contain a dot in their base name (the reader splits on the first dot)."""
    path = Path(path)
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    count = 0
    try:
        with tarfile.open(partial, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for key, fields in samples:
                if "." in key.rpartition("/")[2] or not key:
                    raise ValueError(f"sample key {key!r} is empty or contains a dot")
                for field in sorted(fields):
                    data = fields[field]
                    tar.addfile(_tar_info(f"{key}.{field}", len(data)), io.BytesIO(data))
                count += 1
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()
    return count
