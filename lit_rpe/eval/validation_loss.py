"""Flow-matching validation loss at any resolution: a metric that needs no pretrained network.

The same validation images, centre-cropped at each resolution, are noised with fixed noise
(each image's generator is seeded from ``seed`` and its shard key) at every point of a fixed
t grid; the loss is the mean squared error of the predicted velocity, averaged over images
and t. Because the noise, the t grid and the images are fixed, two models (or two inference
rules) are compared on the same inputs, and a rule's effect on the loss at 2x the training
resolution is directly visible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import torch

from lit_rpe.distributed import all_reduce_sum_
from lit_rpe.flow import seeded_noise
from lit_rpe.posenc import InferenceRule


def key_seed(seed: int, key: str) -> int:
    """A 31-bit seed for one image from the run seed and its shard key (order-independent)."""
    return int.from_bytes(hashlib.sha1(f"{seed}:{key}".encode()).digest()[:4], "little") >> 1


def t_grid(num_t: int) -> torch.Tensor:
    """Midpoints of ``num_t`` equal bins of [0, 1]: (num_t,) float32."""
    return (torch.arange(num_t, dtype=torch.float32) + 0.5) / num_t


@torch.no_grad()
def flow_validation_loss(
    module,
    batches: Iterable[dict],
    *,
    rule: InferenceRule | None = None,
    num_t: int = 8,
    seed: int = 0,
    use_ema: bool = True,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Mean flow-matching loss of ``module`` on ``batches`` (pixels in [-1, 1]) under ``rule``.

    module: a ``DiffusionModule`` (its ``encode``, ``net``/``ema``, ``rule_positions``).
    Returns ``{"val_loss": mean, "val_loss_t<k>": mean at t grid point k}``. Each image's
    noise (and rpe2d_random positions) come from ``key_seed(seed, key)``, so the value does not
    depend on batch size, order or the number of processes (sums are reduced over ranks).
    """
    net = module.ema if use_ema else module.net
    rule = rule or module.default_rule()
    ts = t_grid(num_t)
    sums = torch.zeros(num_t + 1, dtype=torch.float64)  # last entry: the image count
    device = module.device
    for batch in batches:
        x0 = module.encode(batch["image"].to(device))
        n = x0.shape[0]
        seeds = [key_seed(seed, key) for key in batch["key"]]
        noise = seeded_noise(seeds, x0.shape[1:], device=device)
        pixels = tuple(s * module.latent_factor for s in x0.shape[-2:])
        grid = module.check_resolution(pixels, rule)
        pos_h, pos_w = net.rule_positions(rule, n, grid, seeds=seeds, device=device)
        labels = batch["label"].to(device)
        for k, t in enumerate(ts.tolist()):
            x_t = (1 - t) * x0 + t * noise
            t_vec = torch.full((n,), t, device=device)
            with torch.autocast(
                device.type, dtype=autocast_dtype or torch.float32, enabled=bool(autocast_dtype)
            ):
                v = net(x_t, t_vec, labels, pos_h=pos_h, pos_w=pos_w, rule=rule, rule_t=t)
            err = (v.float()[:, : x0.shape[1]] - (noise - x0).float()).square()
            sums[k] += err.mean(dim=(1, 2, 3)).double().sum().cpu()
        sums[-1] += n
    all_reduce_sum_(sums)
    if sums[-1] == 0:
        raise ValueError("no validation images")
    per_t = sums[:-1] / sums[-1]
    result = {"val_loss": float(per_t.mean())}
    result.update({f"val_loss_t{k}": float(v) for k, v in enumerate(per_t)})
    return result
