"""Official FiT / FiTv2 files as a ``Sampler``: the FiT network with its version's objective.

- FiTv1: DDPM like DiT (linear betas, T = 1000, eps with learned sigma), ``ddpm`` 250 steps by
  default (FiT's README), CFG on the first 3 latent channels as its ``forward_with_cfg``.
- FiTv2: SiT's linear interpolant with velocity prediction; by default the adaptive ODE solver
  of its published numbers (``dopri5``, atol 1e-6, rtol 1e-3), CFG on 3 channels.
Both are ``OfficialModel`` with objective ``dit`` / ``sit`` (lit_rpe.official.model), so every
sampler option, rule and the eval grid apply unchanged.

Loader options the weights cannot show (docs/official_checkpoints.md): ``context_size`` (256;
1024 for the HR fine-tunes, whose training resolution is then 512 px and whose default rule is
the NTK scaling they were fine-tuned with, FiT's ``dynntk --decouple``) and ``ori_max_pe_len``
(16: the per-axis length every frequency rule scales from).
"""

from __future__ import annotations

from pathlib import Path

from lit_rpe.official.fit_net import FIT_OBJECTIVE, build_fit_net
from lit_rpe.official.model import OfficialModel
from lit_rpe.posenc import InferenceRule, fit_rule
from lit_rpe.sampling.sampler import LATENT_FACTOR

# Sampler defaults of FiT's published numbers (README commands), per version.
FIT_SAMPLING = {
    "fitv1": {"method": "ddpm", "steps": 250, "cfg_scale": 1.5},
    "fitv2": {"method": "dopri5", "steps": 250, "cfg_scale": 1.5},
}


def load_fit(
    path: str | Path,
    *,
    context_size: int = 256,
    ori_max_pe_len: int = 16,
    num_heads: int | None = None,
    rule: InferenceRule | None = None,
    clamp_time: bool = True,
    **kwargs,
) -> OfficialModel:
    """An official FiT/FiTv2 file as an ``OfficialModel``. kwargs: ``OfficialModel``'s
    (vae_path, method, steps, cfg_scale, guidance_interval, cfg_channels, ddim_eta), each
    replacing the version's default in ``FIT_SAMPLING``. clamp_time: the official forward's
    clamp of t at 1 (``FiT``); False gives a FiTv1 network its DDPM timestep unclamped."""
    net, version = build_fit_net(
        path,
        num_heads=num_heads,
        context_size=context_size,
        ori_max_pe_len=ori_max_pe_len,
        clamp_time=clamp_time,
    )
    sampling = {**FIT_SAMPLING[version], **{k: v for k, v in kwargs.items() if v is not None}}
    if rule is None and context_size > ori_max_pe_len**2:
        rule = fit_rule("dynntk", decouple=True)  # how the HR files were fine-tuned
    model = OfficialModel(net, FIT_OBJECTIVE[version], rule=rule, source=str(path), **sampling)
    model.resolution = tuple(n * net.patch_size * LATENT_FACTOR for n in net.context_grid)
    model.fit_version = version
    return model
