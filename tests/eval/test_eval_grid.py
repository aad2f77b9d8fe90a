"""The eval grid on a tiny model: all outputs written, finished cells skipped, early errors."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

import lightning
import numpy as np
import pytest
import torch
import yaml
from eval_fixtures import calibrated_inception_state_dict, photo_crops
from PIL import Image

import lit_rpe.eval.grid as grid_module
from lit_rpe import precision
from lit_rpe.config import NetConfig, SamplingConfig
from lit_rpe.eval.grid import run_grid
from lit_rpe.eval.grid_spec import load_grid
from lit_rpe.eval.references import reference_batches
from lit_rpe.eval.validation_loss import flow_validation_loss
from lit_rpe.module import DiffusionModule
from lit_rpe.posenc import InferenceRule

NUM_CLASSES = 3


def tiny_module() -> DiffusionModule:
    torch.manual_seed(0)
    module = DiffusionModule(
        net=NetConfig(name="DiT-N/2", encoder="rope", train_positions="rpe2d"),
        resolution=16,
        num_classes=NUM_CLASSES,
        sampling=SamplingConfig(steps=2, method="euler"),
    )
    with torch.no_grad():  # leave the all-zero adaLN start so outputs depend on the weights
        for p in module.ema.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return module.eval()


def write_val_shards(folder: Path, count: int = 16, size: int = 40) -> Path:
    folder.mkdir(parents=True)
    crops = photo_crops(count, size, seed=3).permute(0, 2, 3, 1).numpy()
    with tarfile.open(folder / "shard-000000.tar", "w") as tar:
        for i, crop in enumerate(crops):
            png = io.BytesIO()
            Image.fromarray(crop).save(png, format="PNG")
            for ext, data in (("png", png.getvalue()), ("cls", str(i % NUM_CLASSES).encode())):
                info = tarfile.TarInfo(f"img{i:04d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    (folder / "classes.json").write_text(json.dumps({f"c{i}": i for i in range(NUM_CLASSES)}))
    return folder


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A checkpoint, validation shards and a grid file; no Inception weights anywhere."""
    monkeypatch.setenv("LIT_RPE_WEIGHTS", str(tmp_path / "no_weights"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "no_hub"))
    module = tiny_module()
    ckpt = tmp_path / "tiny.ckpt"
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": lightning.__version__,
        },
        ckpt,
    )
    spec = {
        "name": "tiny",
        "out_dir": str(tmp_path / "grid"),
        "val_shards": str(write_val_shards(tmp_path / "val")),
        "models": [{"name": "tiny", "checkpoint": str(ckpt)}],
        "rules": ["rpe2d_even", {"name": "ntk", "timestep_shift": "auto"}],
        "resolutions": [16, 24, [16, 32]],
        "num_samples": 8,
        "batch_size": 4,
        "val_loss_images": 8,
        "val_loss_t": 2,
        "grid_images": 4,
        "reference_cache": str(tmp_path / "refs"),
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, spec


def rewrite(path: Path, spec: dict, **changes) -> Path:
    path.write_text(yaml.safe_dump({**spec, **changes}))
    return path


def test_grid_writes_table_csv_plot_and_grids_then_skips_finished_cells(setup, monkeypatch):
    path, spec = setup
    # precision auto (the default) on a device without native bf16: recorded as fp32
    monkeypatch.setattr(precision, "bf16_support", lambda device: precision.Bf16Support(False, ""))
    results = run_grid(load_grid(path))
    out = Path(spec["out_dir"])
    text = results.read_text()
    assert "No FID Inception weights found" in text  # offline metrics, and the table says so
    assert "| tiny / rpe2d_even |" in text and "| tiny / ntk+shift_auto |" in text
    assert "16x16 (train)" not in text and "(train)" in text
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 3 * 2  # rules x resolutions x (val_loss, swd)
    assert {r["metric"] for r in rows} == {"val_loss", "swd"}
    first = rows[0]
    assert first["checkpoint"].endswith("tiny.ckpt") and first["sampler"] == "euler"
    assert first["steps"] == "2" and first["num_samples"] == "8" and first["precision"] == "fp32"
    assert {r["resolution"] for r in rows} == {"16x16", "24x24", "16x32"}
    assert all(np.isfinite(float(r["value"])) for r in rows)
    assert (out / "fid_vs_resolution.png").stat().st_size > 0
    grid_png = out / "cells" / "tiny" / "ntk+shift_auto" / "16x32" / "grid.png"
    assert Image.open(grid_png).size[0] > Image.open(grid_png).size[1]  # 2 x 2 of 16 x 32

    calls = []
    real = grid_module.generate_to_folder
    monkeypatch.setattr(
        grid_module, "generate_to_folder", lambda *a, **k: calls.append(k) or real(*a, **k)
    )
    run_grid(load_grid(path))
    assert calls == []  # everything finished: nothing generated again
    (out / "cells" / "tiny" / "rpe2d_even" / "24x24" / "metrics.json").unlink()
    run_grid(load_grid(path))
    assert [c["resolution"] for c in calls] == [(24, 24)]
    with (out / "results.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 12
    calls.clear()  # a cell scored with other settings is not "finished" for this grid
    run_grid(load_grid(rewrite(path, spec, num_samples=6, rules=["rpe2d_even"], resolutions=[16])))
    assert [c["resolution"] for c in calls] == [(16, 16)]


def test_inception_metrics_with_weights_and_cached_references(setup, tmp_path, monkeypatch):
    path, spec = setup
    weights = tmp_path / "inception.pth"
    torch.save(calibrated_inception_state_dict(), weights)
    rewrite(
        path,
        spec,
        rules=["rpe2d_even"],
        resolutions=[16],
        metrics=["fid", "sfid", "kid", "precision_recall", "swd"],
        inception_weights=str(weights),
        fid_method="eigh",
    )
    run_grid(load_grid(path))
    record = json.loads(
        (Path(spec["out_dir"]) / "cells/tiny/rpe2d_even/16x16/metrics.json").read_text()
    )
    metrics = record["metrics"]
    assert {"fid", "sfid", "kid", "precision", "recall", "swd"} <= set(metrics)
    assert metrics["fid"] > 0 and 0 <= metrics["precision"] <= 1
    cached = list((tmp_path / "refs").rglob("adm_center_16x16_n8_*.npz"))
    assert len(cached) == 1
    # A second grid at the same resolution reads the cache instead of the validation shards.
    import lit_rpe.eval.references as references

    monkeypatch.setattr(references, "reference_images_uint8", lambda *a, **k: 1 / 0)
    rewrite(path, spec, out_dir=str(tmp_path / "grid2"), rules=["rpe2d_even"], resolutions=[16],
            metrics=["fid"], inception_weights=str(weights), fid_method="eigh")  # fmt: skip
    run_grid(load_grid(path))


def test_validation_loss_does_not_depend_on_batch_size(setup):
    _, spec = setup
    module = tiny_module()
    values = [
        flow_validation_loss(
            module,
            reference_batches(spec["val_shards"], 24, 8, batch_size=b),
            rule=InferenceRule("rpe2d_random"),
            num_t=3,
        )
        for b in (3, 8)
    ]
    assert values[0]["val_loss"] == pytest.approx(values[1]["val_loss"], rel=1e-5)
    per_t = [values[0][f"val_loss_t{k}"] for k in range(3)]
    assert values[0]["val_loss"] == pytest.approx(sum(per_t) / 3)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"rulez": ["ntk"]}, "unknown key(s) ['rulez']"),
        ({"rules": ["ntk_aware"]}, "unknown rule 'ntk_aware'"),
        ({"metrics": ["fid", "lpips"]}, "unknown metric(s) ['lpips']"),
        ({"models": [{"name": "x", "checkpoint": "nope.ckpt"}]}, "checkpoint(s) not found"),
        ({"resolutions": [17]}, "does not divide the patch grid"),
        ({"val_shards": "missing/val"}, "val_shards not found"),
    ],
)
def test_bad_grid_fails_before_any_generation(setup, monkeypatch, change, message):
    path, spec = setup
    monkeypatch.setattr(grid_module, "generate_to_folder", lambda *a, **k: 1 / 0)
    with pytest.raises((ValueError, FileNotFoundError)) as err:
        run_grid(load_grid(rewrite(path, spec, **change)))
    assert message in str(err.value)


@pytest.mark.parametrize(
    "name", ["grid_demo", "grid_256", "grid_512", "grid_official_256", "study_cpu/grid"]
)
def test_shipped_grids_parse(name):
    spec = load_grid(Path("experiments") / f"{name}.yaml", check_files=False)
    assert spec.models and spec.rules and spec.resolutions
