"""The GPU check's Lightning stage: its own experiment file, and its exact ``lit-rpe`` commands
(fit, resumed fit, sample) run at toy scale on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bench.gpu.check_lightning import check_experiment
from lit_rpe.training.experiments import compose

ROOT = Path(__file__).resolve().parents[3]
EXPERIMENT = ROOT / "experiments/rpe2d_256.yaml"


def class_names(config) -> list[str]:
    return [c["class_path"].rsplit(".", 1)[-1] for c in config["trainer"]["callbacks"]]


def test_the_check_runs_rpe2d_256_without_its_eval_callback(tmp_path):
    original = OmegaConf.to_container(compose(EXPERIMENT), resolve=False)
    derived = OmegaConf.to_container(
        OmegaConf.load(check_experiment(EXPERIMENT, tmp_path / "check.yaml")), resolve=False
    )
    assert "ResolutionEvalCallback" in class_names(original)
    assert class_names(derived) == [
        n for n in class_names(original) if n != "ResolutionEvalCallback"
    ]
    assert "SampleGridCallback" in class_names(derived)
    # everything else is the experiment's, interpolations unresolved
    derived["trainer"].pop("callbacks"), original["trainer"].pop("callbacks")
    assert derived == original
    assert "${trainer.default_root_dir}" in (tmp_path / "check.yaml").read_text()


@pytest.mark.slow
def test_the_lightning_stage_runs_fit_resume_and_sample_on_the_cpu(tmp_path):
    """The stage's smoke arguments of bench/gpu_check.sh, steps shortened (about a minute)."""
    stage = tmp_path / "lightning.json"
    cmd = [
        sys.executable, "-m", "bench.gpu.check_lightning", "--work", str(tmp_path / "work"),
        "--json", str(stage), "--steps", "4", "--resume-at", "2", "--warmup", "1",
        "--batch-size", "4", "--resolution", "64", "--sample-resolution", "128",
        "--num-images", "2", "--vae", "tiny", "--train-samples", "32", "--val-samples", "8",
        "--budget-s", "900", "--sample-reserve-s", "0", "--model.net.name=DiT-N/2",
        "--sampling-steps", "2", "--trainer.accelerator=cpu", "--trainer.devices=1",
        "--trainer.precision=32-true", "--data.num_workers=0",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads(stage.read_text())
    assert record["status"] == "ok", record["error"]
    assert record["data"]["resumed_from_step"] == 2
    assert [f["end_step"] for f in record["data"]["fits"]] == [2, 4]
    assert record["data"]["sample_cli"]["images"] == 2
    assert "run/samples/step0000004_128x128.png" in record["data"]["grids"]
