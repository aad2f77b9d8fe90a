"""The discrete DDPM noise schedule of the official DiT files, and its respacing.

Forward process (index k = 0 .. T-1, k = T-1 is almost pure noise):
``x_k = sqrt(abar_k) x_0 + sqrt(1 - abar_k) eps`` with ``abar_k = prod_{j <= k} (1 - beta_j)``.
Everything here is float64 numpy maths (the numbers the samplers read step by step as Python
floats); nothing depends on a network.

Respacing (DiT's ``space_timesteps``) keeps a subset S of the T training steps and gives the
kept steps new betas ``1 - abar_k / abar_prev`` so that the shorter chain has the same
cumulative alphas at the kept steps; ``timestep_map[i]`` is the training step the network sees at
step i of the short chain.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TRAIN_STEPS = 1000  # DiT's diffusion_steps


def linear_betas(num_steps: int = TRAIN_STEPS) -> np.ndarray:
    """Ho et al.'s linear schedule stretched to any length (DiT's ``"linear"`` named schedule):
    ``linspace(s 1e-4, s 0.02, num_steps)`` with ``s = 1000 / num_steps``. Shape (num_steps,)."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    scale = 1000 / num_steps
    return np.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=np.float64)


def space_timesteps(num_steps: int, sections: int | str | Sequence[int]) -> list[int]:
    """The training steps a respaced chain keeps, ascending (DiT's / IDDPM's rule).

    sections: an int n (n steps), a string ``"n"`` or ``"n1,n2,..."`` (the T steps are cut into
    equal consecutive sections, the first ``T % len`` one step longer, and section j keeps n_j
    steps at a fractional stride ``(size - 1) / (n_j - 1)``, accumulated and rounded with Python's
    ``round``), or ``"ddimN"`` (the integer stride that gives exactly N steps, from 0).
    E.g. 250 of 1000 -> [0, 4, 8, ..., 497, 502, ..., 995, 999].
    """
    if isinstance(sections, str) and sections.startswith("ddim"):
        wanted = int(sections[len("ddim") :])
        for stride in range(1, num_steps):
            if len(range(0, num_steps, stride)) == wanted:
                return list(range(0, num_steps, stride))
        raise ValueError(f"no integer stride gives exactly {wanted} of {num_steps} steps")
    if isinstance(sections, str):
        counts = [int(c) for c in sections.split(",")]
    elif isinstance(sections, int):
        counts = [sections]
    else:
        counts = [int(c) for c in sections]
    if not counts or min(counts) < 1:
        raise ValueError(f"every section needs >= 1 step, got {sections!r}")
    size_per, extra = divmod(num_steps, len(counts))
    start, kept = 0, []
    for j, count in enumerate(counts):
        size = size_per + (1 if j < extra else 0)
        if size < count:
            raise ValueError(f"cannot take {count} steps from a section of {size} steps")
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        position = 0.0
        for _ in range(count):
            kept.append(start + round(position))
            position += stride
        start += size
    return sorted(set(kept))


class DDPMSchedule:
    """Betas and every derived per-step coefficient of a (possibly respaced) DDPM chain.

    betas: (N,) in (0, 1]. timestep_map: (N,) training step of each chain step (default
    0..N-1); train_steps: length of the training chain (DDPM's T, 1000 for DiT). All arrays
    are (N,) float64:

    - ``alphas_cumprod`` abar_i, ``alphas_cumprod_prev`` abar_{i-1} (1 at i = 0);
    - ``posterior_variance`` ``beta_i (1 - abar_{i-1}) / (1 - abar_i)`` of q(x_{i-1} | x_i, x_0),
      and ``posterior_log_variance_clipped``, its log with entry 0 (where it is 0) replaced by
      entry 1;
    - ``posterior_mean_coef1`` ``beta_i sqrt(abar_{i-1}) / (1 - abar_i)`` (times x_0) and
      ``posterior_mean_coef2`` ``(1 - abar_{i-1}) sqrt(1 - beta_i) / (1 - abar_i)`` (times x_i);
    - ``sqrt_recip_alphas_cumprod``, ``sqrt_recipm1_alphas_cumprod``: x_0 = a x_i - b eps.
    """

    def __init__(
        self,
        betas: np.ndarray | Sequence[float],
        *,
        timestep_map: Sequence[int] | None = None,
        train_steps: int | None = None,
    ):
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or len(betas) < 1:
            raise ValueError(f"betas must be a non-empty 1-D array, got shape {betas.shape}")
        if not ((betas > 0) & (betas <= 1)).all():
            raise ValueError("betas must lie in (0, 1]")
        self.betas = betas
        self.num_steps = len(betas)
        self.timestep_map = list(range(self.num_steps) if timestep_map is None else timestep_map)
        if len(self.timestep_map) != self.num_steps:
            raise ValueError("timestep_map must have one entry per beta")
        self.train_steps = int(train_steps or self.num_steps)

        abar = np.cumprod(1.0 - betas)
        abar_prev = np.append(1.0, abar[:-1])
        self.alphas_cumprod = abar
        self.alphas_cumprod_prev = abar_prev
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / abar)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / abar - 1.0)
        self.posterior_variance = betas * (1.0 - abar_prev) / (1.0 - abar)
        var = self.posterior_variance
        # The variance of step 0 is never used (step 0 adds no noise); a one-step chain has no
        # step 1 to borrow it from, so it keeps log beta there instead of log 0.
        first = var[1] if len(var) > 1 else betas[0]
        self.posterior_log_variance_clipped = np.log(np.append(first, var[1:]))
        self.posterior_mean_coef1 = betas * np.sqrt(abar_prev) / (1.0 - abar)
        self.posterior_mean_coef2 = (1.0 - abar_prev) * np.sqrt(1.0 - betas) / (1.0 - abar)
        # DDPM's "fixed large" variance (for files without learned sigma): beta, its first
        # entry replaced by the posterior variance of step 1.
        self.fixed_large_log_variance = np.log(np.append(first, betas[1:]))

    @classmethod
    def linear(cls, num_steps: int = TRAIN_STEPS) -> DDPMSchedule:
        """DiT's training schedule: ``linear_betas(num_steps)``, unspaced."""
        return cls(linear_betas(num_steps))

    def respace(self, sections: int | str | Sequence[int]) -> DDPMSchedule:
        """A shorter chain on the steps ``space_timesteps(num_steps, sections)`` keeps, with
        betas recomputed so its ``alphas_cumprod`` equal this chain's at the kept steps.
        Respacing to every step recomputes the betas too (as DiT does, rounding included)."""
        keep = set(space_timesteps(self.num_steps, sections))
        betas, mapping, last = [], [], 1.0
        for i, abar in enumerate(self.alphas_cumprod):
            if i in keep:
                betas.append(1.0 - abar / last)
                last = abar
                mapping.append(self.timestep_map[i])
        return DDPMSchedule(np.array(betas), timestep_map=mapping, train_steps=self.train_steps)

    def rule_t(self, index: int) -> float:
        """The flow-convention time of chain step ``index`` for time-dependent positional
        encodings (DyPE) and guidance intervals: ``timestep / train_steps`` in [0, 1), 1 = noise."""
        return self.timestep_map[index] / self.train_steps

    def __repr__(self) -> str:
        return f"DDPMSchedule(num_steps={self.num_steps}, train_steps={self.train_steps})"
