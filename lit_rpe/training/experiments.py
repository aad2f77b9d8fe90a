"""Experiment files: YAML configs that compose shared bases.

An experiment lists the files it builds on under a top-level ``bases:`` key, paths relative to
itself; later files override earlier ones key by key, and the experiment overrides them all.
A list replaces the bases' list, unless its key ends in ``+`` (jsonargparse's append syntax):
``trainer: {callbacks+: [...]}`` appends to the callbacks the bases give.
The composed document is handed to LightningCLI as one config, so omegaconf interpolations such
as ``${trainer.default_root_dir}`` resolve against the final, merged values.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ConfigTypeError

EXPERIMENTS_DIR = Path(__file__).resolve().parents[2] / "experiments"


def list_experiments(root: Path = EXPERIMENTS_DIR) -> list[str]:
    """Runnable experiment names (files outside ``base/`` and ``slurm/``), relative to root."""
    if not root.is_dir():
        return []
    names = []
    for path in sorted(root.rglob("*.yaml")):
        rel = path.relative_to(root)
        if rel.parts[0] not in ("base", "slurm") and not rel.name.startswith("grid"):
            names.append(str(rel.with_suffix("")))
    return names


def compose(path: str | Path, _seen: tuple[Path, ...] = ()) -> DictConfig:
    """Load ``path`` with its ``bases`` merged underneath (recursively); no interpolation yet."""
    path = Path(path)
    if not path.is_file():
        available = ", ".join(list_experiments()) or "none found"
        raise FileNotFoundError(f"config file not found: {path} (experiments: {available})")
    resolved = path.resolve()
    if resolved in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, resolved))
        raise ValueError(f"config bases form a cycle: {chain}")
    cfg = OmegaConf.load(path)
    if not isinstance(cfg, DictConfig):
        raise ValueError(f"{path} must hold a mapping at the top level")
    bases = cfg.pop("bases", [])
    if isinstance(bases, str):
        bases = [bases]
    parts = [compose(path.parent / base, (*_seen, resolved)) for base in bases]
    merged = OmegaConf.merge(*parts) if parts else OmegaConf.create({})
    own = _append_lists(
        OmegaConf.to_container(cfg, resolve=False),
        OmegaConf.to_container(merged, resolve=False),
        str(path),
    )
    return OmegaConf.merge(merged, OmegaConf.create(own))


def _append_lists(own: dict, base: dict, where: str) -> dict:
    """``own`` with every ``key+: [...]`` replaced by ``key: base[key] + [...]`` (recursively;
    interpolations stay unresolved)."""
    out = {}
    for key, value in own.items():
        if isinstance(key, str) and key.endswith("+"):
            name = key[:-1]
            before = base.get(name) or []
            if name in own or not isinstance(value, list) or not isinstance(before, list):
                raise ValueError(
                    f"{where}: '{key}' appends a list to the bases' list '{name}' "
                    "(and cannot stand beside it)"
                )
            out[name] = [*before, *value]
        elif isinstance(value, dict):
            below = base.get(key)
            out[key] = _append_lists(value, below if isinstance(below, dict) else {}, where)
        else:
            out[key] = value
    return out


def scalar_overrides(argv: list[str]) -> list[str]:
    """``key=value`` of every ``--key=value`` / ``--key value`` option of a command line."""
    pairs = []
    for i, arg in enumerate(argv):
        if not arg.startswith("--") or arg.startswith("--config"):
            continue
        if "=" in arg:
            pairs.append(arg[2:])
        elif i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            pairs.append(f"{arg[2:]}={argv[i + 1]}")
    return pairs


def apply_overrides(cfg: DictConfig, pairs: list[str]) -> DictConfig:
    """Set the scalar keys of ``cfg`` that a command line overrides, so that interpolations
    (``${trainer.default_root_dir}/checkpoints``) follow ``--trainer.default_root_dir=...``.
    The options still reach LightningCLI unchanged; lists and unknown keys are left to it."""
    for pair in pairs:
        key = pair.partition("=")[0]
        if not key or "+" in key:  # list appends (callbacks+=...) are LightningCLI's business
            continue
        try:
            current = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        except (ConfigKeyError, ConfigTypeError):  # a path through a list: LightningCLI's too
            continue
        if current is not None and not OmegaConf.is_config(current):
            value = OmegaConf.select(OmegaConf.from_dotlist([pair]), key)
            OmegaConf.update(cfg, key, value, merge=False)
    return cfg


def expand_config_args(argv: list[str]) -> list[str]:
    """Replace every ``--config FILE`` / ``-c FILE`` / ``--config=FILE`` by its composed YAML,
    with the command line's scalar overrides applied (see ``apply_overrides``)."""
    overrides = scalar_overrides(argv)
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--config", "-c") and i + 1 < len(argv):
            path, i = argv[i + 1], i + 2
        elif arg.startswith("--config="):
            path, i = arg.split("=", 1)[1], i + 1
        else:
            out.append(arg)
            i += 1
            continue
        out += ["--config", OmegaConf.to_yaml(apply_overrides(compose(path), overrides))]
    return out
