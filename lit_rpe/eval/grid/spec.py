"""What an eval grid evaluates: models x inference rules (x add-ons) x resolutions, from YAML.

    name: demo
    out_dir: runs/eval_grid/demo
    val_shards: data/photos/val
    models:
      - {name: demo, checkpoint: runs/demo/checkpoints/last.ckpt}
      - {name: dit_xl2, checkpoint: pretrained/DiT-XL-2-256x256.pt, kind: dit,
         vae_path: pretrained/sd-vae-ft-ema}
    rules: [extrapolate, ntk, {name: ntk, attention_scale: yarn}, dype_yarn, tasr,
            {name: yarn, tau_axes: max}, {name: dype_ntk, lambda_s: 1.0}]
    resolutions: [128, 256, 512, [256, 512]]     # int = square, [H, W]
    num_images: 10000
    metrics: auto       # or a list: val_loss, swd, fid, sfid, is, kid, precision_recall

Beside the models, the output folder and the grid image size, every key is an ``EvalSettings``
field (``lit_rpe.eval.settings``, shared with ``ResolutionEvalCallback``). Every key is checked
when the file is read (unknown and renamed keys, unknown rules and metrics, missing files), so a
typo fails before the first image is generated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from lit_rpe.eval.settings import ALL_METRICS, EvalSettings
from lit_rpe.posenc import InferenceRule, parse_rule
from lit_rpe.resolution import as_height_width

MODEL_KINDS = ("lightning", "dit", "sit", "fit")


@dataclass(frozen=True)
class ModelEntry:
    """One checkpoint. kind: ``lightning`` (trained here), ``dit``, ``sit`` or ``fit`` (official
    files, which need ``vae_path``). rules: this model's rules instead of the grid's.
    options: an official file's loader options (``load_official``), e.g. a FiT file's
    ``context_size`` (1024 for the HR fine-tunes) or ``ori_max_pe_len``."""

    name: str
    checkpoint: str
    kind: Literal["lightning", "dit", "sit", "fit"] = "lightning"
    vae_path: str | None = None
    rules: list[InferenceRule] | None = None
    options: dict | None = None

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(
                f"model {self.name}: unknown kind {self.kind!r}; valid: {', '.join(MODEL_KINDS)}"
            )
        if self.options and self.kind == "lightning":
            raise ValueError(
                f"model {self.name}: options are for official files (kind dit/sit/fit)"
            )
        if self.rules:
            object.__setattr__(self, "rules", [parse_rule(r) for r in self.rules])


@dataclass(frozen=True, kw_only=True)
class GridSpec(EvalSettings):
    """A whole grid: ``EvalSettings`` plus its ``name``, ``out_dir`` (cells and report),
    ``models``, ``grid_images`` (images in each cell's grid.png) and ``published`` (figures
    printed beside ours, ``lit_rpe.eval.grid.published``; checked against the models and rules)."""

    name: str
    out_dir: str
    models: list[ModelEntry]
    grid_images: int = 16
    published: list | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        names = [m.name for m in self.models]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"model names must be given and unique, got {names}")
        if self.val_shards is None:
            raise ValueError("missing key 'val_shards' (the validation shards)")

    def rules_of(self, model: ModelEntry) -> list[InferenceRule]:
        return model.rules or self.rules


def load_grid(path: str | Path, *, check_files: bool = True) -> GridSpec:
    """Read and validate a grid file; relative paths stay relative to the working directory."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grid file not found: {path}")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict) or not isinstance(raw.get("models", []), list):
        raise ValueError(f"{path}: a grid file is a mapping with a list of models")
    models = [_model_entry(m, path) for m in raw.get("models", [])]
    spec = GridSpec.of({**raw, "models": models}, str(path))
    from lit_rpe.eval.grid.published import parse_published

    try:
        published = parse_published(
            spec.published,
            models=[m.name for m in spec.models],
            rules={m.name: [r.label for r in spec.rules_of(m)] for m in spec.models},
            metrics=ALL_METRICS,
        )
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    spec = dataclasses.replace(spec, published=published)
    if check_files:
        missing = [m.checkpoint for m in spec.models if not Path(m.checkpoint).is_file()]
        if missing:
            raise FileNotFoundError(
                f"checkpoint(s) not found: {', '.join(missing)}; train them first "
                "(make train EXP=...) or fix the paths in " + str(path)
            )
        for key, npz in (spec.adm_references or {}).items():
            as_height_width([int(v) for v in key.split("x")])
            if not Path(npz).is_file():
                raise FileNotFoundError(f"ADM reference batch for {key} not found: {npz}")
        from lit_rpe.training.data.shard_list import expand_shards

        try:
            expand_shards(spec.val_shards)
        except (FileNotFoundError, ValueError) as err:
            raise FileNotFoundError(f"val_shards not found: {spec.val_shards} ({err})") from err
    return spec


def _model_entry(value, path: Path) -> ModelEntry:
    """One ``models`` item; unknown keys and wrong values name the model and the valid keys."""
    names = [f.name for f in dataclasses.fields(ModelEntry)]
    if not isinstance(value, dict):
        raise ValueError(f"{path}: models: each model is a mapping of {', '.join(names)}")
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {path}: models; valid: {', '.join(names)}")
    try:
        return ModelEntry(**value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: models: {err}") from err
