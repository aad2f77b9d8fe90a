"""Imports are light and change nothing: lazy package exports, no global side effects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_the_grid_spec_imports_without_lightning_scipy_or_torchmetrics():
    heavy = ("lightning", "scipy", "torchmetrics", "diffusers", "matplotlib")
    code = (
        "import sys, lit_rpe.eval.grid.spec, lit_rpe.training.data, lit_rpe.models, lit_rpe.eval\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    assert run_python(code) == "[]"


def test_importing_every_module_adds_no_warning_filter_and_no_safe_global():
    """Third-party packages are imported first (they install filters of their own); then every
    lit_rpe module: the warning filters and torch's safe globals must be unchanged."""
    code = """
import importlib, pkgutil, warnings
import diffusers, lightning.pytorch, lightning.pytorch.cli, matplotlib.pyplot, scipy.linalg
import torch, torchmetrics
filters = list(warnings.filters)
safe = list(torch.serialization.get_safe_globals())
import lit_rpe
for info in pkgutil.walk_packages(lit_rpe.__path__, "lit_rpe."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
added = [f for f in warnings.filters if f not in filters]
print(added, torch.serialization.get_safe_globals() == safe)
"""
    assert run_python(code) == "[] True"
