"""Which fused attention kernel ``scaled_dot_product_attention`` really runs, and which could.

PyTorch picks the SDPA backend at run time from the inputs (device, dtype, head dim, mask,
grad mode) and says nothing about its choice. Two ways to see it:

- ``observed_backends(fn)``: run ``fn`` once under the profiler and read the backend off the
  ATen operator that SDPA dispatched to (``aten::_scaled_dot_product_flash_attention`` and so
  on), or, failing that, off the CUDA kernel names (``flash_fwd``, ``fmha_cutlass``, cuDNN's
  ``sdpa``). This is the kernel the model actually used, compiled or not.
- ``probe_backends(...)``: run one attention forward + backward at the model's shapes with each
  backend alone (``torch.nn.attention.sdpa_kernel``): which ones accept the inputs, and their
  time per call on the device.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from bench.common.timing import timed

# Our names for the backends, in PyTorch's own priority order on CUDA.
BACKENDS: dict[str, SDPBackend] = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}

# ATen operator name -> backend (forward and backward ops share the prefix).
_OP_PREFIXES = (
    ("aten::_scaled_dot_product_flash_attention", "flash"),  # also the CPU "_for_cpu" kernel
    ("aten::_scaled_dot_product_cudnn_attention", "cudnn"),
    ("aten::_scaled_dot_product_efficient_attention", "efficient"),
    ("aten::_scaled_dot_product_attention_math", "math"),
    ("aten::_scaled_dot_product_fused_attention_overrideable", "overrideable"),
)


def backend_of_kernel(name: str) -> str | None:
    """The SDPA backend a CUDA kernel name belongs to, or None for any other kernel."""
    low = name.lower()
    if "cudnn" in low and ("sdpa" in low or "attention" in low or "fmha" in low):
        return "cudnn"
    if "flash" in low and ("fwd" in low or "bwd" in low or "attention" in low):
        return "flash"
    if "fmha_cutlass" in low or "efficient_attention" in low:
        return "efficient"
    return None


def classify_events(names: Iterable[str]) -> list[str]:
    """Backends found among profiler event names (ATen ops first, kernel names as a fallback),
    sorted; empty when no attention ran."""
    names = list(names)
    found = {b for n in names for prefix, b in _OP_PREFIXES if n.startswith(prefix)}
    if not found:
        found = {b for n in names if (b := backend_of_kernel(n)) is not None}
    return sorted(found)


def observed_backends(fn: Callable[[], object], device: str) -> list[str]:
    """Run ``fn`` once under the profiler; the SDPA backends it dispatched to (see module doc)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
    return classify_events(event.name for event in prof.events())


def probe_backends(
    *,
    batch: int,
    heads: int,
    tokens: int,
    head_dim: int,
    dtype: torch.dtype,
    device: str,
    repeats: int = 5,
) -> dict[str, dict]:
    """Forward + backward of one attention call of shape (batch, heads, tokens, head_dim) with
    each backend alone. Returns ``{backend: {"ok": bool, "ms": float | None, "reason": str}}``;
    ``ms`` is the mean time of ``repeats`` calls after one warm-up, ``reason`` PyTorch's
    explanation when the backend refused the inputs."""
    gen = torch.Generator().manual_seed(0)
    shape = (batch, heads, tokens, head_dim)
    q, k, v = (
        torch.randn(shape, generator=gen).to(device, dtype).requires_grad_(True) for _ in range(3)
    )

    def call() -> None:
        F.scaled_dot_product_attention(q, k, v).sum().backward()

    results: dict[str, dict] = {}
    for name, backend in BACKENDS.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with sdpa_kernel([backend]):
                    ms = 1e3 * timed(call, device, warmup=1, iters=repeats)
                results[name] = {"ok": True, "ms": ms, "reason": ""}
            except RuntimeError as err:
                # PyTorch explains a refusal in warnings ("Flash attention requires ..."); keep
                # the first explanation, else the error's first line.
                why = [str(w.message).splitlines()[0] for w in caught]
                reason = why[0] if why else str(err).splitlines()[0]
                results[name] = {"ok": False, "ms": None, "reason": reason[:160]}
        q.grad = k.grad = v.grad = None
    return results
