"""Dense bf16 tensor-core peaks of the GPUs the check may meet, by variant: MFU's denominator.

One chip name covers variants of different clocks and power (an H200 SXM runs at 700 W, an H200
NVL at 600 W), so the variant is read from the device name and, where the name is ambiguous, its
memory; the figures are the vendors' datasheet values without sparsity, in TFLOP/s.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuPeak:
    """A variant's name (``H200 NVL``) and its dense bf16 peak in TFLOP/s."""

    variant: str
    tflops: float


# (text in the device name, least memory in GiB or 0, the variant): the first match wins, so a
# specific entry comes before its prefix. An H100 NVL has 94 GB; some drivers call it "H100".
PEAKS: list[tuple[str, float, GpuPeak]] = [
    ("H100 PCIe", 0, GpuPeak("H100 PCIe", 756.0)),
    ("H100 NVL", 0, GpuPeak("H100 NVL", 835.0)),
    ("H100", 90, GpuPeak("H100 NVL", 835.0)),
    ("H100", 0, GpuPeak("H100 SXM", 989.4)),  # "NVIDIA H100 80GB HBM3"
    ("GH200", 0, GpuPeak("GH200", 989.4)),
    ("H200 NVL", 0, GpuPeak("H200 NVL", 835.0)),
    ("H200", 0, GpuPeak("H200 SXM", 989.4)),  # "NVIDIA H200"
    ("H20", 0, GpuPeak("H20", 148.0)),
    ("B200", 0, GpuPeak("B200", 2250.0)),
    ("A100", 0, GpuPeak("A100", 312.0)),
    ("A800", 0, GpuPeak("A800", 312.0)),
    ("L40S", 0, GpuPeak("L40S", 362.1)),
    ("L40", 0, GpuPeak("L40", 181.0)),
    ("A10G", 0, GpuPeak("A10G", 70.0)),
    ("L4", 0, GpuPeak("L4", 121.0)),
]


def gpu_peak(device_name: str, memory_gib: float = 0.0) -> GpuPeak | None:
    """The variant of ``device_name`` (``torch.cuda.get_device_name``) with ``memory_gib`` of
    memory, and its peak; None for a device the table does not know."""
    name = device_name.lower()
    for key, least_memory, peak in PEAKS:
        if key.lower() in name and memory_gib >= least_memory:
            return peak
    return None
