"""The Python packages of the GPU check: what the device's image holds, the wheels that travel
to it in .whl/ (bench/prepare_gpu_wheels.sh downloads them), and the imports that must work
there before any stage starts.

    python -m bench.gpu.wheels requirements      the carried wheels, one ``name==version`` a line
    python -m bench.gpu.wheels check             import everything the check imports; on failure
                                                 one line naming the missing module, exit 1
    python -m bench.gpu.wheels install WHEELS SITE   ``check``; where it fails, install the
                                                 wheels of folder WHEELS into SITE (offline)
                                                 and ``check`` again

The check runs on Python >= 3.11 (``MIN_PYTHON``): the wheels are downloaded for the device's
Python 3.12, and the pinned diffusers, importlib-metadata and lazy-importer need 3.11 or later.
This module imports only the standard library at the top, so it reports on any Python 3.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

MIN_PYTHON = (3, 11)

# What the device's image holds (device_packages.txt, from the device notes): never carried.
DEVICE_PACKAGES = tuple(
    line.strip()
    for line in (Path(__file__).parent / "device_packages.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
)

# Carried as wheels: what lit_rpe and the check import beyond DEVICE_PACKAGES, with everything
# those need (their Requires-Dist) that the image lacks; the versions of the tested CPU
# environment. Pure-Python wheels, so one download serves any Python >= MIN_PYTHON.
CARRIED_WHEELS = {
    "omegaconf": "2.4.0",  # experiment composition (vendors its antlr4 runtime; pyyaml)
    "jsonargparse": "4.53.0",  # LightningCLI (pyyaml)
    "docstring-parser": "0.18.0",  # jsonargparse[signatures]
    "typeshed-client": "2.15.0",  # jsonargparse[signatures] (typing-extensions)
    "braceexpand": "0.1.7",  # shard patterns
    "diffusers": "0.42.1",  # the SD-VAE (filelock, huggingface-hub, numpy, regex, requests,
    "importlib-metadata": "10.2.0",  # safetensors, pillow: in the image) + these two
    "lazy-importer": "0.1.0",
}

# Imported by the check's stages beyond lit_rpe, bench.common and bench.gpu (imported whole).
EXTRA_IMPORTS = ("lightning.pytorch.cli", "diffusers.models.autoencoders.autoencoder_kl")


def requirements() -> list[str]:
    return [f"{name}=={version}" for name, version in CARRIED_WHEELS.items()]


def modules_to_import() -> list[str]:
    """Every module of lit_rpe, bench.common and bench.gpu, then ``EXTRA_IMPORTS``."""
    import bench.common
    import bench.gpu
    import lit_rpe

    names = []
    for package in (lit_rpe, bench.common, bench.gpu):
        prefix = package.__name__ + "."
        names += [m.name for m in pkgutil.walk_packages(package.__path__, prefix)]
    return [n for n in names if not n.endswith("__main__")] + list(EXTRA_IMPORTS)


def check_imports() -> str | None:
    """Import what the check imports; None when all import, else one line naming the cause."""
    if sys.version_info < MIN_PYTHON:
        found = ".".join(map(str, sys.version_info[:3]))
        return f"Python {found} is too old: the GPU check needs {'.'.join(map(str, MIN_PYTHON))}+"
    for name in modules_to_import():
        try:
            importlib.import_module(name)
        except ImportError as err:
            return f"importing {name} failed: {type(err).__name__}: {err}"
    return None


def python() -> list[str]:
    """This interpreter as a command, with its -S (no site-packages) when it has one."""
    return [sys.executable, *(["-S"] if sys.flags.no_site else [])]


def check_in_child() -> bool:
    """``check`` in a fresh interpreter (what a stage will see: nothing cached from here)."""
    return subprocess.run([*python(), "-m", "bench.gpu.wheels", "check"]).returncode == 0


def install(wheels: Path, site: Path) -> str | None:
    """Make the check's imports work: None when they do, else one line naming the cause.
    Installs ``wheels/*.whl`` into ``site`` (no index, no dependencies: the set is complete)
    only where the imports fail; ``site`` must already be on PYTHONPATH (bench/gpu_check.sh)."""
    if check_in_child():
        return None
    found = sorted(wheels.glob("*.whl"))
    if not found:
        return (
            f"the check's imports fail and {wheels} holds no wheels: run "
            "bench/prepare_gpu_wheels.sh where a package registry is reachable, carry .whl"
        )
    print(f"installing {len(found)} carried wheels into {site}", flush=True)
    pip = [*python(), "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
    pip += ["--no-compile", "--no-cache-dir", "--upgrade", "--target", str(site)]
    if subprocess.run(pip + [str(w) for w in found]).returncode != 0:
        return f"pip could not install the wheels of {wheels} into {site} (its output is above)"
    if not check_in_child():
        return "the check's imports still fail after installing the carried wheels (see above)"
    return None


def main() -> None:
    args = sys.argv[1:]
    if args == ["requirements"]:
        print("\n".join(requirements()))
    elif args == ["check"]:
        problem = check_imports()
        if problem:
            print(problem, file=sys.stderr)
            raise SystemExit(1)
        print(f"all {len(modules_to_import())} modules the GPU check imports import")
    elif len(args) == 3 and args[0] == "install":
        problem = install(Path(args[1]), Path(args[2]))
        if problem:
            print(problem, file=sys.stderr)
            raise SystemExit(1)
    else:
        raise SystemExit("usage: python -m bench.gpu.wheels requirements|check|install WHEELS SITE")


if __name__ == "__main__":
    main()
