"""Where a number comes from: the suite's commit, the device, and content hashes of files.

Each is computed once per process (a weight file's hash once per file version), so recording
them on every eval cell costs nothing after the first.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
from pathlib import Path

import torch

PACKAGE_DIR = Path(__file__).resolve().parent
# Uncommitted changes here make a commit "dirty": the code and configs that produce numbers.
# Untracked files (runs, data, notes) do not count.
SUITE_PATHS = ("lit_rpe", "experiments", "pyproject.toml")


def _git(*args: str, cwd: Path) -> str:
    out = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=30
    )
    return out.stdout.strip()


@functools.cache
def suite_commit() -> str:
    """``git rev-parse --short HEAD`` of the checkout holding this package, ``-dirty`` appended
    when ``SUITE_PATHS`` have uncommitted changes; ``"unknown"`` when the package is not in a
    git checkout (an installed wheel) or git is missing. Computed once per process."""
    root = PACKAGE_DIR.parent
    try:
        # An installed package may sit inside some other repository: only our own counts.
        if Path(_git("rev-parse", "--show-toplevel", cwd=root)).resolve() != root:
            return "unknown"
        commit = _git("rev-parse", "--short", "HEAD", cwd=root)
        changes = _git(
            "status", "--porcelain", "--untracked-files=no", "--", *SUITE_PATHS, cwd=root
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if changes else "")


@functools.cache
def cpu_name() -> str:
    """The CPU model (``model name`` of /proc/cpuinfo; elsewhere ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def device_name(device: torch.device | str) -> str:
    """A readable name of ``device``: the GPU's (``torch.cuda.get_device_name``) or the CPU's."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return cpu_name()
    return device.type


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 (hex) of a file's bytes. Cached per (path, size, modification time), so a
    weight file is read once per process and a rewritten file is hashed again."""
    path = Path(path).resolve()
    stat = path.stat()
    return _sha256_of_version(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _sha256_of_version(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
