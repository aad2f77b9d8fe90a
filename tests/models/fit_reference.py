"""Import the official whlzy/FiT code from a local clone (``FIT_REPO``) for reference tests.

Nothing of the official code is in this repository. The clone needs stand-ins for what it
imports but cannot get here:

- ``fit.model.sincos``: imported by ``fit_model.py`` but not in the repository (only its
  ``get_2d_sincos_pos_embed_from_grid`` name is imported, never called with RoPE).
- ``triton``: imported by ``norms.py`` at the top, never used by the layers FiT builds.
- timm: ``modules.py`` imports ``timm.layers.mlp`` (SwiGLU, Mlp). timm's package
  ``__init__`` imports torchvision, which this suite never installs; install timm with
  ``pip install --no-deps timm`` and the ``timm`` and ``timm.layers`` packages are registered
  here without running their ``__init__``, so only ``mlp.py`` (and its two helpers) load.
- einops (``pip install --no-deps einops``) and torchdiffeq (a dependency of the suite).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types
from pathlib import Path

FIT_REPO_ENV = "FIT_REPO"


def reference_repo() -> Path | None:
    """The clone named by ``FIT_REPO`` when it holds ``fit/model/fit_model.py``."""
    root = os.environ.get(FIT_REPO_ENV)
    if root and (Path(root) / "fit" / "model" / "fit_model.py").is_file():
        return Path(root)
    return None


def missing_requirements() -> list[str]:
    """Modules the reference import needs and cannot find (empty when all are there)."""
    return [m for m in ("timm", "einops", "torchdiffeq") if importlib.util.find_spec(m) is None]


def _stub_package(name: str, path: Path | None = None) -> None:
    """A package without its ``__init__``; with a spec, so ``importlib.util.find_spec`` (which
    diffusers calls on timm) still answers."""
    module = types.ModuleType(name)
    module.__path__ = [str(path)] if path else []
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    module.__spec__.submodule_search_locations = module.__path__
    sys.modules[name] = module


def import_official(repo: Path):
    """(fit_model module, rope module, transport package, improved_diffusion package)."""
    if "timm" not in sys.modules or not hasattr(sys.modules["timm"], "__path__"):
        timm_dir = Path(importlib.util.find_spec("timm").submodule_search_locations[0])
        _stub_package("timm", timm_dir)
        _stub_package("timm.layers", timm_dir / "layers")
    if "triton" not in sys.modules:
        _stub_package("triton")
        _stub_package("triton.language")
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    sincos = types.ModuleType("fit.model.sincos")

    def get_2d_sincos_pos_embed_from_grid(*args, **kwargs):
        raise NotImplementedError("stand-in: FiT with RoPE never calls it")

    sincos.get_2d_sincos_pos_embed_from_grid = get_2d_sincos_pos_embed_from_grid
    sys.modules["fit.model.sincos"] = sincos
    fit_model = importlib.import_module("fit.model.fit_model")
    rope = importlib.import_module("fit.model.rope")
    transport = importlib.import_module("fit.scheduler.transport")
    diffusion = importlib.import_module("fit.scheduler.improved_diffusion")
    return fit_model, rope, transport, diffusion
