"""GPU throughput and model FLOP utilisation of DiT-XL/2 at 256 and 512 px (bf16 by default).

    python -m bench.gpu.throughput [--model DiT-XL/2] [--resolutions 256 512] [--batch-sizes 32 16]
        [--encoders sincos rope rpe2d] [--compile] [--probe-sdpa] [--json FILE]

Needs CUDA: without a GPU it says so and exits 0 (1 with ``--json``, inside the GPU check).
``--device cpu --dtype fp32`` runs the same code on the CPU (a smoke test of the script with a
small ``--model``; no MFU there).

Measured on the real ``DiffusionModule`` built directly on the device, with SD-VAE latents
(8x down, 4 channels; the batch holds precomputed latents, so the VAE is never run): a training
step (``training_step`` under bf16 autocast as Lightning's ``bf16-mixed`` runs it, backward,
the NaN check, gradient clipping at 1.0 as in experiments/base/trainer.yaml, the module's fused
AdamW, EMA: ``training_step_fn``) and a sampling step
(one velocity evaluation of the EMA model with the model's inference rule, no autograd).
Images/s come from ``--iters`` back-to-back steps between two synchronisations, after
``--warmup`` steps (which include compilation with ``--compile``). Encoders: ``sincos`` and
``rope`` on the plain grid, ``rpe2d`` = rope with RPE-2D's random positions (max_len 64) and
micro-conditioning, as experiments/base/rpe2d.yaml.

``--compile`` sets ``net.compile``: the module compiles every block of the trained net and of
the EMA copy, which the sampling rows run. The attention
column is the SDPA backend the step really dispatched to
(``bench.gpu.sdpa_backends.observed_backends``);
``--probe-sdpa`` adds a table of which backends accept DiT's attention shapes and their speed.

FLOPs are counted analytically as 2 x multiply-adds: patch embedding, per block the adaLN
projection, qkv, the attention matrices (QK^T and AV, 2 N^2 D), the output projection and the
MLP, then the final layer; a training step counts 3x the forward (backward = 2x forward; the
recomputation of activation checkpointing is not counted). MFU = achieved FLOP/s / the GPU's
dense bf16 peak of its variant (``bench.gpu.peaks``: name and memory; or ``--peak-tflops``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import time
import warnings
from collections.abc import Callable

import torch

from bench.common.timing import timed
from bench.gpu.check_results import StageReport, render_table
from bench.gpu.peaks import GpuPeak, gpu_peak
from bench.gpu.sdpa_backends import observed_backends, probe_backends
from lit_rpe.models.sizes import parse_model_name
from lit_rpe.resolution import LATENT_CHANNELS, LATENT_FACTOR
from lit_rpe.training.config import NetConfig
from lit_rpe.training.module import DiffusionModule

# Positional-encoding strategies as the experiments configure them (experiments/base/*.yaml).
ENCODERS: dict[str, dict] = {
    "sincos": dict(encoder="sincos", train_positions="grid"),
    "rope": dict(encoder="rope", train_positions="grid"),
    "rpe2d": dict(encoder="rope", train_positions="rpe2d", max_len=64, micro_conditioning=True),
}
# A vae_path makes the module work in SD-VAE latent space; latents are fed directly, so the
# VAE is never loaded (DiffusionModule.encode passes 4-channel inputs through).
LATENTS_ONLY = "(latents are fed directly; no VAE is loaded)"


def device_peak(device: str) -> GpuPeak | None:
    """The variant and peak of the current CUDA device (None on the CPU or an unknown GPU)."""
    if device != "cuda":
        return None
    props = torch.cuda.get_device_properties(0)
    return gpu_peak(props.name, props.total_memory / 2**30)


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


def dit_forward_flops(model: str, resolution: int, latent_factor: int = LATENT_FACTOR) -> float:
    """FLOPs of one forward of a named DiT on one ``resolution``-pixel image in latent space."""
    size = parse_model_name(model)
    side = resolution // latent_factor // size["patch_size"]
    return forward_flops(
        depth=size["depth"],
        hidden=size["hidden_size"],
        patch=size["patch_size"],
        grid=(side, side),
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
    )


def step_flops(mode: str, forward: float, batch: int) -> float:
    """FLOPs of one ``train`` step (3 forwards: the backward costs two) or ``sample`` step (one
    forward) on ``batch`` images, given the FLOPs of one forward on one image."""
    if mode not in ("train", "sample"):
        raise ValueError(f"unknown step {mode!r}; valid: train, sample")
    return (3 if mode == "train" else 1) * forward * batch


def utilisation(flops: float, seconds: float, peak: float | None) -> float | None:
    """Model FLOP utilisation: ``flops / seconds`` over the peak in TFLOP/s (None if unknown)."""
    return flops / seconds / (peak * 1e12) if peak else None


def precision_context(device: str, dtype: str):
    """bf16 autocast (what Lightning's ``bf16-mixed`` does), or plain fp32."""
    if dtype == "bf16":
        return torch.autocast(device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def build_module(
    model: str,
    resolution: int,
    encoder: str,
    *,
    device: str,
    checkpointing: bool = False,
    compile: bool = False,
    vae_path: str | None = None,
) -> DiffusionModule:
    """The training module of one configuration, built on ``device`` (no host-side init)."""
    torch.manual_seed(0)
    net = NetConfig(name=model, checkpointing=checkpointing, compile=compile, **ENCODERS[encoder])
    with torch.device(device):
        module = DiffusionModule(
            net=net,
            resolution=resolution,
            num_classes=1000,
            vae_path=vae_path or LATENTS_ONLY,
        )  # the NaN check at its default (every step), as lit-rpe fit runs it
    # Lightning tracks the module's device through .to(); the tensors are already there.
    return module.to(device)


def random_batch(batch_size: int, resolution: int, device: str) -> dict[str, torch.Tensor]:
    """A batch of precomputed-latent shape: ``image`` (B, 4, R/8, R/8), ``label`` (B,)."""
    gen = torch.Generator().manual_seed(0)
    side = resolution // LATENT_FACTOR
    return {
        "image": torch.randn(batch_size, LATENT_CHANNELS, side, side, generator=gen).to(device),
        "label": torch.randint(0, 1000, (batch_size,), generator=gen).to(device),
    }


def training_step_fn(module: DiffusionModule, batch: dict, dtype: str) -> Callable[[], None]:
    """One optimizer step as ``lit-rpe fit`` runs it, through the module's own hooks: autocast
    forward, backward, the NaN check (one host read), clipping at 1.0, the fused AdamW, EMA.
    What Lightning adds around it (its loop, logging, the progress bar's read of the loss) is
    what the Lightning stage's comparison with this step measures."""
    optimizer = module.configure_optimizers()["optimizer"]
    device = batch["image"].device.type

    def step() -> None:
        with precision_context(device, dtype):
            loss = module.training_step(batch, 0)
        loss.backward()
        module.on_before_optimizer_step(optimizer)
        module.configure_gradient_clipping(optimizer, 1.0, "norm")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        module.update_ema()

    return step


def sampling_step_fn(module: DiffusionModule, batch: dict, dtype: str) -> Callable[[], None]:
    """One velocity evaluation of the EMA model at t = 0.5 with the model's inference rule."""
    device = batch["image"].device.type
    rule = module.default_rule()
    t = torch.full((batch["image"].shape[0],), 0.5, device=batch["image"].device)

    @torch.no_grad()
    def step() -> None:
        with precision_context(device, dtype):
            module.ema(batch["image"], t, batch["label"], rule=rule, rule_t=0.5)

    return step


def release(device: str, compiled: bool) -> None:
    """Free what the last configuration left: its memory and, if compiled, dynamo's caches
    (so the next shapes compile afresh instead of as dynamic-shape graphs)."""
    gc.collect()
    if compiled:
        torch._dynamo.reset()
    if device == "cuda":
        torch.cuda.empty_cache()


def peak_gib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


THROUGHPUT_COLUMNS = [
    ("mode", "step"),
    ("px", "px"),
    ("tokens", "tokens"),
    ("encoder", "encoder"),
    ("compile", "compile"),
    ("batch", "batch"),
    ("images_per_s", "images/s"),
    ("step_ms", "ms / step"),
    ("gflop_per_image", "fwd GFLOP / image"),
    ("tflops", "TFLOP/s"),
    ("mfu_pct", "MFU %"),
    ("peak_gib", "peak GiB"),
    ("attention", "SDPA kernel"),
    ("status", "status"),
]
SDPA_COLUMNS = [
    ("px", "px"),
    ("shape", "q, k, v (B, heads, N, head dim)"),
    ("flash", "flash"),
    ("cudnn", "cudnn"),
    ("efficient", "efficient"),
    ("math", "math"),
]


def measure_configuration(args, report, table, resolution, batch_size, encoder, peak) -> None:
    """Build one (resolution, encoder) module and add one row per mode to ``table``."""
    tokens = (resolution // LATENT_FACTOR // parse_model_name(args.model)["patch_size"]) ** 2
    flops = dit_forward_flops(args.model, resolution)
    base = dict(px=resolution, tokens=tokens, encoder=encoder, compile=args.compile)
    base.update(batch=batch_size, gflop_per_image=flops / 1e9)
    module = steps = batch = None
    done: list[str] = []
    try:
        module = build_module(
            args.model,
            resolution,
            encoder,
            device=args.device,
            checkpointing=args.checkpointing,
            compile=args.compile,
        )
        batch = random_batch(batch_size, resolution, args.device)
        steps = {
            "train": training_step_fn(module, batch, args.dtype),
            "sample": sampling_step_fn(module, batch, args.dtype),
        }
        for mode in args.modes:
            row = dict(mode=mode, **base)
            try:
                if args.device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                seconds = timed(steps[mode], args.device, args.warmup, args.iters)
                flops_per_step = step_flops(mode, flops, batch_size)
                mfu = utilisation(flops_per_step, seconds, peak)
                row.update(
                    images_per_s=batch_size / seconds,
                    step_ms=1e3 * seconds,
                    tflops=flops_per_step / seconds / 1e12,
                    mfu=mfu,
                    mfu_pct=None if mfu is None else 100 * mfu,
                    peak_gib=peak_gib(args.device),
                    attention="+".join(observed_backends(steps[mode], args.device)) or "none",
                    status="ok",
                )
            except torch.OutOfMemoryError:
                row.update(status="OOM")
            report.add_row(table, **row)
            done.append(mode)
            print(f"  {mode} {resolution} px {encoder}: {row['status']}", flush=True)
    except Exception as err:  # a configuration that fails to build or run: record, go on
        for mode in args.modes:
            if mode not in done:
                status = f"error: {type(err).__name__}: {err}"
                report.add_row(table, mode=mode, **base, status=status)
        print(f"  {resolution} px {encoder}: {type(err).__name__}: {err}", flush=True)
    finally:
        module = steps = batch = None  # the step closures hold the module too
        release(args.device, args.compile)


def sdpa_table(args, report, resolutions) -> None:
    size = parse_model_name(args.model)
    heads, head_dim = size["num_heads"], size["hidden_size"] // size["num_heads"]
    table = report.table("SDPA backends at DiT attention shapes (forward + backward)", SDPA_COLUMNS)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    for resolution, batch_size in resolutions:
        tokens = (resolution // LATENT_FACTOR // size["patch_size"]) ** 2
        found = probe_backends(
            batch=batch_size,
            heads=heads,
            tokens=tokens,
            head_dim=head_dim,
            dtype=dtype,
            device=args.device,
        )
        # the table says whether and how fast; PyTorch's reasons for refusing go to the JSON
        cells = {name: f"{r['ms']:.3g} ms" if r["ok"] else "refused" for name, r in found.items()}
        shape = f"({batch_size}, {heads}, {tokens}, {head_dim}) {args.dtype}"
        report.add_row(table, px=resolution, shape=shape, **cells)
        report.data.setdefault("sdpa_probe", {})[str(resolution)] = found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="DiT-XL/2")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 512])
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=None, help="per resolution (default: tokens)"
    )
    parser.add_argument("--batch-tokens", type=int, default=16384, help="latent tokens per batch")
    parser.add_argument("--encoders", nargs="+", default=["sincos", "rope", "rpe2d"])
    parser.add_argument("--modes", nargs="+", default=["train", "sample"])
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--compile", action="store_true", help="torch.compile each block")
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--probe-sdpa", action="store_true", help="time each SDPA backend alone")
    parser.add_argument(
        "--budget-s", type=float, default=None, help="seconds: skip the configurations beyond"
    )
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the table")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--json", default=None, help="write the GPU check's stage record here")
    args = parser.parse_args()
    for name in args.encoders:
        if name not in ENCODERS:
            parser.error(f"unknown encoder {name!r}; valid: {', '.join(ENCODERS)}")
    warnings.filterwarnings("ignore")
    stage = "throughput_compiled" if args.compile else "throughput"
    report = StageReport(args.json, stage, vars(args))
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench.gpu.throughput needs a CUDA GPU and none is available here: nothing measured.")
        if args.json:
            report.fail(RuntimeError("no CUDA GPU"))
            raise SystemExit(1)
        return
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    found = device_peak(args.device)
    report.put("gpu_variant", found.variant if found else None)
    peak = args.peak_tflops or (found.tflops if found else None)
    patch = parse_model_name(args.model)["patch_size"]
    batches = args.batch_sizes or [
        max(1, args.batch_tokens // (r // LATENT_FACTOR // patch) ** 2) for r in args.resolutions
    ]
    if len(batches) != len(args.resolutions):
        parser.error("give one --batch-sizes value per resolution")
    report.put("device", name)
    report.put("peak_tflops", peak)
    print(
        f"## {args.model} images/s and MFU ({args.dtype}) on {name}, {args.iters} timed steps "
        f"after {args.warmup}, compile={args.compile}, checkpointing={args.checkpointing}, "
        f"dense bf16 peak {peak or 'unknown'} TFLOP/s",
        flush=True,
    )
    start, longest = time.perf_counter(), 0.0
    table = report.table(f"Throughput of {args.model}, {args.dtype}", THROUGHPUT_COLUMNS)
    if args.probe_sdpa:
        sdpa_table(args, report, list(zip(args.resolutions, batches, strict=True)))
    for resolution, batch_size in zip(args.resolutions, batches, strict=True):
        for encoder in args.encoders:
            # start a configuration only if the slowest one so far would still fit the budget
            began = time.perf_counter()
            if args.budget_s is not None and began - start + longest > args.budget_s:
                for mode in args.modes:
                    report.add_row(
                        table, mode=mode, px=resolution, encoder=encoder, compile=args.compile,
                        batch=batch_size, status="skipped: time budget",
                    )  # fmt: skip
                continue
            measure_configuration(args, report, table, resolution, batch_size, encoder, peak)
            longest = max(longest, time.perf_counter() - began)
    report.note(
        "MFU counts 3x the forward FLOPs per training step and 1x per sampling step "
        f"(2 x multiply-adds, attention included) against {peak or 'an unknown'} TFLOP/s."
    )
    report.finish()
    for table in report.tables:
        print(f"\n{table.title}\n\n{render_table(table)}")


if __name__ == "__main__":
    main()
