"""Faults of a real ``lit-rpe fit`` (issue 24): signals on and off SLURM stop at a step boundary
with a checkpoint and exit status 75, loader workers never outlive the run, a resume continues
the uninterrupted run's logged steps, a damaged checkpoint is set aside, a divergence stops."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from test_cli import ROOT, photo_set, slurm_env, tiny_fit_args, wait_for  # noqa: F401

from lit_rpe.training.signals import EXIT_INTERRUPTED

pytestmark = pytest.mark.usefixtures("photo_set")  # the demo's photo shards (test_cli)

TIMEOUT = 240


def plain_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return dict(env, PYTHONPATH=str(ROOT / "tests" / "training"), OMP_NUM_THREADS="1")


def fit_args(run_dir: Path, probe: Path, steps: int, delay: float = 0.0, workers: int = 0):
    """The tiny demo fit of test_cli, validated on one batch every 2 steps."""
    return [
        *tiny_fit_args(run_dir, probe, steps, delay),
        f"--data.num_workers={workers}",
        "--trainer.limit_val_batches=1",
        "--trainer.val_check_interval=2",
    ]


def run_fit(run_dir: Path, probe: Path, steps: int, env=None) -> subprocess.CompletedProcess:
    done = subprocess.run(
        fit_args(run_dir, probe, steps),
        cwd=ROOT,
        env=env or plain_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


LOGGED = ("train/loss", "val/loss", "val/loss_ema")


def logged_losses(run_dir: Path) -> dict[tuple[str, int], str]:
    """(metric, step) -> value as written, for the training and validation losses, over every
    CSV log version of the run."""
    losses: dict[tuple[str, int], str] = {}
    for metrics in sorted((run_dir / "logs").glob("version_*/metrics.csv")):
        for row in csv.DictReader(metrics.open()):
            for name in LOGGED:
                if row.get(name):
                    key = (name, int(row["step"]))
                    assert key not in losses, f"{key} logged twice"
                    losses[key] = row[name]
    return losses


def eval_steps(run_dir: Path) -> list[str]:
    lines = (run_dir / "eval" / "history.csv").read_text().splitlines()[1:]
    return [line.split(",")[0] for line in lines]


def session_processes(session: int) -> list[int]:
    """Live (non-zombie) processes of a session, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def interrupt(run_dir, probe, env, send, workers=1) -> tuple[subprocess.Popen, str]:
    """Start a long fit in its own session, wait for 3 steps, ``send(process)``, wait for it."""
    process = subprocess.Popen(
        fit_args(run_dir, probe, 1000, delay=0.3, workers=workers),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(lambda: probe.exists() and probe.read_text().count("step") >= 3, 150, "training")
        send(process)
        output = process.communicate(timeout=90)[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    return process, output


def check_resume_matches_uninterrupted(tmp_path, run_dir, checkpoint: Path, env) -> None:
    """Resume the interrupted run 3 steps past its checkpoint; every logged step and loss and
    the evaluation points equal an uninterrupted run of the same length."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"]
    assert saved >= 3
    probe = tmp_path / "resumed.txt"
    run_fit(run_dir, probe, saved + 3, env=env)
    assert probe.read_text().split()[:2] == ["start", str(saved)], "did not resume there"
    straight = tmp_path / "straight"
    run_fit(straight, tmp_path / "straight.txt", saved + 3, env=env)
    logged = logged_losses(run_dir)
    assert logged == logged_losses(straight)
    assert sorted(step for name, step in logged if name == "train/loss") == list(range(saved + 3))
    assert sum(name == "val/loss" for name, _ in logged) == (saved + 3) // 2
    assert eval_steps(run_dir) == eval_steps(straight)
    resumed_ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    straight_ckpt = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=False)
    for name, value in straight_ckpt["state_dict"].items():  # weights and EMA
        torch.testing.assert_close(resumed_ckpt["state_dict"][name], value, rtol=0, atol=0)


def test_sigterm_off_slurm_saves_exits_75_and_resumes_like_an_uninterrupted_run(tmp_path):
    run_dir, probe = tmp_path / "run", tmp_path / "steps.txt"
    process, output = interrupt(
        run_dir, probe, plain_env(), lambda p: p.send_signal(signal.SIGTERM)
    )
    assert process.returncode == EXIT_INTERRUPTED, output[-3000:]
    assert "interrupted by SIGTERM after step" in output and "Traceback" not in output
    check_resume_matches_uninterrupted(
        tmp_path, run_dir, run_dir / "checkpoints" / "last.ckpt", plain_env()
    )


def test_slurm_sigusr1_to_the_process_group_saves_at_a_step_boundary_and_resumes(tmp_path):
    """What ``#SBATCH --signal=USR1@90`` does: SIGUSR1 to every process of the job step,
    loader workers and their fork server included."""
    run_dir, probe = tmp_path / "run", tmp_path / "steps.txt"
    env = dict(slurm_env(), OMP_NUM_THREADS="1")
    process, output = interrupt(run_dir, probe, env, lambda p: os.killpg(p.pid, signal.SIGUSR1))
    assert process.returncode == EXIT_INTERRUPTED, output[-3000:]
    assert "exited unexpectedly" not in output and "Traceback" not in output
    assert "interrupted by SIGUSR1" in output and "scontrol not found" in output
    # no orphaned loader worker, fork server or resource tracker
    wait_for(lambda: session_processes(process.pid) == [], 15, "the helper processes to exit")
    check_resume_matches_uninterrupted(tmp_path, run_dir, run_dir / "hpc_ckpt_1.ckpt", env)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGUSR1", "SIGINT", "SIGKILL"])
def test_loader_workers_never_outlive_the_run(tmp_path, how):
    """Off SLURM: SIGUSR1 and SIGINT to the process stop it resumably; after SIGKILL of the
    training process alone, its loader workers and their fork server die too."""
    run_dir, probe = tmp_path / "run", tmp_path / "steps.txt"
    signum = getattr(signal, how)
    process, output = interrupt(
        run_dir, probe, plain_env(), lambda p: p.send_signal(signum), workers=2
    )
    if how == "SIGKILL":
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == EXIT_INTERRUPTED, output[-3000:]
        assert f"interrupted by {how}" in output and "Traceback" not in output
        assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    wait_for(lambda: session_processes(process.pid) == [], 15, "the loader workers to exit")


@pytest.mark.slow  # three fits; training/test_checkpoints.py covers the same policy in seconds
def test_a_damaged_last_checkpoint_falls_back_and_none_readable_stops_clearly(tmp_path):
    run_dir, probe = tmp_path / "run", tmp_path / "steps.txt"
    run_fit(run_dir, probe, 2)
    folder = run_dir / "checkpoints"
    shutil.copy(folder / "last.ckpt", folder / "step0000002.ckpt")
    os.utime(folder / "step0000002.ckpt", (time.time() - 60,) * 2)
    size = (folder / "last.ckpt").stat().st_size
    with open(folder / "last.ckpt", "r+b") as f:
        f.truncate(size // 2)  # a disk-full or interrupted copy
    done = run_fit(run_dir, probe, 4)
    assert "start 2" in probe.read_text()
    out = done.stdout + done.stderr
    assert f"checkpoint {folder / 'last.ckpt'} is not a complete checkpoint" in out
    assert "kept as last.ckpt.damaged" in out and (folder / "last.ckpt.damaged").is_file()

    for name in ("last.ckpt", "step0000002.ckpt"):
        (folder / name).write_bytes(b"\x00" * 100)
    failed = subprocess.run(
        fit_args(run_dir, probe, 6),
        cwd=ROOT,
        env=plain_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    last_line = failed.stderr.strip().splitlines()[-1]
    assert last_line.startswith("lit-rpe: no readable checkpoint to resume from")
    assert "last.ckpt" in last_line and "step0000002.ckpt" in last_line


def test_a_finite_runaway_loss_stops_with_one_line_and_writes_no_checkpoint(tmp_path):
    """Learning rate 1e6: the loss climbs by orders of magnitude without becoming NaN."""
    run_dir, probe = tmp_path / "run", tmp_path / "steps.txt"
    done = subprocess.run(
        [*fit_args(run_dir, probe, 200), "--model.optim.lr=1e6"],
        cwd=ROOT,
        env=plain_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("lit-rpe: training loss ")
    assert "Last good checkpoint: none saved yet" in last_line
    assert probe.read_text().split()[-1] != "200"  # stopped early
    assert not list(run_dir.rglob("*.ckpt"))  # no checkpoint of diverged weights


def test_sample_names_a_damaged_checkpoint_in_one_line(tmp_path, monkeypatch, capsys):
    from lit_rpe.training.cli import main

    monkeypatch.chdir(ROOT)
    bad = tmp_path / "bad.ckpt"
    bad.write_text("not a checkpoint")
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "sample",
                "--config",
                "experiments/demo.yaml",
                f"--trainer.default_root_dir={tmp_path}",
                "--model.net.name=DiT-N/2",
                "--data.resolution=16",
                f"--ckpt_path={bad}",
            ]
        )
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"lit-rpe: {bad}: is not a complete checkpoint (File is not a zip file; 16 bytes: "
        "truncated or overwritten)"
    )
