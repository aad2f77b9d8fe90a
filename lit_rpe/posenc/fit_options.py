"""FiT's sampling options (whlzy/FiT ``sample_fit*_ddp.py``) as the suite's inference rules.

``--interpolation`` picks FiT's ``custom_freqs``; ``--decouple`` scales each axis by its own
length (else both by the longer one); ``--ori-max-pe-len`` is the training length L the scale
``s = max(1, n / L)`` refers to, which is a property of the model here
(``load_official(..., ori_max_pe_len=...)``, default 16: every released file).

========== ==================== ======================================================
FiT        custom_freqs         suite rule
========== ==================== ======================================================
no         normal               ``extrapolate``
linear     linear               ``interpolate`` (PI)
dynntk     ntk-aware            ``ntk``
partntk    ntk-by-parts         ``ntk_by_parts`` with ``tau_axes="none"`` (FiT: no tau)
yarn       yarn                 ``yarn`` with ``tau_axes="max"`` (FiT: tau of the longer axis)
ntkpro1    ntk-aware-pro1       ``ntk`` + ``attention_scale="fit_pro1"``
ntkpro2    ntk-aware-pro2       ``ntk`` + ``attention_scale="fit_pro2"``
========== ==================== ======================================================

``scaling`` is ``decoupled`` with ``--decouple`` and ``coupled`` without. Every formula is the
suite's (frequencies.py, addons.py); tests/posenc/test_fit_options.py holds them to FiT's
``rope.py`` on closed cases.
"""

from __future__ import annotations

from lit_rpe.posenc.rules import InferenceRule

# interpolation name -> (rule name, extra InferenceRule fields)
FIT_INTERPOLATIONS: dict[str, tuple[str, dict]] = {
    "no": ("extrapolate", {}),
    "linear": ("interpolate", {}),
    "dynntk": ("ntk", {}),
    "partntk": ("ntk_by_parts", {"tau_axes": "none"}),
    "yarn": ("yarn", {"tau_axes": "max"}),
    "ntkpro1": ("ntk", {"attention_scale": "fit_pro1"}),
    "ntkpro2": ("ntk", {"attention_scale": "fit_pro2"}),
}


def fit_rule(interpolation: str, *, decouple: bool = False) -> InferenceRule:
    """The inference rule of FiT's ``--interpolation <name> [--decouple]``."""
    if interpolation not in FIT_INTERPOLATIONS:
        raise ValueError(
            f"unknown FiT interpolation {interpolation!r}; valid: {', '.join(FIT_INTERPOLATIONS)}"
        )
    name, extra = FIT_INTERPOLATIONS[interpolation]
    return InferenceRule(name, scaling="decoupled" if decouple else "coupled", **extra)
