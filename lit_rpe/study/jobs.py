"""Run the study's processes side by side: N workers, each a fresh Python with a fixed thread
count, one log file per job, CPU seconds recorded. Small models on a few cores run faster as
several single-thread processes than as one multi-thread one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Job:
    """One process: ``python -m <args>``; its output goes to ``log``."""

    name: str
    args: tuple[str, ...]
    log: Path


@dataclass(frozen=True)
class JobResult:
    name: str
    returncode: int
    wall_s: float
    cpu_s: float
    log: Path


class JobFailed(RuntimeError):
    """A job exited with an error; the message names its log."""


def thread_env(threads: int) -> dict[str, str]:
    """The environment of a worker: the caller's, with every thread pool set to ``threads``."""
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[key] = str(threads)
    return env


def run_jobs(jobs: list[Job], *, workers: int, threads: int, echo=print) -> list[JobResult]:
    """Run ``jobs`` in order, ``workers`` at a time; raise ``JobFailed`` (after the running ones
    end) if any fails. CPU seconds are the children's user + system time."""
    pending = list(jobs)
    running: dict[int, tuple[Job, subprocess.Popen, float, object]] = {}
    results: list[JobResult] = []
    env = thread_env(threads)
    while pending or running:
        failed = any(r.returncode != 0 for r in results)
        while pending and len(running) < workers and not failed:
            job = pending.pop(0)
            job.log.parent.mkdir(parents=True, exist_ok=True)
            log = job.log.open("a")
            proc = subprocess.Popen(
                [sys.executable, "-m", *job.args], stdout=log, stderr=subprocess.STDOUT, env=env
            )
            running[proc.pid] = (job, proc, time.time(), log)
            echo(f"[study] started {job.name} (log {job.log})")
        if not running:
            break
        pid, status, usage = os.wait4(-1, 0)
        if pid not in running:
            continue
        job, proc, started, log = running.pop(pid)
        log.close()
        proc.returncode = os.waitstatus_to_exitcode(status)
        result = JobResult(
            job.name,
            proc.returncode,
            time.time() - started,
            usage.ru_utime + usage.ru_stime,
            job.log,
        )
        results.append(result)
        state = "done" if result.returncode == 0 else f"FAILED ({result.returncode})"
        echo(f"[study] {state} {job.name}: {result.wall_s / 60:.1f} min, {result.cpu_s:.0f} CPU-s")
    failed = [r for r in results if r.returncode != 0]
    if failed:
        raise JobFailed(
            "; ".join(f"{r.name} exited with {r.returncode}, see {r.log}" for r in failed)
        )
    return results
