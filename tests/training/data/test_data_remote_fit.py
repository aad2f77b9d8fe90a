"""``lit-rpe fit`` on the demo experiment with its training shards behind a URL: served by a
loopback HTTP server, and in a moto S3 bucket read through s3fs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from data_fixtures import write_shard_set
from remote_servers import http_server, s3_server

from lit_rpe.training.data.make_manifest import manifest_entries
from lit_rpe.training.data.shard_list import write_manifest

ROOT = Path(__file__).resolve().parents[3]
STEPS = 3


@pytest.fixture
def shard_folders(tmp_path: Path) -> tuple[Path, Path]:
    """(train folder: 2 shards x 24 samples with manifest, local val folder: 16 samples)."""
    train, val = tmp_path / "data" / "train", tmp_path / "val"
    write_shard_set(train, num_shards=2, per_shard=24)
    write_manifest(train, manifest_entries(train))
    write_shard_set(val, num_shards=1, per_shard=16, seed=1)
    return train, val


def fit(train_shards: str, val: Path, run_dir: Path) -> subprocess.CompletedProcess:
    """The demo experiment shrunk to seconds (DiT-N/2 at 16 px) on ``train_shards``."""
    command = [
        sys.executable,
        "-m",
        "lit_rpe",
        "fit",
        "--config",
        "experiments/demo.yaml",
        f"--data.train_shards={train_shards}",
        f"--data.val_shards={val}",
        f"--trainer.default_root_dir={run_dir}",
        f"--trainer.max_steps={STEPS}",
        "--trainer.limit_val_batches=0",
        "--trainer.log_every_n_steps=1",
        "--model.net.name=DiT-N/2",
        "--data.resolution=16",
        "--data.batch_size=4",
        "--data.num_workers=1",
        "--data.samples_per_epoch=48",
        "--data.read.retry_delay_s=0.05",
        "--trainer.precision=32",
        "--trainer.callbacks.init_args.settings.resolutions=[16]",
        "--trainer.callbacks.init_args.settings.num_images=2",
    ]
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=240
    )


def assert_trained(done: subprocess.CompletedProcess, run_dir: Path) -> None:
    assert done.returncode == 0, done.stderr[-3000:]
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert f"`Trainer.fit` stopped: `max_steps={STEPS}` reached" in done.stderr + done.stdout


@pytest.mark.timeout(300)
def test_fit_trains_on_shards_served_over_http(shard_folders, tmp_path: Path):
    train, val = shard_folders
    with http_server(train.parent) as (base, faults):
        faults.once["shard-000001.tar"] = ["503"]  # a hiccup on the way, retried
        done = fit(f"{base}/train/shard-{{000000..000001}}.tar", val, tmp_path / "run")
    assert_trained(done, tmp_path / "run")
    assert any(p.endswith(".tar") and m == "GET" for m, p, _ in faults.requests)


@pytest.mark.timeout(300)
def test_fit_trains_on_shards_in_an_s3_bucket(shard_folders, tmp_path: Path, monkeypatch):
    pytest.importorskip("s3fs", reason="the s3 extra (pip install 'lit_rpe[s3]')")
    from test_data_s3 import upload_folder

    train, val = shard_folders
    with s3_server() as endpoint:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")  # moto takes any credentials
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        # how a user points boto3 / s3fs at an S3-compatible store, for every process
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        upload_folder(endpoint, train, "shards", "train")
        done = fit("s3://shards/train/shard-{000000..000001}.tar", val, tmp_path / "run")
    assert_trained(done, tmp_path / "run")


@pytest.mark.timeout(300)
def test_fit_with_a_missing_shard_url_stops_at_set_up_with_one_line(shard_folders, tmp_path):
    """A shard the server does not have (404) is named in one line before the first step: no
    traceback, no checkpoint."""
    train, val = shard_folders
    with http_server(train.parent) as (base, _):
        done = fit(f"{base}/train/shard-{{000000..000002}}.tar", val, tmp_path / "run")
    assert done.returncode == 1, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("lit-rpe: ") and "shard-000002.tar" in last, last
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
