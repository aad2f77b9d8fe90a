"""A finished eval grid made without a model: per cell a metrics.json with a protocol card and
a grid.png whose colour encodes (row, resolution), so any two cells' images differ."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from lit_rpe.eval.grid.spec import GridSpec, ModelEntry
from lit_rpe.eval.protocol import ProtocolCard

CARD = ProtocolCard(
    sampler="heun", steps=5, cfg_scale=1.0, guided_channels="all", guidance_interval=None,
    timestep_shift=1.0, shift_factor=1.0, precision="fp32", vae="pixels", vae_sha256="",
    latent_scale=1.0, num_samples=16, seed=0, reference="photos adm_center",
    reference_images=16, reference_sha256="ab" * 32, inception="none", suite_commit="abc",
    torch="2.13.0", device="cpu",
)  # fmt: skip


def fake_grid(
    out: Path,
    *,
    models: int = 1,
    rules: tuple[str, ...] = ("rpe2d_even", "extrapolate", "dype_yarn"),
    sides: tuple[int, ...] = (16, 32, 64),
    train: int = 32,
    differing: tuple[str, str, str] | None = None,
) -> GridSpec:
    """A GridSpec under ``out`` whose every cell is finished. ``differing``: (model, rule,
    "HxW") of one cell whose card has another seed."""
    spec = GridSpec(
        name="fake",
        out_dir=str(out),
        val_shards="data/photos/val",
        models=[ModelEntry(f"m{i}", f"m{i}.ckpt") for i in range(models)],
        rules=list(rules),
        resolutions=[(s, s) for s in sides],
        num_images=16,
        grid_images=4,
    )
    for mi, model in enumerate(spec.models):
        for ri, rule in enumerate(spec.rules):
            for si, side in enumerate(sides):
                res = f"{side}x{side}"
                cell = out / "cells" / model.name / rule.label / res
                cell.mkdir(parents=True)
                colour = ((mi * 70 + 40) % 256, ri * 60 % 256, si * 80 % 256)
                grid = np.full((2 * side + 6, 2 * side + 6, 3), colour, dtype=np.uint8)
                Image.fromarray(grid).save(cell / "grid.png")
                card = CARD.as_dict()
                if differing == (model.name, rule.label, res):
                    card["seed"] = 7
                record = {
                    "model": model.name, "checkpoint": model.checkpoint, "kind": "lightning",
                    "rule": rule.label, "height": side, "width": side,
                    "train_resolution": f"{train}x{train}",
                    "metrics": {"val_loss": 1.0 + ri + si / 10, "swd": 10.0 - ri - mi},
                    "requested": ["val_loss", "swd"], "protocol": card,
                }  # fmt: skip
                (cell / "metrics.json").write_text(json.dumps(record))
    return spec
