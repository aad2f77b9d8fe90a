"""What ``make study`` costs on a CPU without native bf16, from a run on this one.

    python -m bench.cpu.study_cost [--timings runs/study_cpu/timings.json] [--repeats 3]

The study's unit costs, timed in two fresh single-thread processes side by side in one run:
this machine as the study ran on it (precision ``auto``), and the same machine restricted to
AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2``) in fp32, which is what ``auto``
chooses on a CPU without native bf16. The units are one training step of the study model
(DiT-XS/4 RPE-2D with RoPE, batch 32 at 32 px) and one eval batch (32 images at 64 px, Heun 6
with guidance 4 as in the study, the costliest cell). With a study's ``timings.json``
(CPU-seconds per stage, recorded by ``lit_rpe.study``) it prints that study's projected time on
2 AVX2 cores: each stage's CPU-seconds x the measured ratio of its unit, over 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CHILD = "--child"
REPO = Path(__file__).resolve().parents[2]  # the child runs as a module from here
AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def child(precision: str, repeats: int) -> dict:
    """Median CPU-seconds of a training step and of a 32-image sampling batch."""
    import torch

    torch.set_num_threads(1)
    from bench.common.timing import interleaved_medians, median
    from bench.cpu.train_step import make_step
    from lit_rpe.posenc import InferenceRule
    from lit_rpe.precision import resolve_precision
    from lit_rpe.training.config import NetConfig, OptimConfig
    from lit_rpe.training.module import DiffusionModule

    resolved = resolve_precision(precision, "cpu")
    bf16 = resolved.autocast_dtype is not None
    net = NetConfig(name="DiT-XS/4", encoder="rope", train_positions="rpe2d", max_len=16)
    module = DiffusionModule(net=net, resolution=32, num_classes=10, optim=OptimConfig(lr=1e-3))
    gen = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.rand(32, 3, 32, 32, generator=gen) * 2 - 1,
        "label": torch.randint(0, 10, (32,), generator=gen),
    }
    # the step lit-rpe fit runs: training_step, backward, the module's own AdamW, the EMA
    train_step = make_step(module, module.configure_optimizers()["optimizer"], batch, bf16)

    def sample():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            module.sample([i % 10 for i in range(32)], list(range(32)), resolution=64,
                          rule=InferenceRule("extrapolate"), steps=6, method="heun",
                          cfg_scale=4.0)  # fmt: skip

    def cpu_median(fn, n):  # CPU seconds of this one-thread process, after one warm-up call
        times = interleaved_medians({"fn": fn}, warmup=1, repeats=n, clock=time.process_time)
        return median(times["fn"])

    return {
        "precision": resolved.name,
        "train_step": cpu_median(train_step, 5 * repeats),
        "sample_batch": cpu_median(sample, repeats),
    }


def measure(env_extra: dict, precision: str, repeats: int) -> dict:
    env = {**os.environ, **env_extra, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "bench.cpu.study_cost", CHILD, precision, str(repeats)],
        cwd=REPO, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        raise RuntimeError(f"the {precision} measurement failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timings", default="runs/study_cpu/timings.json")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from bench.common.machine import machine_line

    print(machine_line())
    here = measure({}, "auto", args.repeats)
    avx2 = measure(AVX2, "fp32", args.repeats)
    ratios = {unit: avx2[unit] / here[unit] for unit in ("train_step", "sample_batch")}
    print("| unit | this CPU, " + here["precision"] + " | AVX2 only, fp32 | ratio |")
    print("|---|---|---|---|")
    for unit, ratio in ratios.items():
        print(f"| {unit} | {here[unit]:.3f} CPU-s | {avx2[unit]:.3f} CPU-s | {ratio:.2f}x |")
    path = Path(args.timings)
    if not path.is_file():
        return
    timings = json.loads(path.read_text())
    total = 0.0
    print(f"\nProjected from {path} (CPU-seconds per stage x ratio, over 2 cores):")
    for stage, value in timings.items():
        if not isinstance(value, list):
            continue
        ratio = ratios["train_step"] if stage == "train" else ratios["sample_batch"]
        total += value[1] * ratio
        print(f"- {stage}: {value[1] / 60:.1f} CPU-min here -> {value[1] * ratio / 60:.1f} on AVX2")
    print(f"- total on 2 AVX2 cores, fp32: {total / 2 / 60:.0f} min (wall, if both stay busy)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]))))
    else:
        main()
