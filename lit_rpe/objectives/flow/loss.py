"""The flow-matching loss: one per-sample core for training, validation and the eval grid.

``flow_matching_losses`` is the loss at given noise and times; ``FlowMatchingLoss`` draws them
for a training step (t from the training distribution, then the noise), and
``lit_rpe.objectives.flow.validation_protocol`` fixes them per image for validation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch

from lit_rpe.objectives.flow.path import T_SAMPLINGS, interpolate, sample_t, target_velocity


def flow_matching_losses(
    model: Callable[..., torch.Tensor],
    x0: torch.Tensor,
    eps: torch.Tensor,
    t: torch.Tensor,
    y: torch.Tensor,
    **model_kwargs,
) -> torch.Tensor:
    """Per-sample MSE between the model's velocity at x_t and the target ``eps - x0``.

    x0, eps: (B, C, H, W) data (latents) and noise; t: (B,) float32 times; y: (B,) labels.
    The model is called as ``model(x_t, t, y, **model_kwargs)`` with x_t from
    ``path.interpolate`` and must return x0's shape. Returns (B,) float32, the squared error
    averaged over the non-batch dims, computed in float32 (under bf16 autocast the prediction
    may be low precision).
    """
    pred = model(interpolate(x0, eps, t), t, y, **model_kwargs)
    if pred.shape != x0.shape:
        raise ValueError(f"model returned {tuple(pred.shape)}, expected {tuple(x0.shape)}")
    err = pred.float() - target_velocity(x0, eps).float()
    return err.square().flatten(1).mean(1)


class FlowLoss(NamedTuple):
    """Output of FlowMatchingLoss: ``losses`` (B,) float32 per-sample MSE, ``t`` (B,) the times."""

    losses: torch.Tensor
    t: torch.Tensor


@dataclass(frozen=True)
class FlowMatchingLoss:
    """MSE between the network's velocity and eps - x0 at a random point of the path.

    Holds configuration only: how training times are drawn (``t_sampling`` one of
    ``uniform``/``logit_normal``, with ``logit_mean``/``logit_std`` for the latter).
    """

    t_sampling: str = "uniform"
    logit_mean: float = 0.0
    logit_std: float = 1.0

    def __post_init__(self) -> None:
        # Fail at construction (config time), not at the first training step.
        if self.t_sampling not in T_SAMPLINGS:
            raise ValueError(
                f"unknown t sampling {self.t_sampling!r}; valid: {', '.join(T_SAMPLINGS)}"
            )
        if self.logit_std <= 0:
            raise ValueError(f"logit_std must be > 0, got {self.logit_std}")

    def __call__(
        self,
        model: Callable[..., torch.Tensor],
        x0: torch.Tensor,
        y: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        **model_kwargs,
    ) -> FlowLoss:
        """Per-sample losses for a batch.

        x0: (B, C, H, W) data (latents); y: (B,) long class labels; model_kwargs go to the
        model unchanged. Draw order is fixed, t first then eps, both from ``generator`` (on the
        generator's device, then moved to x0's), so a seeded generator reproduces a step.
        Returns FlowLoss(losses (B,) float32 MSE averaged over non-batch dims, t (B,) float32).
        Reduce ``losses`` with ``.mean()`` for the optimiser; keep ``t`` for per-t logging.
        """
        batch = x0.shape[0]
        t = sample_t(
            batch,
            self.t_sampling,
            generator=generator,
            device=x0.device,
            logit_mean=self.logit_mean,
            logit_std=self.logit_std,
        )
        draw_device = generator.device if generator is not None else x0.device
        eps = torch.randn(x0.shape, generator=generator, device=draw_device, dtype=x0.dtype)
        eps = eps.to(x0.device)
        return FlowLoss(flow_matching_losses(model, x0, eps, t, y, **model_kwargs), t)


def loss_per_t_bucket(
    losses: torch.Tensor, t: torch.Tensor, num_buckets: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss in each of ``num_buckets`` equal-width t intervals of [0, 1].

    losses, t: (B,). Bucket k holds k/n <= t < (k+1)/n; t = 1 goes in the last bucket.
    Returns (means (num_buckets,) float32, NaN where a bucket is empty; counts (num_buckets,)
    int64). Stays on the tensors' device with no host sync (scatter-add, not bincount, which
    reads the max label back to the host on CUDA); detached, as it is meant for logging.
    """
    if num_buckets < 1:
        raise ValueError(f"num_buckets must be >= 1, got {num_buckets}")
    if losses.shape != t.shape or losses.ndim != 1:
        raise ValueError(
            f"losses and t must both be (B,), got {tuple(losses.shape)} and {tuple(t.shape)}"
        )
    losses = losses.detach().float()
    idx = (t.detach() * num_buckets).floor().long().clamp_(0, num_buckets - 1)
    sums = torch.zeros(num_buckets, device=losses.device).index_add_(0, idx, losses)
    counts = torch.zeros(num_buckets, dtype=torch.long, device=losses.device)
    counts.index_add_(0, idx, torch.ones_like(idx))
    means = torch.where(counts > 0, sums / counts.clamp(min=1), torch.full_like(sums, torch.nan))
    return means, counts
