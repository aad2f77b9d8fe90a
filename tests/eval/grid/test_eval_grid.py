"""The eval grid on a tiny model: all outputs written, finished cells skipped unless their protocol
card changed, early errors."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

import lightning
import numpy as np
import pytest
import scipy.linalg
import torch
import yaml
from eval_fixtures import calibrated_inception_state_dict, photo_crops
from PIL import Image

import lit_rpe.eval.grid.run as grid_module
from lit_rpe import precision
from lit_rpe.eval.grid.report import write_report
from lit_rpe.eval.grid.run import run_grid
from lit_rpe.eval.grid.spec import load_grid
from lit_rpe.eval.metrics.references import dataset_key
from lit_rpe.eval.metrics.val_loss import flow_validation_loss
from lit_rpe.posenc import InferenceRule
from lit_rpe.provenance import file_sha256, suite_commit
from lit_rpe.sampling.settings import SamplerSettings
from lit_rpe.training.config import NetConfig
from lit_rpe.training.data.validation_images import validation_batches
from lit_rpe.training.module import DiffusionModule

NUM_CLASSES = 3


def tiny_module() -> DiffusionModule:
    torch.manual_seed(0)
    module = DiffusionModule(
        net=NetConfig(name="DiT-N/2", encoder="rope", train_positions="rpe2d"),
        resolution=16,
        num_classes=NUM_CLASSES,
        sampling=SamplerSettings(steps=2, method="euler"),
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
        "num_images": 8,
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
    assert (out / "swd_vs_resolution.png").stat().st_size > 0  # a plot per metric, named after it
    assert (out / "val_loss_vs_resolution.png").stat().st_size > 0
    assert not (out / "fid_vs_resolution.png").exists()  # no FID measured, no FID file
    assert (out / "cells" / "tiny" / "rpe2d_even" / "16x16" / "thumb.png").is_file()
    assert "tiny / ntk+shift_auto" in (out / "report.html").read_text()
    # every row carries its cell's protocol card: a pixel model, offline metrics
    assert first["vae"] == "pixels" and first["vae_sha256"] == "" and first["latent_scale"] == "1.0"
    assert (
        first["seed"] == "0" and first["inception"] == "none" and first["reference_images"] == "8"
    )
    assert first["reference"] == f"{dataset_key(spec['val_shards'])} adm_center"
    assert first["suite_commit"] == suite_commit() and first["torch"] == torch.__version__
    shifted = [r for r in rows if r["rule"] == "ntk+shift_auto" and r["resolution"] == "16x32"]
    assert {r["timestep_shift"] for r in shifted} == {"auto"}
    assert [float(r["shift_factor"]) for r in shifted] == [pytest.approx(2**0.5)] * 2  # 2x tokens
    assert text.count("### Protocol") == 1 and "| precision | fp32 |" in text and "[1]" not in text
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
    run_grid(load_grid(rewrite(path, spec, num_images=6, rules=["rpe2d_even"], resolutions=[16])))
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
    assert record["fid_retried"] is False and record["fid_retry_reason"] == ""
    card = record["protocol"]
    assert card["inception"] == cached[0].stem.rsplit("_", 1)[1]  # the weights tag
    assert card["reference_sha256"] == file_sha256(cached[0]) and card["reference_images"] == 8
    # A second grid at the same resolution reads the cache instead of the validation shards.
    import lit_rpe.eval.metrics.references as references

    monkeypatch.setattr(references, "reference_images_uint8", lambda *a, **k: 1 / 0)
    # It also meets a broken matrix square root, which is retried, recorded and flagged.
    roots = []

    def broken_first_root(matrix):  # sqrtm of a singular product: NaN, then the eps retry
        roots.append(matrix.shape)
        return np.full(matrix.shape, np.nan) if len(roots) == 1 else np.eye(matrix.shape[0])

    monkeypatch.setattr(scipy.linalg, "sqrtm", broken_first_root)
    rewrite(path, spec, out_dir=str(tmp_path / "grid2"), rules=["rpe2d_even"], resolutions=[16],
            metrics=["fid"], inception_weights=str(weights), fid_method="sqrtm")  # fmt: skip
    with pytest.warns(UserWarning, match="retrying"):
        text = run_grid(load_grid(path)).read_text()
    record = read_cell(tmp_path / "grid2", "rpe2d_even", "16x16")
    assert record["fid_retried"] is True and "not finite" in record["fid_retry_reason"]
    assert len(roots) == 2 and record["protocol"]["reference_sha256"] == card["reference_sha256"]
    (row,) = [line for line in text.splitlines() if line.startswith("| tiny / rpe2d_even")]
    assert row.endswith("† (train) |") and "the matrix square root was retried" in text
    with (tmp_path / "grid2" / "results.csv").open() as f:
        (csv_row,) = list(csv.DictReader(f))
    assert csv_row["metric"] == "fid" and csv_row["retried"] == "True"


def read_cell(out: Path, rule: str, res: str) -> dict:
    return json.loads((out / "cells" / "tiny" / rule / res / "metrics.json").read_text())


def write_cell(out: Path, rule: str, res: str, record: dict) -> None:
    (out / "cells" / "tiny" / rule / res / "metrics.json").write_text(json.dumps(record))


def test_a_cell_under_another_protocol_is_flagged_and_scored_again(setup, monkeypatch):
    path, spec = setup
    small = rewrite(
        path, spec, rules=["rpe2d_even"], resolutions=[16, 24], metrics=["swd"], precision="fp32"
    )
    run_grid(load_grid(small))
    out = Path(spec["out_dir"])
    record = read_cell(out, "rpe2d_even", "24x24")
    assert record["protocol"]["precision"] == "fp32" and record["protocol"]["steps"] == 2
    record["protocol"]["precision"] = "bf16"  # as if scored by an older run in bf16
    write_cell(out, "rpe2d_even", "24x24", record)
    text = write_report(load_grid(small)).read_text()
    assert text.count("### Protocol") == 1 and "| precision | fp32 |" in text
    (row16,) = [line for line in text.splitlines() if line.startswith("| tiny / rpe2d_even")]
    cells = row16.split(" | ")
    assert "[1]" not in cells[1] and cells[2].endswith("[1] |")  # 16x16 plain, 24x24 flagged
    assert "- [1] differs from the protocol above: precision = bf16" in text

    calls = []
    real = grid_module.generate_to_folder
    monkeypatch.setattr(
        grid_module, "generate_to_folder", lambda *a, **k: calls.append(k) or real(*a, **k)
    )
    record = read_cell(out, "rpe2d_even", "16x16")
    record["protocol"]["device"] = "another machine"  # the environment does not void a cell
    write_cell(out, "rpe2d_even", "16x16", record)
    run_grid(load_grid(small))
    assert [c["resolution"] for c in calls] == [(24, 24)]
    assert read_cell(out, "rpe2d_even", "24x24")["protocol"]["precision"] == "fp32"
    calls.clear()  # a changed sampler setting voids every cell, its images included
    png = out / "cells" / "tiny" / "rpe2d_even" / "16x16" / "images" / "000000.png"
    before = png.read_bytes()
    run_grid(load_grid(rewrite(small, yaml.safe_load(small.read_text()), sampler={"steps": 3})))
    assert [c["resolution"] for c in calls] == [(16, 16), (24, 24)]
    assert read_cell(out, "rpe2d_even", "16x16")["protocol"]["steps"] == 3
    assert png.read_bytes() != before  # sampled again with 3 steps, not reused
    calls.clear()  # a cell from before protocol cards is scored again
    record = read_cell(out, "rpe2d_even", "16x16")
    write_cell(out, "rpe2d_even", "16x16", {k: v for k, v in record.items() if k != "protocol"})
    run_grid(load_grid(small))
    assert [c["resolution"] for c in calls] == [(16, 16)]


def test_validation_loss_does_not_depend_on_batch_size(setup):
    _, spec = setup
    module = tiny_module()
    values = [
        flow_validation_loss(
            module,
            validation_batches(spec["val_shards"], 24, 8, batch_size=b),
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
        ({"rules": ["ntk_aware"]}, "unknown inference rule 'ntk_aware'"),
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
    "name",
    [
        "grid_demo",
        "grid_256",
        "grid_512",
        "grid_official_256",
        "study_cpu/grid",
        "grid_fitv2_xl",
        "grid_fitv2_hr_xl",
    ],
)
def test_shipped_grids_parse(name):
    spec = load_grid(Path("experiments") / f"{name}.yaml", check_files=False)
    assert spec.models and spec.rules and spec.resolutions


def test_the_command_line_names_a_bad_grid_in_one_line(setup, capsys):
    """``python -m lit_rpe.eval.grid`` on a grid whose checkpoint is missing: exit 2 and one
    line naming it, not a traceback."""
    path, spec = setup
    bad = rewrite(path, spec, models=[{"name": "x", "checkpoint": "nope.ckpt"}])
    with pytest.raises(SystemExit) as stop:
        grid_module.main([str(bad)])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("eval-grid: checkpoint(s) not found: nope.ckpt")
