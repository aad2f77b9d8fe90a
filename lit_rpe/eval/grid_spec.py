"""What an eval grid evaluates: models x inference rules (x add-ons) x resolutions, from YAML.

    name: demo
    out_dir: runs/eval_grid/demo
    val_shards: data/photos/val
    models:
      - {name: demo, checkpoint: runs/demo/checkpoints/last.ckpt}
      - {name: dit_xl2, checkpoint: pretrained/DiT-XL-2-256x256.pt, kind: dit,
         vae_path: pretrained/sd-vae-ft-ema}
    rules: [extrapolate, ntk, {name: ntk, attention_scale: yarn}, dype_yarn, tasr,
            {name: yarn, tau_axes: max}]
    resolutions: [128, 256, 512, [256, 512]]     # int = square, [H, W]
    num_samples: 10000
    metrics: auto       # or a list: val_loss, swd, fid, sfid, is, kid, precision_recall

Every key is checked when the file is read (unknown keys, unknown rules and metrics, missing
files), so a typo fails before the first image is generated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from lit_rpe.posenc import InferenceRule, parse_rule
from lit_rpe.resolution import as_height_width
from lit_rpe.sampler_settings import SamplerSettings

OFFLINE_METRICS = ("val_loss", "swd")
INCEPTION_METRICS = ("fid", "sfid", "is", "kid", "precision_recall")
ALL_METRICS = OFFLINE_METRICS + INCEPTION_METRICS


def _checked(cls, values: dict, where: str) -> dict:
    """``values`` if every key is a field of dataclass ``cls``; else a ValueError naming them."""
    if not isinstance(values, dict):
        raise ValueError(f"{where} must be a mapping, got {values!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; valid: {', '.join(names)}")
    return values


@dataclass(frozen=True)
class ModelEntry:
    """One checkpoint. kind: ``lightning`` (trained here), ``dit`` or ``sit`` (official files,
    which need ``vae_path``). rules: this model's rules instead of the grid's."""

    name: str
    checkpoint: str
    kind: Literal["lightning", "dit", "sit"] = "lightning"
    vae_path: str | None = None
    rules: list[InferenceRule] | None = None


@dataclass(frozen=True)
class GridSpec:
    """A whole grid. num_samples: generated images per cell (and reference images, unless
    ``reference_images``); val_loss_images / val_loss_t: the validation-loss protocol;
    precision: ``auto`` (bf16 where the device computes it natively, else fp32; see
    ``lit_rpe.precision``), ``bf16`` or ``fp32``, for sampling and the validation loss;
    inception_weights: a weight file (default: the standard places; ``metrics: auto`` falls back
    to the offline metrics without one).
    reference_cache: where reference statistics are cached. adm_references: ADM reference
    batches used instead of computed references, keyed "HxW" (e.g. ``{"256x256": path}``).
    fid_method: the matrix square root of FID (``sqrtm`` as in every reference evaluator;
    ``eigh`` gives the same value for PSD covariances, several times faster)."""

    name: str
    out_dir: str
    val_shards: str
    models: list[ModelEntry]
    rules: list[InferenceRule]
    resolutions: list[tuple[int, int]]
    num_samples: int = 64
    reference_images: int | None = None
    metrics: list[str] | Literal["auto"] = "auto"
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    batch_size: int = 32
    seed: int = 0
    val_loss_images: int = 64
    val_loss_t: int = 8
    grid_images: int = 16
    inception_weights: str | None = None
    num_classes: int | None = None
    reference_cache: str = "runs/reference_stats"
    fid_method: Literal["sqrtm", "eigh"] = "sqrtm"
    adm_references: dict[str, str] | None = None

    @property
    def num_reference(self) -> int:
        return self.reference_images or self.num_samples

    def rules_of(self, model: ModelEntry) -> list[InferenceRule]:
        return model.rules or self.rules


def _rule(value, where: str) -> InferenceRule:
    try:
        return parse_rule(value)
    except ValueError as err:
        raise ValueError(f"{where}: rules: {err}") from err


def load_grid(path: str | Path, *, check_files: bool = True) -> GridSpec:
    """Read and validate a grid file; relative paths stay relative to the working directory."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grid file not found: {path}")
    raw = _checked(GridSpec, yaml.safe_load(path.read_text()) or {}, str(path))
    for key in ("name", "out_dir", "val_shards", "models", "rules", "resolutions"):
        if key not in raw:
            raise ValueError(f"{path}: missing key {key!r}")
    models = []
    for m in raw["models"]:
        m = _checked(ModelEntry, m, f"{path}: models")
        if m.get("rules"):
            m = {**m, "rules": [_rule(r, f"{path}: model {m.get('name')}") for r in m["rules"]]}
        models.append(ModelEntry(**m))
    for m in models:
        if m.kind not in ("lightning", "dit", "sit"):
            raise ValueError(f"model {m.name}: unknown kind {m.kind!r}; valid: lightning, dit, sit")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: model names must be unique, got {names}")
    metrics = raw.get("metrics", "auto")
    if metrics != "auto":
        bad = sorted(set(metrics) - set(ALL_METRICS))
        if bad:
            raise ValueError(f"unknown metric(s) {bad}; valid: auto, {', '.join(ALL_METRICS)}")
    if raw.get("precision", "auto") not in ("auto", "bf16", "fp32"):
        raise ValueError(f"{path}: unknown precision {raw['precision']!r}; valid: auto, bf16, fp32")
    try:
        sampler = SamplerSettings.of(raw.get("sampler"))
    except ValueError as err:
        raise ValueError(f"{path}: sampler: {err}") from err
    spec = GridSpec(
        **{
            **raw,
            "models": models,
            "metrics": metrics,
            "sampler": sampler,
            "rules": [_rule(r, str(path)) for r in raw["rules"]],
            "resolutions": [as_height_width(r) for r in raw["resolutions"]],
        }
    )
    if spec.num_samples < 2:
        raise ValueError(f"num_samples must be at least 2, got {spec.num_samples}")
    if check_files:
        missing = [m.checkpoint for m in models if not Path(m.checkpoint).is_file()]
        if missing:
            raise FileNotFoundError(
                f"checkpoint(s) not found: {', '.join(missing)}; train them first "
                "(make train EXP=...) or fix the paths in " + str(path)
            )
        for key, npz in (spec.adm_references or {}).items():
            as_height_width([int(v) for v in key.split("x")])
            if not Path(npz).is_file():
                raise FileNotFoundError(f"ADM reference batch for {key} not found: {npz}")
        from lit_rpe.data.shard_list import expand_shards

        try:
            expand_shards(spec.val_shards)
        except (FileNotFoundError, ValueError) as err:
            raise FileNotFoundError(f"val_shards not found: {spec.val_shards} ({err})") from err
    return spec
