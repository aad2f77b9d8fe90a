"""Checkpoint files that survive faults: atomic writes, cheap verification, resume selection.

- ``AtomicCheckpointIO`` writes every checkpoint to a temporary name in the same folder and
  renames it into place, so an interrupted write (a full disk, a killed job) never leaves a
  half-written file under a name resume tries.
- ``verify_checkpoint`` reads a file's zip central directory and its pickled index (without
  running or importing anything it names, and without reading tensor data), checks that the
  tensors it names are in the archive and that it has the keys resume needs. A damaged file
  raises ``DamagedCheckpoint`` with one line saying what is wrong.
- ``resume_checkpoint`` picks the newest readable of ``last.ckpt``, ``hpc_ckpt_<n>.ckpt`` and
  ``step*.ckpt``; damaged files newer than it are renamed aside (``<name>.damaged``, never
  deleted) and named in one line each. With none readable, ``NoReadableCheckpoint`` names them
  all and says what to do.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

# What Lightning needs to resume a fit (weights, optimizer, loop and step counters).
RESUME_KEYS = ("state_dict", "optimizer_states", "loops", "global_step")
DAMAGED_SUFFIX = ".damaged"


class DamagedCheckpoint(Exception):
    """A checkpoint file that cannot be read; the message says which and why, in one line."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


class NoReadableCheckpoint(Exception):
    """Every checkpoint a run directory holds is damaged."""


@dataclass(frozen=True)
class ResumeChoice:
    """The checkpoint to resume from (None: start afresh) and the damaged files set aside,
    as (damaged path, where it was moved, reason)."""

    path: Path | None
    set_aside: tuple[tuple[Path, Path, str], ...] = ()


class _Opaque:
    """What every pickled class becomes while a checkpoint's index is read: nothing runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:  # dict subclasses (OrderedDict)
        pass

    def append(self, value: Any) -> None:  # list subclasses
        pass

    def extend(self, values: Any) -> None:
        pass


class _IndexReader(pickle.Unpickler):
    """Reads a torch checkpoint's ``data.pkl`` without importing or running anything and
    without reading tensor data: classes become ``_Opaque``; tensor storages are recorded."""

    def __init__(self, file: Any):
        super().__init__(file)
        self.storage_keys: list[str] = []

    def find_class(self, module: str, name: str) -> type:
        return _Opaque

    def persistent_load(self, pid: Any) -> None:
        self.storage_keys.append(str(pid[2]))  # ("storage", type, key, location, numel)


def verify_checkpoint(path: str | Path, keys: tuple[str, ...] = RESUME_KEYS) -> None:
    """Raise ``DamagedCheckpoint`` unless ``path`` is a complete torch zip checkpoint holding
    ``keys``. Reads the zip central directory and the pickled index (CRC-checked), and checks
    that every tensor storage it names is in the archive; tensor data is not read, so the cost
    does not grow with the model, and nothing in the file is imported or run."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise DamagedCheckpoint(path, f"cannot be read ({err.strerror})") from err
    if size == 0:
        raise DamagedCheckpoint(path, "is empty")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            index = next((n for n in names if n.endswith("/data.pkl")), None)
            if index is None:
                raise DamagedCheckpoint(path, "is a zip file but not a torch checkpoint")
            with archive.open(index) as f:
                reader = _IndexReader(f)
                checkpoint = reader.load()
    except zipfile.BadZipFile as err:
        raise DamagedCheckpoint(
            path, f"is not a complete checkpoint ({err}; {size} bytes: truncated or overwritten)"
        ) from err
    except DamagedCheckpoint:
        raise
    except Exception as err:  # whatever garbage makes the unpickler raise: the index is damaged
        raise DamagedCheckpoint(path, f"has a damaged index ({type(err).__name__}: {err})") from err
    prefix = index[: -len("data.pkl")]
    missing_data = [k for k in reader.storage_keys if f"{prefix}data/{k}" not in names]
    if missing_data:
        raise DamagedCheckpoint(path, f"lacks {len(missing_data)} tensor(s) its index names")
    if not isinstance(checkpoint, dict):
        raise DamagedCheckpoint(path, "holds no checkpoint dictionary")
    missing = [key for key in keys if key not in checkpoint]
    if missing:
        raise DamagedCheckpoint(path, f"lacks {', '.join(missing)} (not a training checkpoint)")


def resume_candidates(checkpoint_dir: Path, root_dir: Path) -> list[Path]:
    """``last.ckpt`` and ``step*.ckpt`` of the checkpoint folder and the ``hpc_ckpt_<n>.ckpt``
    of the run directory, newest first (by modification time)."""
    found = {
        *checkpoint_dir.glob("last*.ckpt"),
        *checkpoint_dir.glob("step*.ckpt"),
        *root_dir.glob("hpc_ckpt_*.ckpt"),
    }
    files = [p for p in found if p.is_file()]
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


def set_aside(path: Path) -> Path:
    """Rename a damaged checkpoint to ``<name>.damaged`` (``.damaged1``, ... if taken)."""
    target, n = path.with_name(path.name + DAMAGED_SUFFIX), 0
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}{DAMAGED_SUFFIX}{n}")
    path.rename(target)
    return target


def resume_checkpoint(checkpoint_dir: Path, root_dir: Path, *, rename: bool = True) -> ResumeChoice:
    """The newest readable checkpoint of a run; damaged newer ones are moved aside when
    ``rename`` (one process of a job renames; the others only read). Raises
    ``NoReadableCheckpoint`` when there are checkpoints and none is readable (they stay)."""
    damaged: list[DamagedCheckpoint] = []
    candidates = resume_candidates(checkpoint_dir, root_dir)
    for path in candidates:
        try:
            verify_checkpoint(path)
        except DamagedCheckpoint as err:
            damaged.append(err)
            continue
        moved = tuple((e.path, set_aside(e.path) if rename else e.path, e.reason) for e in damaged)
        return ResumeChoice(path, moved)
    if damaged:
        listing = "; ".join(f"{e.path.name} {e.reason}" for e in damaged)
        raise NoReadableCheckpoint(
            f"no readable checkpoint to resume from in {checkpoint_dir} or {root_dir}: {listing}. "
            "Restore one from a copy, pass --ckpt_path=<a good file>, or move these away to "
            "start from step 0."
        )
    return ResumeChoice(None)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, written to ``.<name>.tmp-<pid>`` beside the target,
    flushed to disk and renamed into place (atomic on POSIX file systems)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(
                "AtomicCheckpointIO does not take storage_options; got "
                f"{storage_options!r} (use Lightning's TorchCheckpointIO for remote storage)"
            )
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        try:
            with open(temporary, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
