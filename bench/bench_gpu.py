"""GPU throughput and model FLOP utilisation of DiT-XL/2 at 256 and 512 px (bf16 by default).

    python bench/bench_gpu.py [--model DiT-XL/2] [--resolutions 256 512] [--compile]

Needs CUDA: without a GPU it says so and exits 0. ``--device cpu`` runs the same code on the CPU
(a smoke test of the script with a small ``--model``; no MFU there).

Measured on the real ``DiffusionModule`` with SD-VAE latents (8x down, 4 channels; the batch
holds precomputed latents, so the VAE is never run): a training step (``training_step`` under
the precision's autocast, backward, AdamW, EMA; ``--precision auto``: bf16 where the GPU
supports it) and a sampling step (one velocity evaluation of the EMA model without autograd).
Images/s come from ``--iters`` back-to-back steps between two synchronisations, after
``--warmup`` steps.

FLOPs are counted analytically as 2 x multiply-adds: patch embedding, per block the adaLN
projection, qkv, the attention matrices (QK^T and AV, 2 N^2 D), the output projection and the
MLP, then the final layer; a training step counts 3x the forward (backward = 2x forward; the
recomputation of activation checkpointing is not counted). MFU = achieved FLOP/s / the GPU's
dense bf16 peak, from a table keyed by ``torch.cuda.get_device_name`` (or ``--peak-tflops``).
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
from bench_utils import (
    add_precision_option,
    machine_line,
    markdown_table,
    resolve_bench_precision,
)

from lit_rpe.config import NetConfig
from lit_rpe.models.sizes import parse_model_name
from lit_rpe.module import DiffusionModule

# Dense bf16 tensor-core peak in TFLOP/s, first match of the device name wins.
PEAK_BF16_TFLOPS = [
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),  # SXM5 ("NVIDIA H100 80GB HBM3")
    ("H200", 989.4),  # also GH200
    ("H20", 148.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.1),
    ("A10G", 70.0),
    ("L4", 121.0),
]


def peak_tflops(device_name: str) -> float | None:
    for key, value in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


def forward_flops(
    *,
    depth: int,
    hidden: int,
    patch: int,
    grid: tuple[int, int],
    in_channels: int,
    out_channels: int,
    mlp_ratio: float = 4.0,
    freq_dim: int = 256,
) -> float:
    """FLOPs (2 x multiply-adds) of one DiT forward for one image of ``grid`` tokens."""
    n, d = grid[0] * grid[1], hidden
    patch_in, patch_out = patch * patch * in_channels, patch * patch * out_channels
    macs = n * patch_in * d  # patch embedding
    macs += freq_dim * d + d * d  # timestep MLP (per image)
    per_block = 6 * d * d  # adaLN modulation (per image)
    per_block += n * d * 3 * d + 2 * n * n * d + n * d * d  # qkv, QK^T + AV, proj
    per_block += 2 * n * d * int(d * mlp_ratio)  # MLP
    macs += depth * per_block
    macs += 2 * d * d + n * d * patch_out  # final adaLN + linear
    return 2.0 * macs


def build(model: str, resolution: int, encoder: str, args) -> DiffusionModule:
    torch.manual_seed(0)
    net = NetConfig(
        name=model, encoder=encoder, checkpointing=args.checkpointing, compile=args.compile
    )
    module = DiffusionModule(
        net=net,
        resolution=resolution,
        num_classes=1000,
        vae_path="(latents are precomputed)",  # latent space; never loaded for 4-channel input
        nan_check_every_n_steps=args.nan_check_every,
    )
    return module.to(args.device)


def timed(fn, device: str, warmup: int, iters: int) -> float:
    """Seconds per call of ``fn`` over ``iters`` back-to-back calls (synchronised at the ends)."""

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        fn()
    sync()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - start) / iters


def make_steps(
    module: DiffusionModule, batch_size: int, latent: int, device: str, autocast: torch.dtype | None
) -> dict:
    """The two timed steps on a fixed batch of random latents: ``train`` and ``sample``."""
    optimizer = module.configure_optimizers()["optimizer"]
    gen = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.randn(batch_size, 4, latent, latent, generator=gen).to(device),
        "label": torch.randint(0, 1000, (batch_size,), generator=gen).to(device),
    }
    t = torch.full((batch_size,), 0.5, device=device)

    dtype, enabled = autocast or torch.float32, autocast is not None

    def train() -> None:
        with torch.autocast(device, dtype=dtype, enabled=enabled):
            loss = module.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        module.update_ema()

    @torch.no_grad()
    def sample() -> None:
        with torch.autocast(device, dtype=dtype, enabled=enabled):
            module.ema(batch["image"], t, batch["label"], rule_t=0.5)

    return {"train": train, "sample": sample}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="DiT-XL/2")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--encoders", nargs="+", default=["sincos", "rope"])
    parser.add_argument("--batch-tokens", type=int, default=16384, help="latent tokens per batch")
    parser.add_argument("--modes", nargs="+", default=["train", "sample"])
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--compile", action="store_true", help="torch.compile each block")
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument(
        "--nan-check-every", type=int, default=0, help="module's NaN check interval (1: a sync)"
    )
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the table")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    add_precision_option(parser)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu needs a CUDA GPU and none is available here: nothing measured.")
        return
    if args.device == "cuda":
        name = torch.cuda.get_device_name()
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        device_line = f"{name}, CUDA {torch.version.cuda}; host: {machine_line()}"
    else:
        name = "cpu"
        device_line = machine_line()
    precision = resolve_bench_precision(args, args.device)
    peak = args.peak_tflops or (peak_tflops(name) if args.device == "cuda" else None)

    print(f"## GPU: DiT images/s and model FLOP utilisation ({precision.name})\n")
    print(device_line)
    print(
        f"{args.model}, SD-VAE latents (f=8, 4 channels), {args.batch_tokens} latent tokens per "
        f"batch, warm-up {args.warmup}, {args.iters} timed steps, compile={args.compile}, "
        f"checkpointing={args.checkpointing}, NaN check every {args.nan_check_every} steps, "
        f"bf16 dense peak {peak if peak else 'unknown'} TFLOP/s"
    )
    size = parse_model_name(args.model)
    rows = []
    for resolution in args.resolutions:
        latent = resolution // 8
        grid = (latent // size["patch_size"],) * 2
        tokens = grid[0] * grid[1]
        batch_size = max(1, args.batch_tokens // tokens)
        flops = forward_flops(
            depth=size["depth"],
            hidden=size["hidden_size"],
            patch=size["patch_size"],
            grid=grid,
            in_channels=4,
            out_channels=4,
        )
        for encoder in args.encoders:
            module = build(args.model, resolution, encoder, args)
            steps = make_steps(module, batch_size, latent, args.device, precision.autocast_dtype)
            for mode in args.modes:
                fn = steps[mode]
                if args.device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                seconds = timed(fn, args.device, args.warmup, args.iters)
                step_flops = (3 if mode == "train" else 1) * flops * batch_size
                achieved = step_flops / seconds / 1e12
                memory = (
                    f"{torch.cuda.max_memory_allocated() / 2**30:.1f}"
                    if args.device == "cuda"
                    else "-"
                )
                rows.append(
                    [
                        mode,
                        f"{resolution} ({tokens})",
                        encoder,
                        batch_size,
                        f"{batch_size / seconds:.1f}",
                        f"{flops / 1e9:.4g}",
                        f"{achieved:.3g}",
                        f"{100 * achieved / peak:.1f}%" if peak else "n/a",
                        memory,
                    ]
                )
                print(f"  done: {mode} {resolution} {encoder}", flush=True)
            del module, steps
            if args.device == "cuda":
                torch.cuda.empty_cache()
    header = [
        "step",
        "px (tokens)",
        "encoder",
        "batch",
        "images/s",
        "fwd GFLOP / image",
        "TFLOP/s",
        "MFU",
        "peak GiB",
    ]
    print()
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
