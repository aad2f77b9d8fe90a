"""Stage 4 of the GPU check: the cost of one eval-grid cell on the GPU.

    python -m bench.gpu.check_eval_cell --vae <AutoencoderKL folder> --json <stages>/eval_cell.json

Generation: ``lit_rpe.eval.generation.generate_to_folder`` (what ``lit_rpe.eval.grid.run`` runs for
a cell: ``DiffusionModule.sample`` with the EMA weights, the VAE decode and the PNG files) under
bf16 autocast as the grid's ``precision: bf16``, for DiT-XL/2 trained at 256 px with rpe2d
(random weights: the cost does not depend on them), Heun with 50 steps (99 evaluations) and
classifier-free guidance (every evaluation on a doubled batch), at 256 and 512 px with the
model's rule (rpe2d_even), one batch per resolution (``--batches``, 32 and 16 images: the
cost per image hardly depends on the batch at these sizes). A warm-up batch of 2 steps comes
first. The VAE decode is also
timed alone; the DiT's TFLOP/s and MFU use the generation time less the decode time.
Inception: ``lit_rpe.eval.metrics.references.image_features`` (the grid's batches of 50) through
``FIDInceptionV3`` with randomly initialised weights (timing only), on uint8 images of each
resolution (resized to 299 px inside). A FID-10K cell then costs about
10000 / generation images/s + 10000 / Inception images/s (its reference statistics are cached).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch

from bench.common.timing import timed
from bench.gpu.check_data import write_random_vae
from bench.gpu.check_results import StageReport, render_table
from bench.gpu.throughput import (
    build_module,
    device_peak,
    dit_forward_flops,
    precision_context,
    utilisation,
)
from lit_rpe.eval.generation import generate_to_folder
from lit_rpe.eval.metrics.inception import FIDInceptionV3, InceptionV3Layers
from lit_rpe.eval.metrics.references import image_features
from lit_rpe.resolution import LATENT_CHANNELS, LATENT_FACTOR

GENERATION_COLUMNS = [
    ("px", "px"),
    ("images", "images"),
    ("sampler", "sampler"),
    ("images_per_s", "images/s (DiT + decode + PNG)"),
    ("decode_images_per_s", "VAE decode images/s"),
    ("dit_tflops", "DiT TFLOP/s"),
    ("mfu_pct", "DiT MFU %"),
    ("peak_gib", "peak GiB"),
    ("cell_10k_min", "10k images, min"),
]
INCEPTION_COLUMNS = [
    ("px", "input px"),
    ("images", "images"),
    ("batch", "batch"),
    ("images_per_s", "images/s"),
    ("cell_10k_min", "10k images, min"),
]


def heun_evaluations(steps: int) -> int:
    """Network evaluations of the Heun sampler: 2 per step, the last step onto t = 0 is Euler."""
    return 2 * steps - 1


def generation_row(module, args, px: int, batch: int, scratch: Path, peak: float | None) -> dict:
    common = dict(resolution=px, batch_size=batch, cfg_scale=args.cfg_scale, method="heun")
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with precision_context(args.device, args.dtype):
        generate_to_folder(
            module, scratch / "warmup", num_images=batch, steps=2, skip_existing=False,
            **common,
        )  # fmt: skip
        seconds = timed(
            lambda: generate_to_folder(
                module, scratch / f"cell{px}", num_images=batch, steps=args.steps,
                skip_existing=False, **common,
            ),
            args.device,
        )  # fmt: skip
        side = px // LATENT_FACTOR
        latents = torch.randn(batch, LATENT_CHANNELS, side, side, device=args.device)
        decode_s = timed(lambda: module.decode(latents), args.device)
    evaluations = heun_evaluations(args.steps) * (2 if args.cfg_scale != 1.0 else 1)
    flops = evaluations * dit_forward_flops(args.model, px) * batch
    dit_s = max(seconds - decode_s, 1e-9)
    mfu = utilisation(flops, dit_s, peak)
    images_per_s = batch / seconds
    return dict(
        px=px,
        images=batch,
        sampler=f"heun-{args.steps}, CFG {args.cfg_scale}",
        images_per_s=images_per_s,
        decode_images_per_s=batch / decode_s,
        dit_tflops=flops / dit_s / 1e12,
        mfu_pct=None if mfu is None else 100 * mfu,
        peak_gib=torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else None,
        cell_10k_min=10000 / images_per_s / 60,
    )


def inception_row(inception, args, px: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.inception_images, 3, px, px), generator=gen)
    images = images.to(torch.uint8)
    image_features(inception, images[: args.inception_batch])  # warm-up
    seconds = timed(
        lambda: image_features(inception, images, batch_size=args.inception_batch), args.device
    )
    rate = args.inception_images / seconds
    return dict(
        px=px,
        images=args.inception_images,
        batch=args.inception_batch,
        images_per_s=rate,
        cell_10k_min=10000 / rate / 60,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="DiT-XL/2")
    parser.add_argument("--train-px", type=int, default=256, help="the model's training px")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 512])
    parser.add_argument(
        "--batches", type=int, nargs="+", default=[32, 16], help="images (one batch) per resolution"
    )
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--cfg-scale", type=float, default=1.5)
    parser.add_argument("--inception-images", type=int, default=500)
    parser.add_argument("--inception-batch", type=int, default=50, help="the grid's batch")
    parser.add_argument("--vae", default=None, help="AutoencoderKL folder (default: random SD)")
    parser.add_argument("--vae-size", choices=["sd", "tiny"], default="sd")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if len(args.batches) != len(args.resolutions):
        parser.error("give one --batches value per resolution")
    report = StageReport(args.json, "eval_cell", vars(args))
    if args.device == "cuda" and not torch.cuda.is_available():
        report.fail(RuntimeError("no CUDA GPU"))
        raise SystemExit(1)
    scratch = Path(tempfile.mkdtemp(prefix="gpu_check_cell_"))
    try:
        vae = args.vae
        if vae is None or not (Path(vae) / "config.json").is_file():
            vae = str(write_random_vae(scratch / "vae", args.vae_size))
            report.note(f"no VAE folder given: a random {args.vae_size} AutoencoderKL was made")
        found = device_peak(args.device)
        peak = found.tflops if found else None
        module = build_module(args.model, args.train_px, "rpe2d", device=args.device, vae_path=vae)
        module.eval()
        gen_table = report.table(
            f"Generation of {args.model} (rpe2d, trained at {args.train_px} px), {args.dtype}",
            GENERATION_COLUMNS,
        )
        for px, batch in zip(args.resolutions, args.batches, strict=True):
            report.add_row(gen_table, **generation_row(module, args, px, batch, scratch, peak))
            print(f"  generation {px} px done", flush=True)
        del module
        inception = FIDInceptionV3(InceptionV3Layers().state_dict()).to(args.device)
        inc_table = report.table("FID Inception features (random weights, fp32)", INCEPTION_COLUMNS)
        for px in args.resolutions:
            report.add_row(inc_table, **inception_row(inception, args, px))
            print(f"  inception {px} px done", flush=True)
    except Exception as err:
        report.fail(err)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report.note(
        f"Heun-{args.steps} = {heun_evaluations(args.steps)} evaluations, each on 2x the batch "
        "with CFG; the shipped grids (experiments/grid_*.yaml) use cfg_scale 1.0, which halves "
        "the DiT's share."
    )
    report.finish()
    for table in report.tables:
        print(f"\n{table.title}\n\n{render_table(table)}")


if __name__ == "__main__":
    main()
