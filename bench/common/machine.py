"""What a benchmark's figures were measured on and in which precision: the header line every
CPU benchmark prints, and the shared --precision option."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence

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
