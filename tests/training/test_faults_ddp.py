"""Issue 24's signal and divergence handling on 2 CPU processes (gloo). Most runs are launched
from outside as ``srun`` or ``torchrun`` do (one ``lit-rpe fit`` per rank, ``LOCAL_RANK`` set), so
every rank's exit status and output are seen: a SIGTERM to rank 1 alone stops both ranks at the
same step boundary with one checkpoint and exit status 75, and the 2-process resume logs what an
uninterrupted 2-process run logs; a loss that runs away (finite, or NaN) on rank 1 alone stops
both ranks with the same line and no checkpoint. One run lets Lightning start rank 1 itself
(``--trainer.devices=2`` on one machine). Every process has a timeout: a rank left waiting in a
collective fails the test instead of hanging it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import torch
from test_cli import ROOT, photo_set, wait_for  # noqa: F401
from test_faults_cli import fit_args, logged_losses, plain_env, session_processes

from lit_rpe.training.signals import EXIT_INTERRUPTED

pytestmark = [pytest.mark.ddp, pytest.mark.usefixtures("photo_set")]

RANKS = 2
TIMEOUT = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_env(rank: int, port: int) -> dict[str, str]:
    """What a launcher gives each rank; ``LOCAL_RANK`` tells Lightning not to spawn its own."""
    return dict(
        plain_env(),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(RANKS),
        NODE_RANK="0",
        LOCAL_RANK=str(rank),
        RANK=str(rank),
    )


def start_ranks(run_dir: Path, probes: list[Path], steps: int, delay=0.0, extra=()):
    """One ``lit-rpe fit`` per rank, on the same run directory; rank r writes ``probes[r]``."""
    port = free_port()
    return [
        subprocess.Popen(
            [
                *fit_args(run_dir, probes[r], steps, delay),
                "--trainer.devices=2",
                "--trainer.strategy=ddp",
                *extra,
            ],
            cwd=ROOT,
            env=rank_env(r, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        for r in range(RANKS)
    ]


def kill(processes: list[subprocess.Popen]) -> None:
    """SIGKILL the sessions of the processes still running (their ranks and workers)."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()


def finish(processes: list[subprocess.Popen], timeout: float = TIMEOUT) -> list[str]:
    """Every rank's output; a rank still running after ``timeout`` is killed, with all others,
    and the test fails naming it."""
    outputs = []
    try:
        for rank, process in enumerate(processes):
            try:
                outputs.append(process.communicate(timeout=timeout)[0])
            except subprocess.TimeoutExpired:
                pytest.fail(f"rank {rank} hung (killed after {timeout} s)")
    finally:
        kill(processes)
    return outputs


def fit_ranks(run_dir: Path, probes: list[Path], steps: int, extra=()) -> list[str]:
    processes = start_ranks(run_dir, probes, steps, extra=extra)
    outputs = finish(processes)
    for rank, (process, output) in enumerate(zip(processes, outputs, strict=True)):
        assert process.returncode == 0, f"rank {rank}:\n{output[-3000:]}"
    return outputs


def steps_seen(probe: Path) -> int:
    return probe.read_text().count("step") if probe.exists() else 0


def test_sigterm_to_one_rank_stops_both_at_one_step_and_resumes_like_an_uninterrupted_run(
    tmp_path,
):
    run_dir = tmp_path / "run"
    probes = [tmp_path / f"rank{r}.txt" for r in range(RANKS)]
    processes = start_ranks(run_dir, probes, 1000, delay=0.3)
    try:
        wait_for(lambda: min(map(steps_seen, probes)) >= 3, 150, "both ranks to train")
    except AssertionError:
        kill(processes)
        raise
    processes[1].send_signal(signal.SIGTERM)  # rank 1 alone, as a pre-empted node would see
    outputs = finish(processes, timeout=90)

    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"]
    assert saved >= 3
    for rank, (process, output) in enumerate(zip(processes, outputs, strict=True)):
        assert process.returncode == EXIT_INTERRUPTED, f"rank {rank}:\n{output[-3000:]}"
        assert f"lit-rpe: interrupted by SIGTERM after step {saved}: saved {checkpoint}" in output
        assert "Traceback" not in output
        # both stopped at the boundary of the saved step: neither trained a step after it
        assert probes[rank].read_text().split()[-1] == str(saved), f"rank {rank} ran on"
    assert "received SIGTERM" in outputs[1] and "received SIGTERM" not in outputs[0]
    assert [p.name for p in run_dir.rglob("*.ckpt")] == ["last.ckpt"]

    resumed = [tmp_path / f"resumed{r}.txt" for r in range(RANKS)]
    fit_ranks(run_dir, resumed, saved + 3)
    for probe in resumed:
        assert probe.read_text().split()[:2] == ["start", str(saved)], "did not resume there"
    straight = tmp_path / "straight"
    fit_ranks(straight, [tmp_path / f"straight{r}.txt" for r in range(RANKS)], saved + 3)
    logged = logged_losses(run_dir)
    assert logged == logged_losses(straight)
    assert sorted(step for name, step in logged if name == "train/loss") == list(range(saved + 3))
    resumed_ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    straight_ckpt = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=False)
    for name, value in straight_ckpt["state_dict"].items():  # weights and EMA
        torch.testing.assert_close(resumed_ckpt["state_dict"][name], value, rtol=0, atol=0)


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``, from /proc."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in task.read_text().split()]
    return found


def test_sigusr1_to_the_rank_lightning_started_stops_the_run_resumably(tmp_path):
    """``lit-rpe fit --trainer.devices=2`` on one machine: rank 0 starts rank 1 itself (Lightning's
    launcher). A SIGUSR1 to that child alone stops the run at a step boundary with exit status
    75 and one checkpoint, rank 0 names the signal rank 1 received, and no process of the run
    is left behind."""
    run_dir, probe = tmp_path / "run", tmp_path / "steps.txt"
    process = subprocess.Popen(
        [
            *fit_args(run_dir, probe, 1000, delay=0.3),
            "--trainer.devices=2",
            "--trainer.strategy=ddp",
        ],
        cwd=ROOT,
        env=plain_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        # both ranks append to the one probe file: 6 lines are 3 steps each
        wait_for(lambda: steps_seen(probe) >= 6, 150, "both ranks to train")
        (rank1,) = children(process.pid)
        os.kill(rank1, signal.SIGUSR1)
        (output,) = finish([process], timeout=90)
    finally:
        kill([process])
    assert process.returncode == EXIT_INTERRUPTED, output[-3000:]
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"]
    # rank 1 shares rank 0's output (and may be stopped by rank 0 before it prints its line)
    stopped = [line for line in output.splitlines() if line.startswith("lit-rpe: interrupted")]
    expected = f"lit-rpe: interrupted by SIGUSR1 after step {saved}: saved {checkpoint}"
    assert stopped and all(line.startswith(expected) for line in stopped), stopped
    assert "Traceback" not in output
    assert [p.name for p in run_dir.rglob("*.ckpt")] == ["last.ckpt"]
    steps = [int(w) for w in probe.read_text().split() if w.isdigit()]
    assert max(steps) == saved and steps.count(saved) == 2  # both ranks stopped there
    wait_for(lambda: session_processes(process.pid) == [], 15, "rank 1 to exit")


@pytest.mark.parametrize(
    "lr,stop",
    [
        (1e6, "training loss diverged: 20 steps in a row above 10 x the running median"),
        (1e3, "training loss is nan at step "),  # the NaN check, also agreed by the ranks
    ],
)
def test_a_loss_running_away_on_one_rank_stops_both_with_one_line_and_no_checkpoint(
    tmp_path, lr, stop
):
    """Rank 1 trains with learning rate ``lr`` (the others with the demo's 1e-3). At 1e6 its loss
    climbs to about 1e26 and stays finite: the mean over the ranks that ``DivergenceGuard``
    judges climbs with it. At 1e3 it becomes NaN within a few steps. Either way both ranks stop
    at the same step with the same line, before any checkpoint is written."""
    run_dir = tmp_path / "run"
    probes = [tmp_path / f"rank{r}.txt" for r in range(RANKS)]
    runaway = [
        "--trainer.callbacks+=cli_probe.RunawayLrOnRank",
        f"--trainer.callbacks.init_args.lr={lr}",
    ]
    processes = start_ranks(run_dir, probes, 200, extra=runaway)
    outputs = finish(processes)
    last_lines = []
    for rank, (process, output) in enumerate(zip(processes, outputs, strict=True)):
        assert process.returncode == 1, f"rank {rank}:\n{output[-3000:]}"
        assert "Traceback" not in output
        last_lines.append(output.strip().splitlines()[-1])
    assert last_lines[0] == last_lines[1]  # the same step, loss and reason on both ranks
    assert last_lines[0].startswith(f"lit-rpe: {stop}"), last_lines[0]
    assert "Last good checkpoint: none saved yet" in last_lines[0]
    ends = [probe.read_text().split()[-1] for probe in probes]
    assert ends[0] == ends[1] and int(ends[0]) < 200  # stopped together, early
    assert not list(run_dir.rglob("*.ckpt"))  # no checkpoint of diverged weights
