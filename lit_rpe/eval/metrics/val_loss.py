"""Flow-matching validation loss at any resolution: a metric that needs no pretrained network.

The same validation images, centre-cropped at each resolution, are scored with the validation
protocol of ``lit_rpe.objectives.flow.validation_protocol`` (fixed noise per image key, a fixed
t grid) under any inference rule; the loss is averaged over images and t. Because the inputs are
fixed, two models (or two rules) are compared on the same inputs, and a rule's effect on the loss
at 2x the training resolution is directly visible.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from lit_rpe.distributed import all_reduce_sum_
from lit_rpe.objectives.flow.validation_protocol import validation_losses
from lit_rpe.posenc import InferenceRule


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

    module: a ``DiffusionModule`` (a ``Sampler`` with ``supports_validation_loss``: its
    ``encode``, ``net``/``ema``, ``check_resolution``). batches: dicts with ``image``, ``label``
    and ``key`` (``lit_rpe.training.data.validation_batches``). Returns ``{"val_loss": mean,
    "val_loss_t<k>": mean at t grid point k}``; sums are reduced over ranks.
    """
    net = module.ema if use_ema else module.net
    rule = rule or module.default_rule()
    sums = torch.zeros(num_t + 1, dtype=torch.float64)  # last entry: the image count
    device = module.device
    for batch in batches:
        x0 = module.encode(batch["image"].to(device))
        pixels = tuple(s * module.latent_factor for s in x0.shape[-2:])
        grid = module.check_resolution(pixels, rule)
        with torch.autocast(
            device.type, dtype=autocast_dtype or torch.float32, enabled=bool(autocast_dtype)
        ):
            losses = validation_losses(
                net,
                x0,
                batch["label"].to(device),
                batch["key"],
                rule=rule,
                grid=grid,
                seed=seed,
                num_t=num_t,
            )
        sums[:-1] += losses.double().sum(1).cpu()
        sums[-1] += x0.shape[0]
    all_reduce_sum_(sums)
    if sums[-1] == 0:
        raise ValueError("no validation images")
    per_t = sums[:-1] / sums[-1]
    result = {"val_loss": float(per_t.mean())}
    result.update({f"val_loss_t{k}": float(v) for k, v in enumerate(per_t)})
    return result
