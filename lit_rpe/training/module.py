"""The LightningModule: a DiT trained by flow matching, with an EMA copy used for sampling.

Every random draw of a training step (label dropout, positions, t, noise) comes from a generator
seeded by (seed, rank, step), not from global state. A resumed run therefore replays exactly the
draws of an uninterrupted one, on every rank, without carrying generator states in checkpoints.
The generator lives on the module's device, so nothing is drawn on the host and copied per step
(the draws differ between a CPU and a GPU run of the same seed, and repeat on each).
Validation draws nothing: its noise and times follow
``lit_rpe.objectives.flow.validation_protocol``.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from lightning.pytorch import LightningModule

from lit_rpe.distributed import all_reduce_sum_, rank_and_world
from lit_rpe.models.dit import DiT
from lit_rpe.objectives.flow.loss import FlowMatchingLoss, loss_per_t_bucket
from lit_rpe.objectives.flow.samplers import sample_ode
from lit_rpe.objectives.flow.validation_protocol import validation_losses
from lit_rpe.posenc import InferenceRule, parse_rule
from lit_rpe.precision import CHECKPOINT_KEY
from lit_rpe.resolution import LATENT_CHANNELS, LATENT_FACTOR, PIXEL_CHANNELS, as_height_width
from lit_rpe.sampling.guidance import guided_channel_count, guided_velocity
from lit_rpe.sampling.sampler import LazyVAE, Sampler, SamplingStart
from lit_rpe.sampling.settings import FLOW_METHODS, FLOW_SAMPLING, SamplerSettings
from lit_rpe.training.callbacks.divergence import TrainingDiverged
from lit_rpe.training.config import NetConfig, OptimConfig, allow_config_classes


def ema_decay_at(step: int, decay: float, warmup: bool) -> float:
    """EMA decay after ``step`` optimizer steps; with warm-up ``min(decay, (1 + n) / (10 + n))``
    so short runs (the CPU demo) average over their own length instead of their initial weights."""
    return min(decay, (1 + step) / (10 + step)) if warmup else decay


class DiffusionModule(LightningModule, Sampler):
    """Class-conditional DiT + flow matching.

    resolution: training resolution in pixels, int or (H, W). vae_path: local folder of an SD-VAE
    (``AutoencoderKL`` layout); None trains in pixel space. num_classes: from the data set.
    ema_decay / ema_warmup: EMA of the weights (see ``ema_decay_at``). t_sampling: ``uniform`` or
    ``logit_normal`` (logit_mean, logit_std). loss_buckets: number of t-buckets the loss is
    logged in. rule: the inference rule of sampling and validation (``InferenceRule``: a name
    or a mapping of its fields, ``parse_rule``); None: the network's default (``rpe2d_even``
    for rpe2d positions, else ``extrapolate``). val_loss_t: times per validation image
    (``lit_rpe.objectives.flow.validation_protocol``).
    nan_check_every_n_steps: check the loss for NaN/inf every n steps (0: never), before the
    optimizer step; each check is one host sync on a GPU (after the backward is queued). init_from:
    a checkpoint whose weights and EMA start this run (multi-stage training, e.g. a 256 px model
    continued at 512 px) with a fresh optimizer; ignored when the run resumes from its own
    checkpoint.

    Sampling (``sample``, ``sample_latents``, ``check_resolution``, ``decode``) is the
    ``Sampler`` interface; this class supplies the flow-matching ``integrate``.
    """

    supports_validation_loss = True

    def __init__(
        self,
        net: NetConfig = NetConfig(),
        resolution: int | tuple[int, int] = 256,
        num_classes: int = 1000,
        vae_path: str | None = None,
        optim: OptimConfig = OptimConfig(),
        ema_decay: float = 0.9999,
        ema_warmup: bool = True,
        t_sampling: Literal["uniform", "logit_normal"] = "uniform",
        logit_mean: float = 0.0,
        logit_std: float = 1.0,
        rule: InferenceRule | None = None,
        sampling: SamplerSettings = SamplerSettings(),
        seed: int = 0,
        loss_buckets: int = 10,
        val_loss_t: int = 8,
        nan_check_every_n_steps: int = 1,
        init_from: str | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.rule = None if rule is None else parse_rule(rule)
        # The rule's YAML form: the checkpoint's hyper-parameters then load without the class.
        self.hparams.rule = None if self.rule is None else self.rule.spec()
        # Typed copies: under LightningCLI, hparams hold the CLI's plain dicts instead.
        self.net_config = NetConfig(**net) if isinstance(net, dict) else net
        self.optim_config = OptimConfig(**optim) if isinstance(optim, dict) else optim
        self.sampling_config = SamplerSettings.of(sampling).over(FLOW_SAMPLING)
        if self.sampling_config.method not in FLOW_METHODS:
            raise ValueError(
                f"sampling.method {self.sampling_config.method!r} does not integrate flow "
                f"matching; valid: {', '.join(FLOW_METHODS)}"
            )
        net = self.net_config
        self.resolution = as_height_width(resolution)
        self.latent_factor = LATENT_FACTOR if vae_path else 1
        self.channels = LATENT_CHANNELS if vae_path else PIXEL_CHANNELS
        if self.resolution[0] % self.latent_factor or self.resolution[1] % self.latent_factor:
            raise ValueError(
                f"resolution {self.resolution} is not a multiple of the VAE factor {LATENT_FACTOR}"
            )
        self.net = DiT.from_name(
            net.name,
            input_size=tuple(r // self.latent_factor for r in self.resolution),
            in_channels=self.channels,
            num_classes=num_classes,
            class_dropout_prob=0.0,  # label dropout happens here, from the step's generator
            **net.dit_options(),
        )
        self.ema = copy.deepcopy(self.net).requires_grad_(False).eval()
        if net.compile:  # both: the EMA samples (validation, grids, sample, every evaluation)
            for block in (*self.net.blocks, *self.ema.blocks):
                block.compile()
        self.loss = FlowMatchingLoss(
            t_sampling=t_sampling, logit_mean=logit_mean, logit_std=logit_std
        )
        self.check_resolution(self.resolution)
        self.vae = LazyVAE(vae_path)  # loaded on first use, never in checkpoints
        # One image at the training size: the model summary counts the FLOPs of its forward.
        latent = tuple(r // self.latent_factor for r in self.resolution)
        self.example_input_array = (
            torch.zeros(1, self.channels, *latent),
            torch.full((1,), 0.5),
            torch.zeros(1, dtype=torch.long),
        )
        self.register_buffer("_bucket_sum", torch.zeros(loss_buckets), persistent=False)
        self.register_buffer("_bucket_count", torch.zeros(loss_buckets), persistent=False)
        # the step's loss and whether its micro-batches' losses were finite, read by the NaN
        # check before the optimizer step (on the device until then)
        self._step_loss: torch.Tensor | None = None
        self._finite: torch.Tensor | None = None

    def default_rule(self) -> InferenceRule:
        return self.rule or self.net.default_rule

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training network's velocity (B, C, h, w) for inputs x (B, C, h, w), times t (B,)
        and labels y (B,), at this model's default positions."""
        return self.net(x, t, y)

    def setup(self, stage: str) -> None:
        # The EMA copy is in eval mode on purpose; Lightning would warn about it at fit start.
        warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
        # Not ours to fix: Lightning's CombinedLoader builds torch's LeafSpec, which torch 2.13
        # deprecates (a FutureWarning from lightning.pytorch.utilities._pytree, twice a run).
        warnings.filterwarnings(
            "ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning
        )
        # Lightning reads a resumed run's own checkpoint after setup (so a resume wins over
        # init_from); its hyper-parameters hold the config classes.
        allow_config_classes()
        if stage == "fit" and self.hparams.init_from:
            self.load_weights(self.hparams.init_from)

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, *args, **kwargs) -> DiffusionModule:
        """Lightning's ``load_from_checkpoint``, with the config classes of the hyper-parameters
        allowed by the weights-only loader."""
        allow_config_classes()
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    def load_weights(self, path: str) -> None:
        """Copy the weights and EMA of a checkpoint into this model (any training resolution:
        the model has no resolution-sized parameters); the optimizer is not touched."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"init_from checkpoint not found: {path}")
        allow_config_classes()
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        for prefix, target in (("net.", self.net), ("ema.", self.ema)):
            part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            if prefix == "ema." and not part:
                part = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
            try:
                target.load_state_dict(part)
            except RuntimeError as err:
                raise ValueError(
                    f"init_from {path} does not fit this model ({self.net_config.name}, "
                    f"{self.net_config.encoder}, micro_conditioning="
                    f"{self.net_config.micro_conditioning}): {err}"
                ) from err

    # ------------------------------------------------------------------------------ latents

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Pixels in [-1, 1] -> model inputs (latents with a VAE; precomputed latents pass)."""
        if self.latent_factor == 1 or images.shape[1] == LATENT_CHANNELS:
            return images
        with torch.no_grad():
            return self.vae.get(self.device).encode(images)

    # ----------------------------------------------------------------------------- training

    def _step_generator(self, index: int) -> torch.Generator:
        """A generator on the module's device for one (rank, micro-batch): stateless (seeded by
        seed, rank and index alone), so resume is exact."""
        key = [self.hparams.seed, 0, self.global_rank, index]  # 0: the training stream
        seed = np.random.SeedSequence(key).generate_state(1, dtype=np.uint64)[0]
        return torch.Generator(device=self.device).manual_seed(int(seed))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        x0 = self.encode(batch["image"])
        batch_size = x0.shape[0]
        accumulate = self.trainer.accumulate_grad_batches if self._trainer else 1
        gen = self._step_generator(self.global_step * accumulate + batch_idx % accumulate)
        drop = torch.rand(batch_size, generator=gen, device=gen.device)
        y = torch.where(
            drop < self.net_config.class_dropout_prob, self.net.num_classes, batch["label"]
        )
        grid = self.net.token_grid(*x0.shape[-2:])
        pos_h, pos_w = self.net.draw_positions(batch_size, grid, generator=gen, device=self.device)
        box = batch.get("box") if self.net.micro_embedder is not None else None
        out = self.loss(self.net, x0, y, generator=gen, pos_h=pos_h, pos_w=pos_w, box=box)
        loss = out.losses.mean()
        # Read on the host only before the optimizer step (on_before_optimizer_step): here it
        # would stall the host until the forward ran, before it could queue the backward.
        finite = torch.isfinite(loss.detach())
        self._finite = finite if batch_idx % accumulate == 0 else self._finite & finite
        self._step_loss = loss.detach()
        means, counts = loss_per_t_bucket(out.losses.detach(), out.t, len(self._bucket_sum))
        self._bucket_sum += torch.nan_to_num(means) * counts
        self._bucket_count += counts
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        if "corrupt" in batch:
            skipped = batch["corrupt"].sum().float()
            self.log("data/skipped", skipped, reduce_fx="sum", on_step=False, on_epoch=True)
        return loss

    def _nan_message(self, loss: torch.Tensor) -> str:
        ckpt = getattr(self.trainer.checkpoint_callback, "last_model_path", "") or "none saved yet"
        return (
            f"training loss is {loss.item()} at step {self.global_step}; stopping before the "
            f"weights are updated. Last good checkpoint: {ckpt}. Lower optim.lr, raise "
            "optim.warmup_steps or check the data."
        )

    def on_before_optimizer_step(self, optimizer) -> None:
        """The NaN check (every ``nan_check_every_n_steps``): after the backward was queued and
        before the weights change, so the one host read it costs waits for the step's forward
        and backward only, and a non-finite loss stops the run with its weights untouched."""
        every = self.hparams.nan_check_every_n_steps
        if not every or self.global_step % every != 0:
            return
        finite, loss = self._finite.float(), self._step_loss.float()
        world = rank_and_world()[1]
        if world > 1:
            # One all-reduce: a NaN on any rank stops every rank at this step (a rank stopping
            # alone leaves the others waiting in their next collective), with the same message.
            finite, loss = all_reduce_sum_(torch.stack([finite, loss])) / world
        if finite < 1:
            raise TrainingDiverged(self._nan_message(loss))

    def optimizer_step(self, *args, **kwargs) -> None:
        # The EMA follows each optimizer step here rather than in on_train_batch_end: callbacks
        # (periodic checkpoints) run before the module's batch-end hook and would save an EMA
        # one update behind, breaking exact resume.
        super().optimizer_step(*args, **kwargs)
        self.update_ema()

    def update_ema(self) -> None:
        """Move the EMA one step towards the weights (one fused multi-tensor lerp, no sync)."""
        decay = ema_decay_at(self.global_step, self.hparams.ema_decay, self.hparams.ema_warmup)
        ema_params = list(self.ema.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in self.net.parameters()], 1 - decay)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The precision the run trained in ("bf16-mixed" / "32-true": precision auto resolved),
        # read back by the demo and study summaries.
        checkpoint[CHECKPOINT_KEY] = str(self.trainer.precision)

    def on_train_epoch_end(self) -> None:
        sums = self.trainer.strategy.reduce(self._bucket_sum, reduce_op="sum")
        counts = self.trainer.strategy.reduce(self._bucket_count, reduce_op="sum")
        n = len(sums)
        for k in range(n):
            mean = sums[k] / counts[k].clamp_min(1)
            self.log(f"train/loss_t{k / n:.2f}-{(k + 1) / n:.2f}", mean, rank_zero_only=True)
        self._bucket_sum.zero_()
        self._bucket_count.zero_()

    def _scaled_fp16(self) -> bool:
        """fp16 mixed precision: its gradient scaler must unscale before any clipping."""
        return self._trainer is not None and str(self._trainer.precision) == "16-mixed"

    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ) -> None:
        # Clipped here, not by Lightning's precision plugin, which refuses a fused optimizer
        # under any mixed precision; bf16-mixed has no gradient scaler, so clipping before the
        # fused step is exact (fp16's scaled gradients still go through Lightning).
        if self._scaled_fp16():
            return super().configure_gradient_clipping(
                optimizer, gradient_clip_val, gradient_clip_algorithm
            )
        if not gradient_clip_val:
            return
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if gradient_clip_algorithm == "value":
            torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
        else:
            torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)

    def configure_optimizers(self):
        o = self.optim_config
        # fused: one kernel per parameter instead of a dozen foreach passes (3.5x faster on CPU,
        # about 1.3% of a DiT-S/2 step); same update, torch has it for CPU and CUDA tensors.
        # Only fp16 with clipping keeps foreach: Lightning unscales and clips those gradients.
        clipping = self._trainer is not None and bool(self._trainer.gradient_clip_val)
        fused = not (clipping and self._scaled_fp16()) and all(
            p.device.type in ("cpu", "cuda") for p in self.net.parameters()
        )
        opt = torch.optim.AdamW(
            self.net.parameters(),
            lr=o.lr,
            betas=o.betas,
            weight_decay=o.weight_decay,
            fused=fused or None,
        )
        warmup = max(1, o.warmup_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # --------------------------------------------------------------------------- validation

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """The flow-matching loss of the validation protocol
        (``lit_rpe.objectives.flow.validation_protocol``: noise from each image's key,
        ``val_loss_t`` fixed times) with the default rule, for the weights (``val/loss``) and the
        EMA (``val/loss_ema``)."""
        if "key" not in batch:
            raise ValueError("validation batches need 'key' (the sample keys seed the noise)")
        x0 = self.encode(batch["image"])
        grid = self.net.token_grid(*x0.shape[-2:])
        for name, net in (("val/loss", self.net), ("val/loss_ema", self.ema)):
            losses = validation_losses(
                net,
                x0,
                batch["label"],
                batch["key"],
                rule=self.default_rule(),
                grid=grid,
                seed=self.hparams.seed,
                num_t=self.hparams.val_loss_t,
            )
            self.log(name, losses.mean(), sync_dist=True, batch_size=x0.shape[0])

    # ----------------------------------------------------------------------------- sampling

    def integrate(self, start: SamplingStart, options: SamplerSettings) -> torch.Tensor:
        """Flow matching: the guided velocity integrated from t = 1 to 0 (``sample_ode``)."""
        velocity = guided_velocity(
            start.net,
            start.labels,
            num_classes=start.net.num_classes,
            cfg_scale=options.cfg_scale,
            guided_channels=guided_channel_count(options.cfg_channels),
            interval=options.guidance_interval,
            rule=start.rule,
            pos_h=start.pos_h,
            pos_w=start.pos_w,
        )
        return sample_ode(
            velocity, start.noise, steps=options.steps, method=options.method, shift=start.shift
        )
