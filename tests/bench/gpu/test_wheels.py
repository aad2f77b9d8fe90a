"""The GPU check's packages: the carried wheels complete the device image for every import the
check makes, installed offline; a missing one or an old Python is named in one line."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

from bench.gpu import wheels
from bench.gpu.wheels import CARRIED_WHEELS, DEVICE_PACKAGES

ROOT = Path(__file__).resolve().parents[3]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements_of(name: str, extras: set[str]) -> list[Requirement]:
    """The installed distribution's Requires-Dist that apply with ``extras``."""
    out = []
    for text in metadata.distribution(name).requires or []:
        req = Requirement(text)
        applies = req.marker is None or any(
            req.marker.evaluate({"extra": extra}) for extra in extras | {""}
        )
        if applies:
            out.append(req)
    return out


def test_every_package_beyond_the_image_is_carried():
    """lit_rpe's dependencies and theirs, followed until a package the image has."""
    device = {norm(p) for p in DEVICE_PACKAGES}
    carried = {norm(p) for p in CARRIED_WHEELS}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    seen, missing = set(), set()
    while todo:
        req = todo.pop()
        name = norm(req.name)
        if name in device or (name, tuple(req.extras)) in seen:
            continue
        seen.add((name, tuple(req.extras)))
        if name not in carried:
            missing.add(name)
        todo += requirements_of(req.name, set(req.extras))
    assert not missing, f"needed on the device, neither in its image nor carried: {missing}"
    assert carried <= {name for name, _ in seen}, "a carried wheel nothing needs"


def test_the_carried_versions_are_the_tested_ones():
    for name, version in CARRIED_WHEELS.items():
        assert metadata.version(name) == version, name


def test_an_old_python_is_named_before_any_import(monkeypatch):
    monkeypatch.setattr(sys, "version_info", (3, 10, 14, "final", 0))
    assert wheels.check_imports() == "Python 3.10.14 is too old: the GPU check needs 3.11+"


def device_image(folder: Path) -> None:
    """Links to this environment's copies of the image's packages and everything they need."""
    dists = {norm(d.metadata["Name"]): d for d in metadata.distributions()}
    todo, kept = [norm(p) for p in DEVICE_PACKAGES], set()
    while todo:
        name = todo.pop()
        if name in kept or name not in dists:
            continue
        kept.add(name)
        todo += [norm(r.name) for r in requirements_of(name, set())]
    folder.mkdir()
    for name in kept:
        dist = dists[name]
        tops = {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops - {"__pycache__"}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (folder / top).exists() and not top.endswith(".pth"):
                (folder / top).symlink_to(source)


@pytest.mark.slow
def test_the_wheels_install_offline_and_every_check_import_works(tmp_path):
    """bench/prepare_gpu_wheels.sh's .whl/, installed as the check installs it, beside the
    image's packages alone (python -S: no site-packages)."""
    found = sorted((ROOT / ".whl").glob("*.whl"))
    if not found:
        pytest.skip("no .whl/: run bash bench/prepare_gpu_wheels.sh first")
    names = {norm(w.name.split("-")[0]) for w in found}
    assert names == {norm(p) for p in CARRIED_WHEELS}
    site, image = tmp_path / "site", tmp_path / "image"
    device_image(image)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, (ROOT, site, image))))
    check = [sys.executable, "-S", "-m", "bench.gpu.wheels"]
    without = subprocess.run([*check, "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert without.returncode == 1 and "No module named" in without.stderr
    done = subprocess.run(
        [*check, "install", str(ROOT / ".whl"), str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"installing {len(found)} carried wheels" in done.stdout
    assert "modules the GPU check imports import" in done.stdout
    assert {norm(d.name.split("-")[0]) for d in site.glob("*.dist-info")} == names
