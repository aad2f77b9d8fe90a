"""Stage 0 of the GPU check: the machine and the software the figures come from.

    python -m bench.gpu.check_env --json <stages>/environment.json [--require-cuda]

Prints the GPU model, its memory, the driver and CUDA versions (the driver's, from nvidia-smi,
and torch's runtime), cuDNN, torch, Triton, Lightning, diffusers and Python, and records them.
With ``--require-cuda`` it fails when torch sees no GPU, so the check stops early instead of
running every stage into the same error.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess

import torch

from bench.gpu.check_results import StageReport
from bench.gpu.peaks import gpu_peak

PACKAGES = ("lightning", "torchmetrics", "diffusers", "omegaconf", "jsonargparse", "triton")


def nvidia_smi() -> dict[str, str]:
    """Driver version, the driver's CUDA version and the GPU list from ``nvidia-smi``."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {}
    info: dict[str, str] = {}
    try:
        query = subprocess.run(
            [exe, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        header = subprocess.run([exe], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"error": str(err)}
    if query.returncode == 0 and query.stdout.strip():
        name, driver, memory = (s.strip() for s in query.stdout.splitlines()[0].split(","))
        info.update(smi_gpu=name, driver=driver, smi_memory=memory)
    match = re.search(r"CUDA Version:\s*([\d.]+)", header.stdout)
    if match:
        info["cuda_driver"] = match.group(1)
    return info


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def environment() -> dict[str, object]:
    info: dict[str, object] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda_runtime": torch.version.cuda,
        "cpu_cores": os.cpu_count(),
        **package_versions(),
        **nvidia_smi(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        peak = gpu_peak(props.name, props.total_memory / 2**30)
        info.update(
            gpu=props.name,
            gpu_memory_gib=props.total_memory / 2**30,
            capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
            cudnn=torch.backends.cudnn.version(),
            gpu_variant=peak.variant if peak else None,
            peak_bf16_tflops=peak.tflops if peak else None,
        )
        info["summary"] = (
            f"{props.name} ({info['gpu_memory_gib']:.0f} GiB, sm {info['capability']}; variant "
            f"{info['gpu_variant'] or 'unknown'}, dense bf16 peak "
            f"{info['peak_bf16_tflops'] or '?'} TFLOP/s), "
            f"driver {info.get('driver', '?')} (CUDA {info.get('cuda_driver', '?')}), "
            f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {info['cudnn']}), "
            f"triton {info['triton']}, lightning {info['lightning']}, "
            f"python {info['python']}, {info['cpu_cores']} CPU cores"
        )
    else:
        info["gpu"] = None
        info["summary"] = (
            f"no CUDA GPU: CPU {platform.machine()}, {info['cpu_cores']} cores, "
            f"torch {torch.__version__}, lightning {info['lightning']}, python {info['python']}"
        )
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=None, help="stage record to write")
    parser.add_argument("--require-cuda", action="store_true")
    args = parser.parse_args()
    report = StageReport(args.json, "environment", vars(args))
    info = environment()
    for key, value in info.items():
        report.data[key] = value
    print(info["summary"])
    for key in ("gpu", "driver", "cuda_driver", "cuda_runtime", "cudnn", "torch", *PACKAGES):
        print(f"  {key}: {info.get(key)}")
    if args.require_cuda and not torch.cuda.is_available():
        report.fail(RuntimeError("torch sees no CUDA GPU; run with --smoke on a CPU"))
        raise SystemExit(1)
    report.finish()


if __name__ == "__main__":
    main()
