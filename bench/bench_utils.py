"""Shared helpers of the benchmarks: the configuration header, interleaved timing, tables.

Every benchmark times its variants round-robin (one repeat of each variant in turn, then the
next repeat) and reports medians, so that load from other processes on a shared machine falls on
all variants alike and the ratios stay meaningful even when the absolute figures move.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Hashable, Sequence

import torch

from lit_rpe.precision import ResolvedPrecision, machine_description, resolve_precision


def machine_line() -> str:
    """One line describing the software, the CPU and its bf16 capability the figures come from.

    The bf16 capability is the probe of ``lit_rpe.precision`` (native: ``avx512_bf16`` or AMX
    with AVX-512 kernels; emulated otherwise), with the CPU flags it rests on.
    """
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return (
        f"torch {torch.__version__}, python {platform.python_version()}, "
        f"{machine_description()}, torch threads {torch.get_num_threads()}, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
        + (f", ONEDNN_MAX_CPU_ISA={isa}" if isa else "")
    )


def add_precision_option(parser) -> None:
    """--precision auto|bf16|fp32 (auto: what this machine computes natively)."""
    parser.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        default="auto",
        help="auto: bf16 where the device computes it natively, else fp32",
    )


def resolve_bench_precision(args, device_type: str = "cpu") -> ResolvedPrecision:
    """Resolve ``args.precision`` once and print the choice with its reason."""
    resolved = resolve_precision(args.precision, device_type)
    print(resolved.describe())
    return resolved


def resolve_dtype_list(requested: Sequence[str], device_type: str = "cpu") -> list[str]:
    """``--dtypes`` lists: ``auto`` entries become the native choice; duplicates dropped."""
    names = [resolve_precision(r, device_type).name for r in requested]
    return list(dict.fromkeys(names))


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


def fmt3(value: float) -> str:
    """Three significant digits, trailing zeros kept: 112, 30.8, 5.50, 0.653."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def pm(values: Sequence[float]) -> str:
    """`` +-x%`` (half the inter-quartile range), empty with fewer than 4 samples."""
    value = spread(values)
    return "" if value != value else f" +-{value:.0f}%"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; floats are printed as given (format them before)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
