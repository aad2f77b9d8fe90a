"""Training-step throughput per positional encoding: sincos, rope and rpe2d, fp32 and/or bf16.

    python -m bench.cpu.train_step [--models DiT-Ti/2 DiT-S/2] [--tokens 64 256 1024]
        [--dtypes fp32 bf16]   (default: auto, the precision this CPU computes natively)

A step is what ``lit-rpe fit`` runs per batch, on the real ``DiffusionModule`` in pixel space
(no VAE): ``training_step`` (label dropout, training positions, t and noise from the step's
generator, DiT forward, flow-matching loss, loss buckets, NaN check) under the precision's
autocast, ``backward``, the AdamW step and the EMA update. The image side is chosen so the patch
grid has the requested number of tokens; the batch keeps ``--tokens-per-batch`` tokens per step.

Variants: ``sincos`` (additive DiT table, grid positions), ``rope`` (axial RoPE, grid) and
``rpe2d`` (axial RoPE, RPE-2D random positions drawn every step). fp32 is plain float32; bf16 is
``torch.autocast(dtype=torch.bfloat16)``, as Lightning's ``bf16-mixed`` precision. All variants
of one (model, tokens) group are timed round-robin and the medians reported, so the ratios are
measured side by side.
"""

from __future__ import annotations

import argparse
import math
import warnings

import torch

from bench.common.machine import machine_line, resolve_dtype_list
from bench.common.tables import fmt3, markdown_table
from bench.common.timing import (
    CLOCKS,
    add_timing_options,
    interleaved_medians,
    median,
    pm,
    set_threads,
)
from lit_rpe.models.sizes import parse_model_name
from lit_rpe.training.config import NetConfig, OptimConfig
from lit_rpe.training.module import DiffusionModule

VARIANTS = {"sincos": ("sincos", "grid"), "rope": ("rope", "grid"), "rpe2d": ("rope", "rpe2d")}


def build(model: str, variant: str, resolution: int, args) -> tuple[DiffusionModule, object]:
    encoder, positions = VARIANTS[variant]
    torch.manual_seed(0)
    net = NetConfig(
        name=model,
        encoder=encoder,
        train_positions=positions,
        micro_conditioning=args.micro_conditioning and positions == "rpe2d",
        checkpointing=args.checkpointing,
        compile=args.compile,
    )
    module = DiffusionModule(
        net=net, resolution=resolution, num_classes=1000, optim=OptimConfig(lr=1e-4)
    )
    optimizer = module.configure_optimizers()["optimizer"]
    return module, optimizer


def make_step(module: DiffusionModule, optimizer, batch: dict, bf16: bool):
    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = module.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        module.update_ema()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["DiT-Ti/2", "DiT-S/2"])
    parser.add_argument("--tokens", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--tokens-per-batch", type=int, default=2048)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument(
        "--dtypes",
        nargs="+",
        default=["auto"],
        choices=["auto", "fp32", "bf16"],
        help="auto: what this CPU computes natively (bf16 with avx512_bf16 or AMX, else fp32)",
    )
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--micro-conditioning", action="store_true", help="rpe2d with micro-cond.")
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile each block")
    add_timing_options(parser)
    args = parser.parse_args()
    set_threads(args)
    args.dtypes = resolve_dtype_list(args.dtypes)
    warnings.filterwarnings("ignore")  # self.log without a Trainer warns once per variant

    print("## Training step: images/s (forward + backward + AdamW + EMA)\n")
    print(machine_line())
    print(f"precision: {', '.join(args.dtypes)} (--dtypes; auto resolved on this CPU)")
    print(
        f"pixel space (3 channels, no VAE), 1000 classes, AdamW lr 1e-4, "
        f"{args.tokens_per_batch} tokens per batch, warm-up {args.warmup}, "
        f"{args.repeats} interleaved repeats (median; +- is half the IQR), {args.clock} clock, "
        f"checkpointing={args.checkpointing}, compile={args.compile}, "
        f"rpe2d micro-conditioning={args.micro_conditioning}"
    )
    rows, speedups = [], []
    for model in args.models:
        patch = parse_model_name(model)["patch_size"]
        for tokens in args.tokens:
            side = math.isqrt(tokens)
            if side * side != tokens:
                raise SystemExit(f"--tokens must be squares, got {tokens}")
            resolution, batch_size = side * patch, max(1, args.tokens_per_batch // tokens)
            gen = torch.Generator().manual_seed(0)
            batch = {
                "image": torch.rand(batch_size, 3, resolution, resolution, generator=gen) * 2 - 1,
                "label": torch.randint(0, 1000, (batch_size,), generator=gen),
            }
            built = {v: build(model, v, resolution, args) for v in args.variants}
            steps = {
                (v, dt): make_step(*built[v], batch, dt == "bf16")
                for v in args.variants
                for dt in args.dtypes
            }
            times = interleaved_medians(
                steps, warmup=args.warmup, repeats=args.repeats, clock=CLOCKS[args.clock]
            )
            ips = {key: batch_size / median(t) for key, t in times.items()}
            for dt in args.dtypes:
                row = [model, tokens, batch_size, dt]
                base = ips.get(("sincos", dt))
                for v in args.variants:
                    row.append(f"{fmt3(ips[v, dt])}{pm(times[v, dt])}")
                    if v != "sincos" and base:
                        row.append(f"{ips[v, dt] / base:.3f}")
                rows.append(row)
            if {"fp32", "bf16"} <= set(args.dtypes):
                for v in args.variants:
                    fp32, bf16 = ips[v, "fp32"], ips[v, "bf16"]
                    speedups.append([model, tokens, v, fmt3(fp32), fmt3(bf16)])
                    speedups[-1].append(f"{bf16 / fp32:.2f}x")
            print(f"  done: {model} at {tokens} tokens", flush=True)
    header = ["model", "tokens", "batch", "dtype"]
    for v in args.variants:
        header.append(f"{v} img/s")
        if v != "sincos" and "sincos" in args.variants:
            header.append(f"{v} / sincos")
    print()
    print(markdown_table(header, rows))
    if speedups:
        print("\n### bf16 autocast against fp32\n")
        header = ["model", "tokens", "variant", "fp32 img/s", "bf16 img/s", "bf16 / fp32"]
        print(markdown_table(header, speedups))


if __name__ == "__main__":
    main()
