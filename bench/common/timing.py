"""The one timing helper of the benchmarks: interleaved medians on the CPU, synchronised
back-to-back timing on a GPU, and the robust spread both report.

CPU benchmarks time their variants round-robin (one repeat of each variant in turn, then the
next repeat) and report medians, so that load from other processes on a shared machine falls on
all variants alike and the ratios stay meaningful even when the absolute figures move. GPU
benchmarks own the device: ``timed`` runs back-to-back calls between two synchronisations.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Hashable, Sequence

import torch


def interleaved_medians(
    variants: dict[Hashable, Callable[[], object]],
    *,
    warmup: int,
    repeats: int,
    inner: int = 1,
    on_repeat: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[Hashable, list[float]]:
    """Time every variant ``repeats`` times, round-robin; returns seconds per call, per variant.

    Each variant first runs ``warmup`` calls (also round-robin). A timed sample is ``inner``
    consecutive calls divided by ``inner``. The order of the variants rotates each repeat so no
    variant always runs right after the same neighbour. ``clock``: ``time.perf_counter`` (wall
    time) or ``time.process_time`` (CPU time of this process: with one thread, immune to waiting
    for a core that another process holds).
    """
    keys = list(variants)
    for _ in range(warmup):
        for key in keys:
            variants[key]()
    times: dict[Hashable, list[float]] = {key: [] for key in keys}
    for r in range(repeats):
        if on_repeat is not None:
            on_repeat(r)
        order = keys[r % len(keys) :] + keys[: r % len(keys)]
        for key in order:
            fn = variants[key]
            start = clock()
            for _ in range(inner):
                fn()
            times[key].append((clock() - start) / inner)
    return times


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def add_timing_options(parser) -> None:
    """--threads and --clock, shared by the timing benchmarks (apply with ``set_threads``)."""
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument(
        "--clock", choices=list(CLOCKS), default="wall", help="cpu: process time (use 1 thread)"
    )


def set_threads(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> float:
    """Half the inter-quartile range relative to the median (a robust +- in %)."""
    if len(values) < 4:
        return float("nan")
    q = statistics.quantiles(values, n=4)
    return 50.0 * (q[2] - q[0]) / statistics.median(values)


def pm(values: Sequence[float]) -> str:
    """`` +-x%`` (half the inter-quartile range), empty with fewer than 4 samples."""
    value = spread(values)
    return "" if value != value else f" +-{value:.0f}%"


def sync(device: str) -> None:
    """Wait for the queued GPU work (CUDA runs asynchronously; the CPU needs nothing)."""
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str, warmup: int = 0, iters: int = 1) -> float:
    """Seconds per call of ``fn`` over ``iters`` back-to-back calls after ``warmup`` untimed
    ones, synchronised at both ends."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - start) / iters
