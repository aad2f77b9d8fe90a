"""``lit-rpe`` (also ``python -m lit_rpe``): LightningCLI with ``fit``, ``validate`` and ``sample``.

    lit-rpe fit --config experiments/demo.yaml [--trainer.max_steps=100]
    lit-rpe sample --config experiments/demo.yaml --resolution 64 --rule rpe2d_even
    lit-rpe sample --config experiments/official_dit_xl2_256.yaml --official dit \
        --ckpt_path pretrained/DiT-XL-2-256x256.pt --resolution 512 --rule dype_yarn
    lit-rpe sample --config experiments/rope_256.yaml --resolution [256,512] \
        --rule "{name: yarn, tau_axes: max, timestep_shift: auto}"

A rule (``--rule``, ``--model.rule``) is a name or a mapping of ``InferenceRule`` fields, add-ons
included (``{name: dype_ntk, lambda_s: 1.5}``), checked when the arguments are parsed.

``fit`` resumes by itself from the newest readable of ``<run dir>/checkpoints/last.ckpt``,
``step*.ckpt`` and ``<run dir>/hpc_ckpt_<n>.ckpt`` (``lit_rpe.training.checkpoints``). A run
stopped by SIGTERM, SIGUSR1 or SIGINT saves a checkpoint and exits with status 75
(``lit_rpe.training.signals``).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Literal

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import Trainer
from lightning.pytorch.accelerators import Accelerator
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn

from lit_rpe.posenc import InferenceRule, parse_rule
from lit_rpe.precision import PrecisionRequest, accelerator_device_type, resolve_precision
from lit_rpe.sampling.sampler import seeds_and_labels
from lit_rpe.training.callbacks.divergence import TrainingDiverged
from lit_rpe.training.checkpoints import (
    AtomicCheckpointIO,
    DamagedCheckpoint,
    NoReadableCheckpoint,
    resume_checkpoint,
    verify_checkpoint,
)
from lit_rpe.training.experiments import expand_config_args
from lit_rpe.training.module import DiffusionModule
from lit_rpe.training.signals import EXIT_INTERRUPTED, StopOnSignal, TrainingInterrupted


def checkpoint_folders(trainer: Trainer) -> tuple[Path, Path]:
    """(the checkpoint folder, the run directory): where a run's checkpoints are."""
    callback = trainer.checkpoint_callback
    folder = Path(callback.dirpath) if callback and callback.dirpath else None
    root = Path(trainer.default_root_dir)
    return folder or root / "checkpoints", root


def last_checkpoint(trainer: Trainer, *, rename: bool = False) -> Path | None:
    """The newest readable checkpoint a previous run of this run directory left, if any.

    Candidates: ``last.ckpt`` and ``step*.ckpt`` of the checkpoint folder and the
    ``hpc_ckpt_<n>.ckpt`` files of the run directory (SLURM requeue); newest first, each
    verified (``lit_rpe.training.checkpoints``). Damaged newer ones are named in one line each
    and, with ``rename``, moved aside; none readable raises ``NoReadableCheckpoint``.
    """
    folder, root = checkpoint_folders(trainer)
    choice = resume_checkpoint(folder, root, rename=rename)
    for path, moved, reason in choice.set_aside:
        kept = f"kept as {moved.name}" if moved != path else "left in place"
        rank_zero_warn(f"checkpoint {path} {reason}; {kept}; using {choice.path} instead")
    return choice.path


class LitRPETrainer(Trainer):
    """Lightning's Trainer plus ``precision: auto`` and ``sample`` (a LightningCLI subcommand).

    precision: ``auto`` (default: bf16-mixed where the device computes bf16 natively, else
    32-true; see ``lit_rpe.precision``), ``bf16`` / ``bf16-mixed`` or ``fp32`` / ``32`` /
    ``32-true``. Resolved once, here, before Lightning builds anything; the choice and its reason
    are logged, and ``resolved_precision`` holds it.

    Faults: checkpoints are written atomically (``AtomicCheckpointIO``, unless a plugin sets
    another checkpoint IO) and SIGTERM / SIGUSR1 / SIGINT stop at a step boundary with a checkpoint
    (``StopOnSignal``, always added).
    """

    def __init__(
        self,
        *,
        precision: PrecisionRequest = "auto",
        accelerator: str | Accelerator = "auto",
        **kwargs,
    ):
        self.resolved_precision = resolve_precision(precision, accelerator_device_type(accelerator))
        rank_zero_info(self.resolved_precision.describe())
        super().__init__(
            accelerator=accelerator, precision=self.resolved_precision.lightning, **kwargs
        )
        # Added after Lightning built them, leaving kwargs alone: LightningCLI derives the
        # command line from how __init__ uses them.
        if not any(isinstance(c, StopOnSignal) for c in self.callbacks):
            self.callbacks.append(StopOnSignal())
        if type(self.strategy.checkpoint_io) is TorchCheckpointIO:  # not one the user chose
            self.strategy.checkpoint_io = AtomicCheckpointIO()

    def sample(
        self,
        model: DiffusionModule,
        datamodule=None,
        ckpt_path: str | None = None,
        resolution: int | tuple[int, int] | None = None,
        rule: InferenceRule | None = None,
        num_images: int = 16,
        steps: int | None = None,
        method: str | None = None,
        cfg_scale: float | None = None,
        seed: int = 0,
        use_ema: bool = True,
        out_dir: str | None = None,
        official: Literal["dit", "sit", "fit"] | None = None,
        vae_path: str | None = None,
        official_options: dict[str, int] | None = None,
    ) -> Path:
        """Sample a trained model at any resolution with any inference rule; writes a PNG grid.

        ckpt_path: default ``<run dir>/checkpoints/last.ckpt``. resolution: pixels, int or
        (H, W); default the training resolution. rule: an inference rule, a name or a mapping
        of its fields (``parse_rule``); default the experiment's ``model.rule``. method:
        ``euler``/``heun``/``dopri5`` (flow; SiT files; ``sde`` too), ``ddpm``/``ddim`` (DiT and
        FiTv1 files). Image i uses seed ``seed + i`` and label ``i % classes``.
        official: ``dit``, ``sit`` or ``fit``: ckpt_path is an official DiT/SiT/FiT file
        (``load_official``), sampled with its own objective; vae_path: its SD-VAE folder
        (default model.vae_path); official_options: loader options, e.g. a FiT file's
        ``{context_size: 1024}`` (HR fine-tunes), ``ori_max_pe_len``, ``num_heads``.
        Returns the grid's path: ``<out_dir or run dir/samples>/<rule label>_<H>x<W>.png``.
        """
        inference_rule = model.default_rule() if rule is None else parse_rule(rule)
        if official is not None:
            from lit_rpe.official.model import load_official

            if not ckpt_path:
                raise ValueError(f"--official {official} needs --ckpt_path: the official file")
            path = Path(ckpt_path)
            vae = vae_path or model.hparams.vae_path
            options = official_options or {}
            model = load_official(path, official, vae_path=vae, rule=inference_rule, **options)
            resolution = resolution or model.resolution
            model.check_resolution(resolution, inference_rule)
        else:
            path = Path(ckpt_path) if ckpt_path else last_checkpoint(self)
            if path is None or not path.is_file():
                raise FileNotFoundError(
                    f"no checkpoint to sample: "
                    f"{path or 'no last.ckpt under ' + self.default_root_dir}"
                    "; train first (make train EXP=...) or pass --ckpt_path"
                )
            resolution = resolution or model.resolution
            model.check_resolution(resolution, inference_rule)  # fail before loading anything big
            verify_checkpoint(path, keys=("state_dict",))  # a damaged file: one line, not torch's
            checkpoint = torch.load(path, map_location="cpu", weights_only=False)
            model.load_state_dict(checkpoint["state_dict"])
        model.to(self.strategy.root_device).eval()
        labels, seeds = seeds_and_labels(
            range(num_images), seed=seed, num_classes=model.net.num_classes
        )
        with self.precision_plugin.forward_context():  # bf16-mixed: autocast, as in training
            images = model.sample(
                labels,
                seeds,
                resolution=resolution,
                rule=inference_rule,
                steps=steps,
                method=method,
                cfg_scale=cfg_scale,
                use_ema=use_ema,
            )
        from lit_rpe.image_io import save_image_grid

        h, w = images.shape[-2:]
        folder = Path(out_dir) if out_dir else Path(self.default_root_dir) / "samples"
        out = save_image_grid(images, folder / f"{inference_rule.label}_{h}x{w}.png")
        rank_zero_info(
            f"{num_images} samples of {path} at {h}x{w} ({inference_rule.label}, "
            f"{self.resolved_precision.name}): {out}"
        )
        return out


class LitRPECLI(LightningCLI):
    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        commands = LightningCLI.subcommands()
        commands["sample"] = {"model", "datamodule"}
        return {k: v for k, v in commands.items() if k in ("fit", "validate", "sample")}

    def _parse_ckpt_path(self) -> None:
        # LightningCLI reads the hyper-parameters of an explicit --ckpt_path with torch.load
        # right after parsing: verify the file first, so a damaged one is one clear line.
        subcommand = self.config.get("subcommand")
        if subcommand == "sample" and self.config[subcommand].get("official"):
            return  # an official file: no hyper-parameters; load_official checks it itself
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and Path(ckpt_path).is_file():
            verify_checkpoint(ckpt_path, keys=("state_dict",))
        super()._parse_ckpt_path()

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.resolution", "model.resolution")
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")

    def before_fit(self) -> None:
        if SLURMEnvironment.detect() and shutil.which("scontrol") is None:
            rank_zero_warn(
                "scontrol not found: on SIGUSR1 the run still saves hpc_ckpt_<n>.ckpt in "
                f"{self.trainer.default_root_dir}, but cannot requeue itself; submit the job "
                "again and it resumes from that checkpoint."
            )
        config = self.config_init[self.subcommand]
        if config.get("ckpt_path") is None:
            last = last_checkpoint(self.trainer, rename=rank_zero_only.rank == 0)
            if last is not None:
                rank_zero_info(f"resuming from {last}")
                config["ckpt_path"] = str(last)
        elif Path(config["ckpt_path"]).is_file():  # Lightning's own names ("last", "hpc") pass
            verify_checkpoint(config["ckpt_path"])


def main(argv: list[str] | None = None) -> None:
    from lit_rpe.training.data import ImageShardDataModule
    from lit_rpe.training.data.read_config import TooManySkippedSamples
    from lit_rpe.training.data.remote_manifest import RemoteSetupError

    argv = list(sys.argv[1:] if argv is None else argv)
    args = expand_config_args(argv)
    saved_argv = sys.argv[:]
    # Lightning's DDP launcher starts the other ranks with this process's sys.argv: give them
    # the command as typed (each composes the configs itself; the composed YAML is no path).
    sys.argv[1:] = argv
    try:
        LitRPECLI(
            DiffusionModule,
            ImageShardDataModule,
            trainer_class=LitRPETrainer,
            parser_kwargs={"parser_mode": "omegaconf"},
            save_config_kwargs={"overwrite": True},
            args=args,
        )
    except TrainingInterrupted as stop:
        print(f"lit-rpe: {stop}", file=sys.stderr, flush=True)
        sys.exit(EXIT_INTERRUPTED)
    except (
        DamagedCheckpoint,
        NoReadableCheckpoint,
        TrainingDiverged,
        TooManySkippedSamples,
        RemoteSetupError,
    ) as err:  # each message names its cause and what to do: one line, not a traceback
        print(f"lit-rpe: {err}", file=sys.stderr, flush=True)
        sys.exit(1)
    finally:
        sys.argv[:] = saved_argv


if __name__ == "__main__":
    main()
