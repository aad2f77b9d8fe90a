"""ResolutionEvalCallback on 2 CPU processes (gloo) scores exactly what 1 process scores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from eval_fixtures import calibrated_inception_state_dict
from test_eval_grid import write_val_shards

from lit_rpe.training.callbacks.eval_history import read_history_csv

PROBE = Path(__file__).with_name("eval_ddp_probe.py")
TESTS = Path(__file__).resolve().parents[2]


def run_probe(out: Path, shards: Path, devices: int, weights: Path | None) -> list[dict]:
    out.mkdir()
    # the repository and the test helper folders (pyproject's pythonpath)
    helpers = ("training/callbacks", "training/data", "eval", "eval/grid")
    paths = [TESTS.parent, *(TESTS / folder for folder in helpers)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(map(str, paths)),
        "PYTHONWARNINGS": "ignore",
        "OMP_NUM_THREADS": "1",  # the same kernels in both runs (Lightning keeps a set value)
        "LIT_RPE_WEIGHTS": str(out / "no_weights"),
    }
    command = [sys.executable, str(PROBE), str(shards), str(out), str(devices)]
    command += [str(weights)] if weights else []
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=900, env=env, cwd=out
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"the {devices}-process run hung; its output:\n{err.stdout}\n{err.stderr}")
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(devices)]


def check_one_and_two_processes_agree(tmp_path: Path, weights: Path | None) -> list:
    shards = write_val_shards(tmp_path / "val")
    (one,) = run_probe(tmp_path / "one", shards, 1, weights)
    two = run_probe(tmp_path / "two", shards, 2, weights)
    assert one["history"] and {r[0] for r in one["history"]} == {1, 2}
    # every rank holds the same history, equal to the single process's, to the last bit
    assert two[0]["history"] == one["history"] and two[1]["history"] == one["history"]
    # only rank 0 writes files; the CSV is the history
    assert two[1]["writes"] == [] and two[0]["writes"]
    csv_rows = read_history_csv(tmp_path / "two" / "eval" / "history.csv")
    assert [[r.step, r.cell, r.metric, r.value] for r in csv_rows] == one["history"]
    return one["history"]


@pytest.mark.ddp
def test_one_and_two_processes_give_identical_offline_metrics(tmp_path):
    history = check_one_and_two_processes_agree(tmp_path, None)
    assert {r[2] for r in history} == {"val_loss", "swd"}


@pytest.mark.ddp
@pytest.mark.slow  # the Inception on CPU processes: minutes
def test_one_and_two_processes_give_identical_inception_metrics(tmp_path):
    weights = tmp_path / "inception.pth"
    torch.save(calibrated_inception_state_dict(), weights)
    history = check_one_and_two_processes_agree(tmp_path, weights)
    expected = {"val_loss", "swd", "fid", "sfid", "is", "kid", "precision", "recall"}
    assert {r[2] for r in history} == expected
