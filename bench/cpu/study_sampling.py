"""How clean a shapes checkpoint's samples are under each sampler setting: the measurements that
chose the CPU study's sampler (issue 27).

    python -m bench.cpu.study_sampling CKPT [CKPT ...] [--settings 6:4:32:extrapolate ...]
        [--images 100] [--save DIR]

Each setting is ``steps:guidance:resolution:rule`` (Heun). For every checkpoint and setting it
samples the same ``--images`` (noise seeds 2000.., labels i % 10) and prints the object
metrics of ``lit_rpe.eval.metrics.object_metrics``: one clean object of the label's class
(``clean_correct``), the layouts, class and colour accuracy, and the CPU-seconds it took.
``--save DIR`` keeps the images as ``<checkpoint stem>_<setting>.npy`` (uint8 (N, H, W, 3)).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from bench.common.machine import machine_line
from lit_rpe.eval.generation import sample_chunk
from lit_rpe.eval.metrics.object_metrics import measure_objects, summarize
from lit_rpe.posenc.rules import InferenceRule, parse_rule
from lit_rpe.training.module import DiffusionModule

DEFAULT_SETTINGS = (
    "6:2:32:extrapolate",
    "12:2:32:extrapolate",
    "25:2:32:extrapolate",
    "12:1:32:extrapolate",
    "6:4:32:extrapolate",
    "12:4:32:extrapolate",
)
SHOWN = ("clean_correct", "clean", "fragmented", "duplicated", "no_object", "class_accuracy")
FIRST_SEED = 2000  # outside every study grid's noise seeds (1000 k + i, i < 32)


def parse_setting(text: str) -> tuple[int, float, int, InferenceRule]:
    try:
        steps, guidance, resolution, rule = text.split(":")
        return int(steps), float(guidance), int(resolution), parse_rule(rule)
    except ValueError as err:
        raise SystemExit(
            f"setting {text!r}: expected steps:guidance:resolution:rule ({err})"
        ) from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS))
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--save", type=Path)
    args = parser.parse_args(argv)
    settings = [parse_setting(s) for s in args.settings]  # every error before any sampling
    for path in args.checkpoints:
        if not path.is_file():
            raise SystemExit(f"no checkpoint {path}")
    torch.set_num_threads(1)
    print(machine_line())
    print("checkpoint | steps | guidance | px | rule | " + " | ".join(SHOWN) + " | CPU s")
    indices = range(FIRST_SEED, FIRST_SEED + args.images)
    labels = np.array([i % 10 for i in indices])
    for path in args.checkpoints:
        module = DiffusionModule.load_from_checkpoint(path, map_location="cpu").eval()
        for (steps, guidance, resolution, rule), text in zip(settings, args.settings, strict=True):
            started = time.process_time()
            images = sample_chunk(
                module, indices, resolution=resolution, rule=rule, seed=0,
                steps=steps, cfg_scale=guidance, method="heun",
            )  # fmt: skip
            images = images.permute(0, 2, 3, 1).numpy()
            cpu_s = time.process_time() - started
            summary = summarize(measure_objects(images), labels)
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                np.save(args.save / f"{path.stem}_{text.replace(':', '_')}.npy", images)
            shown = " | ".join(f"{summary[k]:.2f}" for k in SHOWN)
            row = f"{path} | {steps} | {guidance:g} | {resolution} | {rule.label}"
            print(f"{row} | {shown} | {cpu_s:.0f}")


if __name__ == "__main__":
    main()
