"""Resumable, parallel writing of a set of shards, with a progress bar.

The caller plans the whole output up front: a list of ``ShardJob`` (file name + the picklable,
JSON-able descriptions of its samples) and a renderer that turns one job into its samples
(``ItemRenderer`` wraps a per-item function that returns ``(key, {field: bytes})`` or raises
``UnreadableItem``; batched renderers, like the latent encoder, take the job whole). The plan is
hashed and stored in the folder's ``shards.json``; a re-run with the same plan writes only the
shards that are not finished yet (finished: listed in the manifest with its current byte size),
so a stopped conversion resumes where it was and ends with exactly the shards of an
uninterrupted run.
A re-run with a different plan stops with an error instead of mixing two data sets.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from lit_rpe.training.data.shard_list import read_manifest, write_manifest
from lit_rpe.training.data.tar_io import PARTIAL_SUFFIX, write_tar

Sample = tuple[str, dict[str, bytes]]
# job -> (samples in order, [[item, reason], ...] for the items that could not be read)
JobRenderer = Callable[["ShardJob"], tuple[list[Sample], list[list[Any]]]]


class UnreadableItem(Exception):
    """An input that cannot become a sample (unreadable file, undecodable image)."""


@dataclass(frozen=True)
class ShardJob:
    """One shard to write: its file name and the descriptions of its samples, in order."""

    name: str
    items: tuple[Any, ...]


@dataclass
class WriteSummary:
    """What a ``write_shards`` call did: shards written now / found finished, samples in the
    folder, and every input that could not be read as ``[description, reason]``."""

    written: int = 0
    reused: int = 0
    samples: int = 0
    unreadable: list[list[Any]] = field(default_factory=list)


def shuffled_jobs(items: list[Any], shard_size: int, seed: list[int]) -> list[ShardJob]:
    """Shuffle ``items`` with a generator seeded by ``seed`` and cut them into shards of
    ``shard_size`` named ``shard-000000.tar``, ... (shuffled so no shard holds one class)."""
    order = np.random.default_rng(seed).permutation(len(items))
    shuffled = [items[i] for i in order]
    return [
        ShardJob(f"shard-{n:06d}.tar", tuple(shuffled[start : start + shard_size]))
        for n, start in enumerate(range(0, len(shuffled), shard_size))
    ]


def plan_id(settings: dict[str, Any], jobs: list[ShardJob]) -> str:
    """SHA-256 of the settings and of every job's name and items (what decides the bytes)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for job in jobs:
        digest.update(json.dumps([job.name, list(job.items)]).encode())
    return digest.hexdigest()


class ItemRenderer:
    """Job renderer from a picklable per-item function ``item -> (key, fields)``."""

    def __init__(self, render_item: Callable[[Any], Sample]):
        self.render_item = render_item

    def __call__(self, job: ShardJob) -> tuple[list[Sample], list[list[Any]]]:
        samples, unreadable = [], []
        for item in job.items:
            try:
                samples.append(self.render_item(item))
            except UnreadableItem as err:
                unreadable.append([item, str(err)])
        return samples, unreadable


def _write_job(render: JobRenderer, out_dir: Path, job: ShardJob) -> dict[str, Any]:
    samples, unreadable = render(job)
    path = out_dir / job.name
    count = write_tar(path, samples)
    return {
        "name": job.name,
        "samples": count,
        "bytes": path.stat().st_size,
        "unreadable": unreadable,
    }


class ShardFolderInUse(FileExistsError):
    """An output folder holds shards this build did not plan (other inputs, settings or data
    format): they are never overwritten."""


def run_builder(main: Callable[[], None]) -> None:
    """Run a shard builder's ``main``; a folder in use ends in one ``lit-rpe:`` line, exit 1."""
    try:
        main()
    except ShardFolderInUse as err:
        raise SystemExit(f"lit-rpe: {err}") from None


def _finished_entries(out_dir: Path, pid: str) -> dict[str, dict[str, Any]]:
    manifest = read_manifest(out_dir)
    if manifest is None:
        strays = sorted(p.name for p in out_dir.glob("*.tar"))
        if strays:
            raise ShardFolderInUse(
                f"{out_dir} holds shards ({strays[0]}, ...) without shards.json; "
                "write to an empty folder"
            )
        return {}
    if manifest.get("plan_id") != pid:
        raise ShardFolderInUse(
            f"{out_dir} was written from other inputs or settings (plan {manifest.get('plan_id')}"
            f" != {pid}); use another output folder or delete this one"
        )
    entries = {}
    for entry in manifest["shards"]:
        path = out_dir / entry["name"]
        if path.is_file() and path.stat().st_size == entry["bytes"]:
            entries[entry["name"]] = entry
    return entries


def write_shards(
    out_dir: str | Path,
    jobs: list[ShardJob],
    render: JobRenderer,
    settings: dict[str, Any],
    workers: int = 1,
    progress: bool = True,
    description: str = "shards",
    extra: dict[str, Any] | None = None,
) -> WriteSummary:
    """Write every job's shard into ``out_dir`` (created), resuming a previous run.

    ``settings``: everything besides the jobs that changes the bytes (seed, sizes, format), part
    of the plan hash. ``extra``: more keys for ``shards.json``. ``workers > 1`` renders shards in
    that many processes (``render`` must then be picklable). Returns a ``WriteSummary``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pid = plan_id(settings, jobs)
    entries = _finished_entries(out_dir, pid)
    header = {"plan_id": pid, "settings": settings, **(extra or {})}
    for stale in out_dir.glob("*" + PARTIAL_SUFFIX):
        stale.unlink()
    todo = [job for job in jobs if job.name not in entries]
    summary = WriteSummary(reused=len(jobs) - len(todo))
    write_manifest(out_dir, list(entries.values()), {**header, "complete": not todo})
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("samples"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task(description, total=sum(len(j.items) for j in jobs))
        bar.advance(task, sum(len(j.items) for j in jobs if j.name in entries))
        work = partial(_write_job, render, out_dir)
        if workers > 1 and len(todo) > 1:
            pool = multiprocessing.get_context().Pool(min(workers, len(todo)))
            results = pool.imap_unordered(work, todo)
        else:
            pool, results = None, map(work, todo)
        try:
            sizes = {job.name: len(job.items) for job in todo}
            for entry in results:
                entries[entry["name"]] = entry
                summary.written += 1
                complete = summary.written == len(todo)
                write_manifest(out_dir, list(entries.values()), {**header, "complete": complete})
                bar.advance(task, sizes[entry["name"]])
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    summary.samples = sum(e["samples"] for e in entries.values())
    summary.unreadable = [u for name in sorted(entries) for u in entries[name]["unreadable"]]
    return summary


def add_writer_options(parser: argparse.ArgumentParser, *, shard_size: int) -> None:
    """The options every shard builder shares: --shard-size, --seed, --workers, --no-progress."""
    parser.add_argument("--shard-size", type=int, default=shard_size, help="samples per shard")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples and their order")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-progress", action="store_true")


def print_summaries(summaries: dict[str, WriteSummary], out: Path, console: Console) -> None:
    """One line per split (samples, shards written and reused), and its unreadable files."""
    for split, s in summaries.items():
        console.print(
            f"[bold]{split}[/]: {s.samples} samples in {s.written + s.reused} shards "
            f"({s.written} written, {s.reused} already done) -> {out / split}"
        )
        if s.unreadable:
            console.print(
                f"  [red]{len(s.unreadable)} unreadable file(s)[/], listed in "
                f"{out / split / 'unreadable.txt'}:"
            )
            for _, reason in s.unreadable[:10]:
                console.print(f"    {reason}")
