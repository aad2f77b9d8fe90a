"""Per-axis frequency scaling: PI, NTK-aware, YaRN, NTK-by-parts, DyPE, TASR (docs/DESIGN.md 3c).

Every function here is pure: (method, per-axis dim, theta, training length L, scale s, t) in,
frequencies out. Frequencies are angular (radians per position unit), float64, one per rotary pair:
``w_i = theta^(-2i/dim)`` for ``i in [0, dim/2)``. For the ``sincos`` encoder ``dim`` is the number
of channels of one axis (D/2), so ``w_i`` is DiT's ``10000^(-i/(D/4))``; for ``rope`` it is the
rotary dim of one axis (head_dim/2).

The band blends follow the YaRN / FiT / DyPE reference code: a linear ramp over the *pair index*,
between the pair indices that make ``r`` full rotations over the training length.

TASR (``tasr``, ``tasr_static``) follows Lumina-Next's released code, ``precompute_freqs_cis`` of
``NextDiT`` in ``lumina_next_t2i/models/model.py`` (Alpha-VLLM/Lumina-T2X), where it is called
with ``scale_factor``, ``scale_watershed`` and the sampling ``timestep``:

- Lumina's flow time runs the other way: 0 = noise, 1 = data, so its ``timestep`` is ``1 - t``
  in this suite's convention (t = 1 = noise). Its sampler's time shift
  ``t / (t + a - a t)`` is this suite's ``timestep_shift`` under that same change of variable,
  and the encoding is driven by the shifted time in both.
- While Lumina's time is below ``scale_watershed`` (0.3 by default in its ``sample.py`` and
  inference settings), that is for ``t > 1 - watershed`` here (the noisy start of sampling),
  positions are interpolated: ``w / s`` (PI). From the watershed on (``t <= 1 - watershed``,
  the boundary itself included, as the code's strict ``timestep < scale_watershed``), the base
  changes to ``theta * s``: ``w_i' = w_i s^(-2i/d)``. This is not NTK-aware's
  ``theta s^(d/(d-2))``: the first pair keeps its frequency, and even the slowest pair is
  scaled by ``s^(-(d-2)/d)``, a little less than PI. At the last steps (t -> 0) TASR therefore
  stays at this base change; unlike DyPE it never returns to the unscaled base.
- ``tasr_static`` is that base change at every step, the frequencies TASR ends with (the code's
  behaviour with ``scale_watershed = 0``); ``tasr`` adds the time switch.
- Where the paper and the code disagree: the paper presents a frequency-aware scaled RoPE whose
  base change is tied to a target dimension (the one whose wavelength equals the training
  length) and a time-aware version that moves from PI towards it as sampling proceeds; the
  released code has no target dimension and a single hard switch at ``scale_watershed``. We
  follow the code.
- The code uses one scale for both axes, ``sqrt(H W) / L`` (the geometric mean of the axis
  scales for a square training grid); like every rule here, TASR takes the suite's per-axis
  scales instead (``scaling="decoupled"``; ``coupled`` uses the larger on both axes). The two
  agree on square grids. The code has no magnitude factor (tau = 1); Lumina-Next pairs TASR with
  its proportional attention, available here as ``attention_scale="proportional"``.
"""

from __future__ import annotations

import math

import torch

from lit_rpe.posenc.addons import yarn_tau

FREQUENCY_METHODS = (
    "extrapolate",
    "interpolate",
    "ntk",
    "yarn",
    "ntk_by_parts",
    "dype_pi",
    "dype_ntk",
    "dype_yarn",
    "tasr",
    "tasr_static",
)
# Methods whose frequencies change with the sampling time t (the sampler passes t to the model).
TIME_DEPENDENT_METHODS = ("dype_pi", "dype_ntk", "dype_yarn", "tasr")
# (lambda_s, lambda_t) of kappa(t) = lambda_s * t^lambda_t. dype_ntk follows the official DyPE code
# (exponent 2 t^2); dype_pi and dype_yarn use lambda_s = 1 so that t = 1 is their static method.
DYPE_DEFAULTS = {"dype_pi": (1.0, 2.0), "dype_ntk": (2.0, 2.0), "dype_yarn": (1.0, 2.0)}

# Rotation thresholds (alpha, beta) of the bands, as in the reference code.
YARN_BAND = (32.0, 1.0)  # fast pairs (>= 32 rotations) keep w, slow ones (<= 1) become w / s
NTK_BY_PARTS_PI_BAND = (1.25, 0.75)  # PI below 0.75 rotations, NTK above 1.25
NTK_BY_PARTS_BASE_BAND = (16.0, 2.0)  # unscaled above 16 rotations
# Lumina-Next's default ``scale_watershed``, in Lumina's time (0 = noise): PI for the first 30 %.
TASR_WATERSHED = 0.3


def base_frequencies(dim: int, theta: float = 10000.0) -> torch.Tensor:
    """Unscaled frequencies ``theta^(-2i/dim)``, shape (dim // 2,), float64."""
    return theta ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)


def ntk_theta(dim: int, theta: float, scale: float) -> float:
    """NTK-aware base change ``theta * s^(dim / (dim - 2))``."""
    return theta * scale ** (dim / (dim - 2))


def rotation_pair_index(rotations: float, dim: int, theta: float, train_len: int) -> float:
    """The (fractional) pair index i whose frequency makes ``rotations`` turns over ``train_len``.

    Solves ``train_len * w_i = 2 pi rotations`` for i: ``dim ln(L / (2 pi r)) / (2 ln theta)``.
    """
    return dim * math.log(train_len / (2 * math.pi * rotations)) / (2 * math.log(theta))


def band_ramp(
    fast_rotations: float,
    slow_rotations: float,
    dim: int,
    theta: float,
    train_len: int,
    *,
    high_max: int,
) -> torch.Tensor:
    """Linear ramp over pair indices, 0 for fast pairs and 1 for slow pairs; (dim // 2,) float64.

    ``low = floor(index(fast))``, ``high = ceil(index(slow))``, both clamped to ``[0, high_max]``
    (YaRN/FiT clamp at ``dim - 1``, the DyPE code at ``dim // 2``). Clamping ``low`` as well keeps
    ``low <= high`` when DyPE shrinks the thresholds towards 0; the official code lets ``low`` pass
    ``high`` there, which flips the ramp and leaves the last steps interpolated instead of at the
    base frequencies it converges to everywhere else.
    """
    low = min(
        max(math.floor(rotation_pair_index(fast_rotations, dim, theta, train_len)), 0), high_max
    )
    high = min(
        max(math.ceil(rotation_pair_index(slow_rotations, dim, theta, train_len)), 0), high_max
    )
    span = high - low if high != low else 0.001  # avoid 0/0, as the reference code does
    index = torch.arange(dim // 2, dtype=torch.float64)
    return ((index - low) / span).clamp(0.0, 1.0)


def _ntk_by_parts(
    dim: int, theta: float, train_len: int, scale: float, kappa: float
) -> torch.Tensor:
    """Three bands: PI (slow pairs) -> NTK -> unscaled (fast pairs); thresholds times ``kappa``."""
    base = base_frequencies(dim, theta)
    if kappa == 0.0:  # every threshold at 0 rotations: all pairs are "fast"
        return base
    pi, ntk = base / scale, base_frequencies(dim, ntk_theta(dim, theta, scale))
    fast, slow = (r * kappa for r in NTK_BY_PARTS_PI_BAND)
    ramp = band_ramp(fast, slow, dim, theta, train_len, high_max=dim // 2)
    mixed = ramp * pi + (1 - ramp) * ntk
    fast, slow = (r * kappa for r in NTK_BY_PARTS_BASE_BAND)
    ramp = band_ramp(fast, slow, dim, theta, train_len, high_max=dim // 2)
    return ramp * mixed + (1 - ramp) * base


def tasr_interpolates(t: float, watershed: float = TASR_WATERSHED) -> bool:
    """Whether TASR uses PI at time ``t`` (1 = noise): Lumina's time ``1 - t`` below ``watershed``.

    ``watershed`` is in Lumina's convention (0 = noise, 1 = data), as its ``scale_watershed``:
    PI for ``t > 1 - watershed``, the ``theta * s`` base from ``t = 1 - watershed`` down to 0.
    """
    return 1.0 - t < watershed


def _check_dim(dim: int) -> None:
    if dim < 4 or dim % 2:
        raise ValueError(f"per-axis dim must be even and >= 4, got {dim}")


def scaled_axis_frequencies(
    method: str,
    dim: int,
    *,
    theta: float = 10000.0,
    train_len: int,
    scale: float,
    t: float | None = None,
    lambda_s: float | None = None,
    lambda_t: float | None = None,
    watershed: float | None = None,
) -> tuple[torch.Tensor, float]:
    """Frequencies of one axis at a given scale ``s`` (the general form of ``axis_frequencies``).

    ``scale`` is clamped below at 1 (every method is the identity when s <= 1). ``t`` in [0, 1]
    (1 = noise) is required by the time-dependent methods (``TIME_DEPENDENT_METHODS``);
    ``lambda_s``/``lambda_t`` override the ``dype_*`` methods' ``kappa(t) = lambda_s *
    t^lambda_t`` defaults (``DYPE_DEFAULTS``); ``watershed`` (in [0, 1], Lumina's time) overrides
    ``tasr``'s ``TASR_WATERSHED``.
    Returns ((dim // 2,) float64 frequencies, tau).
    """
    if method not in FREQUENCY_METHODS:
        raise ValueError(
            f"unknown frequency method {method!r}; valid: {', '.join(FREQUENCY_METHODS)}"
        )
    _check_dim(dim)
    if train_len < 1:
        raise ValueError(f"train_len must be >= 1, got {train_len}")
    if theta <= 1:
        raise ValueError(f"theta must be > 1, got {theta}")
    kappa = None
    if method in TIME_DEPENDENT_METHODS:
        if t is None:
            raise ValueError(f"{method} needs the sampling time t in [0, 1] (1 = noise), got None")
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"{method} needs t in [0, 1] (1 = noise), got {t}")
    watershed = TASR_WATERSHED if watershed is None else float(watershed)
    if not 0.0 <= watershed <= 1.0:
        raise ValueError(f"the TASR watershed is a time in [0, 1], got {watershed}")
    if method.startswith("dype_"):
        default_s, default_t = DYPE_DEFAULTS[method]
        lam_s = default_s if lambda_s is None else lambda_s
        lam_t = default_t if lambda_t is None else lambda_t
        kappa = lam_s * t**lam_t
    s = max(1.0, float(scale))
    base = base_frequencies(dim, theta)
    if s == 1.0 or method == "extrapolate":
        return base, 1.0
    if method == "interpolate":
        return base / s, 1.0
    if method == "ntk":
        return base_frequencies(dim, ntk_theta(dim, theta, s)), 1.0
    if method == "yarn":
        ramp = band_ramp(*YARN_BAND, dim, theta, train_len, high_max=dim - 1)
        return ramp * base / s + (1 - ramp) * base, yarn_tau(s)
    if method == "ntk_by_parts":
        return _ntk_by_parts(dim, theta, train_len, s, 1.0), yarn_tau(s)
    if method == "dype_pi":
        return base / s**kappa, 1.0
    if method == "dype_ntk":
        return base_frequencies(dim, max(theta, ntk_theta(dim, theta, s**kappa))), 1.0
    if method == "tasr_static" or (method == "tasr" and not tasr_interpolates(t, watershed)):
        return base_frequencies(dim, theta * s), 1.0  # Lumina's base change (not theta s^(d/(d-2)))
    if method == "tasr":
        return base / s, 1.0
    return _ntk_by_parts(dim, theta, train_len, s, kappa), yarn_tau(s)  # dype_yarn


def axis_frequencies(
    method: str,
    dim: int,
    *,
    theta: float = 10000.0,
    train_len: int,
    test_len: int,
    t: float | None = None,
) -> tuple[torch.Tensor, float]:
    """Angular frequencies of one axis for ``test_len`` tokens on a model trained at ``train_len``.

    method: one of ``FREQUENCY_METHODS``; dim: the per-axis rotary dim (even, >= 4);
    t: sampling time in [0, 1] (1 = noise), required by ``TIME_DEPENDENT_METHODS``.
    Returns ``(freqs, tau)``: (dim // 2,) float64 frequencies and the factor that multiplies cos
    and sin (1.0 where the method has none). The scale is ``s = max(1, test_len / train_len)``.
    """
    if test_len < 1:
        raise ValueError(f"test_len must be >= 1, got {test_len}")
    if train_len < 1:
        raise ValueError(f"train_len must be >= 1, got {train_len}")
    return scaled_axis_frequencies(
        method, dim, theta=theta, train_len=train_len, scale=test_len / train_len, t=t
    )
