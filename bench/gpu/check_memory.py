"""Stage 3 of the GPU check: peak memory of DiT-XL/2 training and sampling steps up to 1024 px.

    python -m bench.gpu.check_memory --json <stages>/memory.json \\
        [--train 512:32 1024:32 1024:8] [--sample 1024:32] [--vae <AutoencoderKL folder>]

Training rows: two optimizer steps (``bench.gpu.throughput.training_step_fn``: bf16 autocast,
backward, clipping, AdamW, EMA) of an rpe2d model trained at that resolution, with and without
activation checkpointing (``net.checkpointing``). ``state`` is what stays allocated after a step
(weights, EMA, AdamW moments); ``peak - state`` per image is the activation memory a larger batch
adds.
Sampling rows: one classifier-free-guided velocity evaluation (the batch doubled, as every
step of the eval grid's Heun sampler) of the rpe2d_256 model at that resolution with its rule
(rpe2d_even), and, given ``--vae``, the SD-VAE decode of that batch under bf16 autocast as the
eval grid runs it. The default batch 32 is the experiments' per-GPU batch (256 over 8 GPUs).
A configuration that does not fit is reported as OOM.
"""

from __future__ import annotations

import argparse
import time

import torch

from bench.common.timing import sync
from bench.gpu.check_results import StageReport, render_table
from bench.gpu.throughput import (
    build_module,
    precision_context,
    random_batch,
    release,
    training_step_fn,
)
from lit_rpe.resolution import LATENT_CHANNELS, LATENT_FACTOR
from lit_rpe.sampling.guidance import guided_velocity

COLUMNS = [
    ("step", "step"),
    ("px", "px"),
    ("tokens", "tokens"),
    ("batch", "batch"),
    ("checkpointing", "activation checkpointing"),
    ("peak_gib", "peak GiB"),
    ("reserved_gib", "reserved GiB"),
    ("state_gib", "state GiB"),
    ("per_image_gib", "(peak - state) / image GiB"),
    ("seconds", "s / step"),
    ("status", "status"),
]


def parse_spec(text: str) -> tuple[int, int]:
    """``"1024:32"`` -> (1024 px, batch 32)."""
    px, _, batch = text.partition(":")
    return int(px), int(batch)


def measured(fn, device: str, repeats: int) -> dict:
    """Peak and remaining allocation (GiB) over ``repeats`` calls of ``fn``, and s per call."""
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    seconds = (time.perf_counter() - start) / repeats
    if device != "cuda":
        return {"seconds": seconds}
    return {
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
        "reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
        "state_gib": torch.cuda.memory_allocated() / 2**30,
        "seconds": seconds,
    }


def tokens_of(px: int, patch: int = 2) -> int:
    return (px // LATENT_FACTOR // patch) ** 2


def run_row(report, table, row: dict, fn_factory, args) -> None:
    """Measure one row; OOM and other failures become the row's status."""
    try:
        result = measured(fn_factory(), args.device, args.repeats)
        if result.get("peak_gib") is not None:
            per_image = (result["peak_gib"] - result["state_gib"]) / row["batch"]
            result["per_image_gib"] = per_image
        row.update(result, status="ok")
    except torch.OutOfMemoryError:
        row.update(status="OOM")
    except Exception as err:
        row.update(status=f"error: {type(err).__name__}: {err}")
    report.add_row(table, **row)
    print(f"  {row['step']} {row['px']} px batch {row['batch']}: {row['status']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="DiT-XL/2")
    parser.add_argument("--train", nargs="+", default=["512:32", "1024:32", "1024:8"])
    parser.add_argument("--sample", nargs="+", default=["1024:32"])
    parser.add_argument("--sample-train-px", type=int, default=256, help="the sampled model's")
    parser.add_argument("--cfg-scale", type=float, default=1.5)
    parser.add_argument("--vae", default=None, help="AutoencoderKL folder: add the decode row")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    report = StageReport(args.json, "memory", vars(args))
    if args.device == "cuda" and not torch.cuda.is_available():
        report.fail(RuntimeError("no CUDA GPU"))
        raise SystemExit(1)
    table = report.table(f"Peak memory of {args.model} (rpe2d, {args.dtype})", COLUMNS)
    for spec in args.train:
        px, batch = parse_spec(spec)
        for checkpointing in (False, True):
            row = dict(step="train", px=px, tokens=tokens_of(px), batch=batch)
            row["checkpointing"] = checkpointing
            holder: dict = {}

            def factory(px=px, batch=batch, checkpointing=checkpointing, holder=holder):
                module = build_module(
                    args.model, px, "rpe2d", device=args.device, checkpointing=checkpointing
                )
                holder["module"] = module
                return training_step_fn(module, random_batch(batch, px, args.device), args.dtype)

            run_row(report, table, row, factory, args)
            holder.clear()
            release(args.device, compiled=False)

    module = build_module(
        args.model, args.sample_train_px, "rpe2d", device=args.device, vae_path=args.vae
    )
    rule = module.default_rule()
    for spec in args.sample:
        px, batch = parse_spec(spec)
        side = px // LATENT_FACTOR
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(batch, LATENT_CHANNELS, side, side, generator=gen).to(args.device)
        labels = torch.arange(batch, device=args.device) % 1000

        def velocity_step(px=px, batch=batch, x=x, labels=labels):
            grid = module.check_resolution(px, rule)
            pos_h, pos_w = module.ema.rule_positions(rule, batch, grid, device=args.device)
            v = guided_velocity(
                module.ema, labels, num_classes=1000, cfg_scale=args.cfg_scale, rule=rule,
                pos_h=pos_h, pos_w=pos_w,
            )  # fmt: skip

            @torch.no_grad()
            def step():
                with precision_context(args.device, args.dtype):
                    v(x, 0.5)

            return step

        row = dict(step=f"sample (CFG {args.cfg_scale})", px=px, tokens=tokens_of(px))
        run_row(report, table, dict(row, batch=batch, checkpointing=False), velocity_step, args)
        if args.vae:

            def decode_step(x=x):
                @torch.no_grad()
                def step():
                    with precision_context(args.device, args.dtype):
                        module.decode(x)

                return step

            row = dict(step="VAE decode", px=px, tokens=None, batch=batch, checkpointing=False)
            run_row(report, table, row, decode_step, args)
        release(args.device, compiled=False)
    report.note(
        "state = memory still allocated after a step (weights, EMA, AdamW moments for training; "
        "weights and EMA for sampling); (peak - state) / image ~ activation memory per image."
    )
    report.finish()
    print(f"\n{table.title}\n\n{render_table(table)}")


if __name__ == "__main__":
    main()
