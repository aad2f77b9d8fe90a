"""The one precision policy: ``auto`` becomes bf16 where the hardware computes bf16, else fp32.

Every entry point (the Trainer, ``lit-rpe sample``, the eval grid, the demo and study, the
benchmarks) resolves its requested precision here once, before it builds anything, and records
the short name (``bf16`` / ``fp32``) of what it actually ran.

Why the CPU needs a probe: without native bf16 instructions (``avx512_bf16`` or AMX), CPU autocast
to bf16 is emulated and slow. A DiT-S/2 training step (256 tokens, batch 8) ran about 18x slower in
bf16 than in fp32 with AVX2 kernels on an AMD EPYC (``ONEDNN_MAX_CPU_ISA=AVX2
ATEN_CPU_CAPABILITY=avx2``), while with ``avx512_bf16`` the same step was 1.5x faster in bf16.
"""

from __future__ import annotations

import functools
import os
import platform
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from lightning.pytorch.accelerators import Accelerator, CPUAccelerator, CUDAAccelerator

from lit_rpe.provenance import cpu_name

PrecisionName = Literal["bf16", "fp32"]
# What a user may write: the short names, ``auto``, and Lightning's spellings of the same two.
PrecisionRequest = Literal["auto", "bf16", "bf16-mixed", "fp32", "32", "32-true"] | Literal[32]
PRECISION_REQUESTS: tuple[str | int, ...] = ("auto", "bf16", "bf16-mixed", "fp32", "32", "32-true")
_ALIASES = {"bf16": "bf16", "bf16-mixed": "bf16", "fp32": "fp32", "32": "fp32", "32-true": "fp32"}
_LIGHTNING = {"bf16": "bf16-mixed", "fp32": "32-true"}
_NATIVE_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# Measured: DiT-S/2 training step, 256 tokens, batch 8, AMD EPYC with AVX2 kernels (see above).
EMULATED_BF16_SLOWDOWN = "about 20x slower than fp32"


@dataclass(frozen=True)
class Bf16Support:
    """Whether a device computes bf16 natively; ``detail`` says what the answer rests on."""

    native: bool
    detail: str


@dataclass(frozen=True)
class ResolvedPrecision:
    """A precision decision. name: ``bf16`` or ``fp32`` (what results record); lightning: the
    Trainer's precision string; autocast_dtype: ``torch.bfloat16`` or None (no autocast);
    reason: why, in words (the log line)."""

    name: PrecisionName
    lightning: Literal["bf16-mixed", "32-true"]
    autocast_dtype: torch.dtype | None
    reason: str

    def describe(self) -> str:
        return f"precision {self.name} ({self.lightning}): {self.reason}"


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where there is no such file)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _probe(probe: Callable[[], bool], fallback: bool) -> bool:
    """A private torch probe where this torch build has it, else ``fallback``."""
    try:
        return bool(probe())
    except (AttributeError, RuntimeError):
        return fallback


def cpu_bf16_support() -> Bf16Support:
    """Native bf16 on this CPU: a bf16 instruction set (``avx512_bf16`` or AMX) that oneDNN and
    ATen's kernels may use. ``ONEDNN_MAX_CPU_ISA`` / ``ATEN_CPU_CAPABILITY`` lowering the kernels
    below AVX-512 count as no native bf16, since the bf16 paths then are emulated."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return Bf16Support(False, f"no native-bf16 probe for {platform.machine()} CPUs")
    flags = cpu_flags()
    # torch's probes read the CPU's flags (and ignore the two variables), oneDNN's and ATen's
    # report the kernels that will actually run
    avx512_bf16 = _probe(lambda: torch.cpu._is_avx512_bf16_supported(), "avx512_bf16" in flags)
    amx = _probe(lambda: torch.cpu._is_amx_tile_supported(), "amx_bf16" in flags)
    hardware = [n for n, ok in (("avx512_bf16", avx512_bf16), ("amx", amx)) if ok]
    onednn = _probe(lambda: torch.ops.mkldnn._is_mkldnn_bf16_supported(), True)
    capability = torch.backends.cpu.get_cpu_capability()
    if not hardware:
        return Bf16Support(False, f"CPU without {' or '.join(_NATIVE_CPU_FLAGS)}")
    if not onednn or not capability.startswith("AVX512"):
        return Bf16Support(
            False,
            f"{'+'.join(hardware)} present, but the kernels are limited to {capability}"
            + ("" if onednn else " and oneDNN's bf16 is off")
            + " (ONEDNN_MAX_CPU_ISA / ATEN_CPU_CAPABILITY)",
        )
    return Bf16Support(True, f"{'+'.join(hardware)}, {capability} kernels")


def cuda_bf16_support() -> Bf16Support:
    if not torch.cuda.is_available():
        return Bf16Support(False, "no CUDA device")
    name = torch.cuda.get_device_name()
    if torch.cuda.is_bf16_supported(including_emulation=False):
        return Bf16Support(True, f"{name} supports bf16")
    return Bf16Support(False, f"{name} has no native bf16")


def bf16_support(device_type: str) -> Bf16Support:
    """The capability probe of a device type (``cpu``, ``cuda``; others: no native bf16)."""
    if device_type == "cpu":
        return cpu_bf16_support()
    if device_type == "cuda":
        return cuda_bf16_support()
    return Bf16Support(False, f"no bf16 probe for {device_type} devices")


@functools.cache
def _warn_emulated_bf16(device_type: str, detail: str) -> None:
    """Warn once per process (per device and reason) about an explicit emulated bf16."""
    warnings.warn(
        f"precision bf16 was requested, but this {device_type} has no native bf16 ({detail}): "
        f"autocast emulates it, {EMULATED_BF16_SLOWDOWN} (a DiT-S/2 training step, measured). "
        "Use precision auto (or fp32) unless you mean to test bf16 numerics.",
        stacklevel=3,
    )


def resolve_precision(requested: str | int, device_type: str) -> ResolvedPrecision:
    """Turn a requested precision into the one to run.

    requested: ``auto``, ``bf16`` / ``bf16-mixed`` or ``fp32`` / ``32`` / ``32-true``.
    device_type: ``cpu``, ``cuda``, ... (``torch.device.type``). ``auto`` gives bf16 where
    ``bf16_support`` says the device computes bf16 natively, else fp32; an explicit choice is
    kept, with a once-only warning when it is bf16 on a device without native bf16.
    """
    key = str(requested).lower()
    if key != "auto" and key not in _ALIASES:
        valid = ", ".join(str(r) for r in PRECISION_REQUESTS)
        raise ValueError(f"unknown precision {requested!r}; valid: {valid}")
    if key == "auto":
        support = bf16_support(device_type)
        name: PrecisionName = "bf16" if support.native else "fp32"
        verdict = "native bf16" if support.native else "no native bf16"
        reason = f"auto on {device_type}: {verdict} ({support.detail})"
    else:
        name = _ALIASES[key]
        reason = f"set explicitly ({requested}) on {device_type}"
        if name == "bf16":
            support = bf16_support(device_type)
            if not support.native:
                _warn_emulated_bf16(device_type, support.detail)
                reason += f", emulated: {support.detail}"
    return ResolvedPrecision(
        name=name,
        lightning=_LIGHTNING[name],
        autocast_dtype=torch.bfloat16 if name == "bf16" else None,
        reason=reason,
    )


CHECKPOINT_KEY = "precision"  # where DiffusionModule.on_save_checkpoint records the Trainer's


def trained_precision(checkpoint: str | os.PathLike) -> str:
    """The precision a checkpoint was trained in (``bf16-mixed`` / ``32-true``), in words."""
    if not os.path.isfile(checkpoint):
        return "unknown (no checkpoint)"
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    return str(state.get(CHECKPOINT_KEY, "unknown (saved before precisions were recorded)"))


def accelerator_device_type(accelerator: str | Accelerator) -> str:
    """The device type a Trainer ``accelerator`` argument will run on (``auto``: CUDA if any)."""
    if isinstance(accelerator, Accelerator):
        for kind, device_type in ((CUDAAccelerator, "cuda"), (CPUAccelerator, "cpu")):
            if isinstance(accelerator, kind):
                return device_type
        return "other"  # no bf16 probe: auto gives fp32
    accelerator = accelerator.lower()
    if accelerator in ("gpu", "cuda"):
        return "cuda"
    if accelerator == "auto":  # Lightning's order: CUDA, then Apple's MPS, then the CPU
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    return accelerator


def machine_description() -> str:
    """The CPU and its bf16 capability in one phrase, for benchmark headers and reports."""
    support = cpu_bf16_support()
    kind = "native" if support.native else "emulated"
    return f"{cpu_name()}, {os.cpu_count()} cores, CPU bf16 {kind} ({support.detail})"
