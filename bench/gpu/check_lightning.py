"""Stage 2 of the GPU check: a real training run through ``lit-rpe fit``, resumed, then sampled.

    python -m bench.gpu.check_lightning --work <dir> --json <stages>/lightning.json \
        [--steps 100 --resume-at 50 ...] [lit-rpe options, e.g. --model.net.name=DiT-N/2]

What it runs, as a user would (``python -m lit_rpe``, the experiment file unchanged, overrides on
the command line):
1. writes synthetic latent shards (train + val) and a randomly initialised SD-VAE folder
   (``bench.gpu.check_data``): no ImageNet and no SD-VAE weights are needed;
2. ``fit --config <work>/rpe2d_256_check.yaml`` (DiT-XL/2, bf16-mixed, EMA, the real data module
   on the latent shards) up to ``--resume-at`` steps; the experiment's ModelCheckpoint writes
   ``last.ckpt`` at the end and its SampleGridCallback draws grids at 256 and 512 px. That file
   is experiments/rpe2d_256.yaml composed, less its ResolutionEvalCallback (``check_experiment``:
   8 cells x 5,120 images need 5,120 validation images and an hour; the eval_cell stage
   measures one cell);
3. the same command with ``--trainer.max_steps=<steps>``: the CLI resumes from ``last.ckpt`` by
   itself (weights, EMA, optimizer, data stream position) and trains to ``--steps``;
4. ``sample --resolution 512``: the ``lit-rpe sample`` subcommand on the final checkpoint.

An epoch is ``--steps`` steps long: the first fit stops mid-epoch, the resumed one continues the
epoch's data stream where it stopped and ends with the experiment's validation. ``FitMeter``
(bench/gpu/check_callback.py, appended with ``--trainer.callbacks+=``) logs images/s after warm-up
and the peak memory of each fit. The sample grids are decoded by the random VAE: they cost what real
decoding costs, and show noise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from bench.common.tables import format_cell
from bench.gpu.check_data import write_latent_shards, write_random_vae
from bench.gpu.check_results import StageReport
from lit_rpe.training.experiments import compose

REPO = Path(__file__).resolve().parents[2]
EVAL_CALLBACK = "ResolutionEvalCallback"
FIT_COLUMNS = [
    ("run", "run"),
    ("steps", "steps"),
    ("batch", "batch"),
    ("images_per_s", "images/s after warm-up"),
    ("median_step_ms", "median ms / step"),
    ("peak_gib", "peak GiB"),
    ("peak_reserved_gib", "reserved GiB"),
    ("loss_first", "first loss"),
    ("loss_last", "last loss"),
    ("train_s", "training s"),
    ("after_training_s", "checkpoint + grids s"),
    ("wall_s", "process s"),
]


def check_experiment(experiment: str | Path, out: Path) -> Path:
    """Write ``experiment`` composed (its bases merged) without its ResolutionEvalCallback to
    ``out``; everything else, interpolations included, stays as the experiment has it."""
    config = compose(experiment)
    callbacks = list(config.trainer.get("callbacks") or [])
    kept = [c for c in callbacks if not str(c.get("class_path", "")).endswith(EVAL_CALLBACK)]
    config.trainer.callbacks = kept
    out.parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, out, resolve=False)
    return out


def lit_rpe(command: str, args, extra: list[str]) -> list[str]:
    """A ``python -m lit_rpe`` command line on the check's experiment file, the synthetic data
    and the VAE."""
    data = Path(args.work) / "data"
    return [
        sys.executable,
        "-m",
        "lit_rpe",
        command,
        "--config",
        str(Path(args.work) / "rpe2d_256_check.yaml"),
        f"--trainer.default_root_dir={Path(args.work) / 'run'}",
        f"--data.train_shards={data / 'train'}",
        f"--data.val_shards={data / 'val'}",
        "--data.precomputed_latents=true",
        f"--data.batch_size={args.batch_size}",
        f"--data.samples_per_epoch={args.batch_size * args.steps}",
        f"--data.val_samples={args.val_samples}",
        f"--data.resolution={args.resolution}",
        f"--model.vae_path={data / 'vae'}",
        f"--model.sampling.steps={args.sampling_steps}",
        *args.override,
        *extra,
    ]


def run_logged(cmd: list[str], log: Path, timeout: float) -> float:
    """Run ``cmd`` from the repository root with its output appended to ``log``; returns its
    wall seconds; raises RuntimeError with the log's tail when it fails."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    start = time.perf_counter()
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        done = subprocess.run(
            cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
        )
    if done.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-25:]
        raise RuntimeError(f"{cmd[3]} exited {done.returncode}:\n" + "\n".join(tail))
    return time.perf_counter() - start


def fit_row(name: str, meter: dict, wall: float) -> dict:
    return dict(
        run=name,
        steps=f"{meter['start_step']}-{meter['end_step']}",
        batch=meter["batch_size"],
        images_per_s=meter["images_per_s"],
        median_step_ms=meter["median_step_ms"],
        peak_gib=meter["peak_gib"],
        peak_reserved_gib=meter["peak_reserved_gib"],
        loss_first=meter["loss_first"],
        loss_last=meter["loss_last"],
        train_s=meter["train_s"],
        after_training_s=meter["after_training_s"],
        wall_s=wall,
    )


def combined_rate(meters: list[dict]) -> float | None:
    """Images/s over the measured windows of all fits together (images / seconds)."""
    parts = [(m["measured_steps"] * m["batch_size"], m["images_per_s"]) for m in meters]
    parts = [(images, rate) for images, rate in parts if rate]
    if not parts:
        return None
    return sum(i for i, _ in parts) / sum(i / r for i, r in parts)


def run_stage(args, report: StageReport) -> None:
    work = Path(args.work)
    log, fits = work / "lightning.log", work / "fits"
    # A run folder left by an earlier check would be resumed by the first fit: start afresh
    # (the data and the VAE folder are reused as they are).
    for stale in (work / "run", work / "samples", fits):
        shutil.rmtree(stale, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def left() -> float:
        return args.budget_s - (time.perf_counter() - start)

    write_latent_shards(
        work / "data/train", num_samples=args.train_samples, resolution=args.resolution
    )
    write_latent_shards(
        work / "data/val", num_samples=args.val_samples, resolution=args.resolution, seed=1
    )
    write_random_vae(work / "data/vae", args.vae)
    check_experiment(args.experiment, work / "rpe2d_256_check.yaml")
    report.put("data_s", time.perf_counter() - start)
    report.put("px", args.resolution)
    report.put("batch", args.batch_size)
    meter = [
        "--trainer.callbacks+=bench.gpu.check_callback.FitMeter",
        f"--trainer.callbacks.init_args.out_dir={fits}",
        f"--trainer.callbacks.init_args.warmup_steps={args.warmup}",
    ]
    table = report.table("Lightning fit of rpe2d_256 on synthetic latents", FIT_COLUMNS)
    meters = []
    for name, steps in (("fit (fresh)", args.resume_at), ("fit (resumed)", args.steps)):
        cmd = lit_rpe("fit", args, [f"--trainer.max_steps={steps}", *meter])
        wall = run_logged(cmd, log, timeout=max(30.0, left()))
        first = meters[-1]["end_step"] if meters else 0
        meters.append(json.loads((fits / f"fit_from{first:07d}.json").read_text()))
        report.add_row(table, **fit_row(name, meters[-1], wall))
    resumed = meters[1]["start_step"]
    if resumed != args.resume_at:
        raise RuntimeError(f"the second fit started at step {resumed}, not {args.resume_at}")
    ckpt = work / "run/checkpoints/last.ckpt"
    report.put("resumed_from_step", resumed)
    report.put("checkpoint_gib", ckpt.stat().st_size / 2**30)
    report.put("images_per_s", combined_rate(meters))
    report.put("peak_gib", max((m["peak_gib"] or 0.0) for m in meters) or None)
    report.put("fits", meters)
    grids = sorted(str(p.relative_to(work)) for p in (work / "run/samples").glob("*.png"))
    report.put("grids", grids)
    wanted = f"step{args.steps:07d}_{args.sample_resolution}x{args.sample_resolution}.png"
    if not (work / "run/samples" / wanted).is_file():
        raise RuntimeError(f"the fit wrote no {wanted} grid; found {grids}")

    if left() < args.sample_reserve_s:
        report.note(f"`lit-rpe sample` skipped: {left():.0f} s of the stage budget left")
    else:
        px = args.sample_resolution
        cmd = lit_rpe(
            "sample",
            args,
            [
                f"--resolution={px}",
                f"--num_images={args.num_images}",
                f"--out_dir={work / 'samples'}",
            ],
        )
        wall = run_logged(cmd, log, timeout=max(30.0, left()))
        made = sorted(p.name for p in (work / "samples").glob(f"*_{px}x{px}.png"))
        if not made:
            raise RuntimeError(f"lit-rpe sample wrote no {px} px grid in {work / 'samples'}")
        report.put("sample_cli", {"grid": made[0], "wall_s": wall, "images": args.num_images})
        report.add_row(table, run=f"sample {px} px", batch=args.num_images, wall_s=wall)
    report.note(
        f"Synthetic latent shards ({args.train_samples} train, {args.val_samples} val, class "
        "pattern + noise) in precompute_latents' format; the SD-VAE is a randomly initialised "
        f"diffusers AutoencoderKL ({args.vae} architecture): sample grids cost what real "
        "decoding costs and show noise."
    )
    report.note(
        f"Checkpoint last.ckpt {format_cell(report.data['checkpoint_gib'])} GiB (weights, EMA, "
        f"AdamW); the second fit resumed from step {resumed}; grids: {', '.join(grids)}."
    )
    report.note(
        f"Grids and `sample` use Heun-{args.sampling_steps} (--model.sampling.steps) to fit the "
        "stage's cap. SampleGridCallback draws at the end of training on the device, and it and "
        "`lit-rpe sample` sample in the run's precision (bf16-mixed: bf16 autocast)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, help="folder for data, run, checkpoints")
    parser.add_argument("--json", default=None)
    parser.add_argument("--experiment", default="experiments/rpe2d_256.yaml")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--resume-at", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10, help="steps of each fit not timed")
    parser.add_argument("--batch-size", type=int, default=32, help="per GPU (the experiment's)")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--sample-resolution", type=int, default=512)
    parser.add_argument("--num-images", type=int, default=16)
    parser.add_argument(
        "--sampling-steps", type=int, default=8, help="Heun steps of the grids and of `sample`"
    )
    parser.add_argument("--vae", choices=["sd", "tiny"], default="sd")
    parser.add_argument("--train-samples", type=int, default=2048)
    parser.add_argument("--val-samples", type=int, default=64)
    parser.add_argument("--budget-s", type=float, default=165.0)
    parser.add_argument(
        "--sample-reserve-s", type=float, default=40.0, help="skip `sample` with less left"
    )
    # Every other option (--trainer.*, --model.*, --data.*) goes to lit-rpe as it is.
    args, args.override = parser.parse_known_args()
    if not 0 < args.resume_at < args.steps:
        parser.error("need 0 < --resume-at < --steps")
    report = StageReport(args.json, "lightning", vars(args))
    try:
        run_stage(args, report)
    except Exception as err:
        report.fail(err)
        raise
    report.finish()
    print(json.dumps({k: v for k, v in report.data.items() if k != "fits"}, indent=1))


if __name__ == "__main__":
    main()
