"""The validation protocol of the flow-matching loss: fixed noise and times for every image.

The image with shard key k gets the seed ``key_seed(seed, k)``; its noise (``seeded_noise``)
and, under ``rpe2d_random``, its positions come from that seed. It is evaluated at every point
of a fixed grid of ``num_t`` times, the midpoints ``(j + 0.5) / num_t``. So an image's loss does
not depend on the batch size, the order, the rank or the number of processes, and two models (or
two inference rules) are compared on the same inputs.

One protocol serves ``DiffusionModule.validation_step`` (training resolution, the module's
default rule, ``val/loss`` and ``val/loss_ema``) and the eval grid's ``val_loss`` (any
resolution and rule, ``lit_rpe.eval.metrics.val_loss``): at the training resolution with the
default rule and the same seed and ``num_t``, the grid's value for the EMA is ``val/loss_ema``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

from lit_rpe.objectives.flow.loss import flow_matching_losses
from lit_rpe.objectives.flow.noise import seeded_noise
from lit_rpe.posenc import InferenceRule


def key_seed(seed: int, key: str) -> int:
    """A 31-bit seed for one image from the run seed and its shard key (order-independent)."""
    return int.from_bytes(hashlib.sha1(f"{seed}:{key}".encode()).digest()[:4], "little") >> 1


def t_grid(num_t: int) -> torch.Tensor:
    """Midpoints of ``num_t`` equal bins of [0, 1]: (num_t,) float32."""
    if num_t < 1:
        raise ValueError(f"num_t must be >= 1, got {num_t}")
    return (torch.arange(num_t, dtype=torch.float32) + 0.5) / num_t


@torch.no_grad()
def validation_losses(
    net,
    x0: torch.Tensor,
    labels: torch.Tensor,
    keys: Sequence[str],
    *,
    rule: InferenceRule,
    grid: tuple[int, int],
    seed: int = 0,
    num_t: int = 8,
) -> torch.Tensor:
    """Per-image losses of the protocol: (num_t, B) float32, row j at time ``t_grid(num_t)[j]``.

    net: a ``DiT`` (called with the rule's positions on the token ``grid`` and ``rule_t = t``).
    x0: (B, C, H, W) model inputs; labels: (B,) long; keys: the B shard keys.
    """
    if len(keys) != x0.shape[0]:
        raise ValueError(f"got {len(keys)} keys for a batch of {x0.shape[0]}")
    n, device = x0.shape[0], x0.device
    seeds = [key_seed(seed, key) for key in keys]
    noise = seeded_noise(seeds, x0.shape[1:], device=device, dtype=x0.dtype)
    pos_h, pos_w = net.rule_positions(rule, n, grid, seeds=seeds, device=device)
    rows = []
    for t in t_grid(num_t).tolist():
        t_vec = torch.full((n,), t, device=device)
        rows.append(
            flow_matching_losses(
                net, x0, noise, t_vec, labels, pos_h=pos_h, pos_w=pos_w, rule=rule, rule_t=t
            )
        )
    return torch.stack(rows)
