"""Lazy package exports (PEP 562): ``from lit_rpe.training.data import X`` imports only X's
submodule.

A package ``__init__`` lists ``{name: submodule}``; nothing is imported until a name is used, so
importing one light module of a package (``lit_rpe.eval.grid.spec``) never loads the heavy ones
beside it (Lightning, scipy, diffusers).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(
    package: str, exports: dict[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` exporting ``name`` from
    ``package.<exports[name]>``; a resolved name is cached in the package namespace."""

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(vars(sys.modules[package])))

    return __getattr__, __dir__, sorted(exports)
