"""SiT / FiTv2's adaptive ODE sampling with their partial-channel guidance, step for step.

The official samplers (SiT ``sample.py``, FiT ``sample_fitv2_ddp.py``) integrate a doubled
state ``[x; x']`` with ``forward_with_cfg``: both halves get the guided velocity on the first
3 latent channels, but the second half's remaining channel follows the *unconditional*
velocity. That half never feeds the network (``forward_with_cfg`` reads only the first half),
yet it enters the adaptive solver's error norm (an RMS over the whole state), so it sets the
step sizes. ``sample_official_adaptive`` carries the same shadow half, so a ``dopri5`` run takes
the official steps and lands on the official result to float precision rather than to the
solver's tolerance. Without guidance, or guidance on every channel, the halves are equal and
the plain ``sample_ode`` is the same integration.
"""

from __future__ import annotations

import torch

from lit_rpe.objectives.flow.samplers import ADAPTIVE_TOLERANCES, sample_ode_adaptive
from lit_rpe.sampling.sampler import SamplingStart


def sample_official_adaptive(
    start: SamplingStart,
    *,
    cfg_scale: float,
    guided_channels: int,
    steps: int = 250,
    method: str = "dopri5",
    tolerances: tuple[float, float] = ADAPTIVE_TOLERANCES,
) -> torch.Tensor:
    """Latents (B, C, h, w) of a SiT-time velocity network (``start.net``, t = 1 data) from
    ``start.noise``, guided with ``cfg_scale`` on ``guided_channels`` leading channels, with
    the official doubled state (module docstring). steps: the solver's output times."""
    net, batch = start.net, start.noise.shape[0]
    c, k = net.in_channels, guided_channels
    labels = torch.cat([start.labels, torch.full_like(start.labels, net.num_classes)])
    pos_h, pos_w = torch.cat([start.pos_h, start.pos_h]), torch.cat([start.pos_w, start.pos_w])
    t_dtype = torch.promote_types(start.noise.dtype, torch.float32)

    def velocity(state: torch.Tensor, t: float) -> torch.Tensor:
        x = state[:batch]
        t_vec = torch.full((2 * batch,), 1.0 - t, dtype=t_dtype, device=x.device)
        rule_t = min(max(t, 0.0), 1.0)  # the solver's last stages may pass t = 0 (guidance.py)
        out = net(
            torch.cat([x, x]),
            t_vec,
            labels,
            pos_h=pos_h,
            pos_w=pos_w,
            rule=start.rule,
            rule_t=rule_t,
        )[:, :c]
        cond, uncond = out.chunk(2)
        guided = uncond[:, :k] + cfg_scale * (cond[:, :k] - uncond[:, :k])
        v_main = torch.cat([guided, cond[:, k:]], dim=1)
        v_shadow = torch.cat([guided, uncond[:, k:]], dim=1)
        return -torch.cat([v_main, v_shadow])  # this suite's time runs the other way

    state = torch.cat([start.noise, start.noise])
    return sample_ode_adaptive(velocity, state, steps=steps, method=method, tolerances=tolerances)[
        :batch
    ]
