"""Inference add-ons valid with any rule: attention logit scale and timestep shift.

Both are pure functions of token counts (and t); see docs/DESIGN.md section 3c.
"""

from __future__ import annotations

import math

import torch

ATTENTION_SCALES = ("none", "yarn", "proportional", "fit_pro1", "fit_pro2")
# FiT's "ntk-aware-pro" factors on cos and sin (whlzy/FiT rope.py): the side length (pro1) or the
# token count (pro2) of the test grid against the training one.
FIT_PROPORTIONS = ("fit_pro1", "fit_pro2")


def yarn_tau(scale: float) -> float:
    """YaRN's magnitude factor tau = 0.1 ln s + 1 for s > 1, else 1. It multiplies cos and sin."""
    return 0.1 * math.log(scale) + 1.0 if scale > 1.0 else 1.0


def addon_axis_taus(kind: str, scale_h: float, scale_w: float) -> tuple[float, float]:
    """The (row, column) factors an attention-scale add-on puts on cos and sin.

    ``yarn`` -> ``(tau(s_h), tau(s_w))``, YaRN's tau of each axis's scale (a rule folds them into
    one with ``tau_axes="max"``); ``none`` and ``proportional`` -> (1, 1).
    """
    if kind not in ATTENTION_SCALES:
        raise ValueError(f"unknown attention scale {kind!r}; valid: {', '.join(ATTENTION_SCALES)}")
    return (yarn_tau(scale_h), yarn_tau(scale_w)) if kind == "yarn" else (1.0, 1.0)


def fit_proportion(test_len: float, train_len: float) -> float:
    """FiT's ``get_proportion``: ``sqrt(ln(2 L) / ln(L_train))`` when ``2 L > L_train``, else 1.

    The doubling is FiT's own (rope.py), so the factor exceeds 1 already at the training size
    (sqrt(ln 32 / ln 16) = 1.118 for L = L_train = 16). It multiplies cos and sin.
    """
    if train_len < 2 or test_len < 1:
        raise ValueError(f"FiT proportion needs train_len >= 2 and test_len >= 1, got {train_len}")
    doubled = 2 * test_len
    return 1.0 if doubled / train_len <= 1 else math.sqrt(math.log(doubled) / math.log(train_len))


def fit_proportion_tau(kind: str, train_grid: tuple[int, int], test_grid: tuple[int, int]) -> float:
    """The factor FiT's ``ntkpro1`` / ``ntkpro2`` put on cos and sin of both axis halves.

    ``fit_pro1``: ``fit_proportion(max(h, w), L)`` with L the larger training side;
    ``fit_pro2``: ``fit_proportion(h w, L_h L_w)`` (tokens). Any other kind -> 1.
    """
    if kind == "fit_pro1":
        return fit_proportion(max(test_grid), max(train_grid))
    if kind == "fit_pro2":
        return fit_proportion(test_grid[0] * test_grid[1], train_grid[0] * train_grid[1])
    return 1.0


def attention_logit_factor(kind: str, *, train_tokens: int, test_tokens: int) -> float:
    """Factor that an attention-scale add-on puts on the logits directly (on top of 1/sqrt(dim)).

    ``proportional`` -> sqrt(log N_test / log N_train), Lumina-Next's proportional attention,
    N = tokens per image (applied below the training size too, where it is < 1); ``none`` -> 1;
    ``yarn`` -> 1 as well: its tau acts through cos and sin, per axis (``addon_axis_taus``),
    and multiplies the logits by tau^2 from there; so do ``fit_pro1``/``fit_pro2``
    (``fit_proportion_tau``).
    """
    if kind not in ATTENTION_SCALES:
        raise ValueError(f"unknown attention scale {kind!r}; valid: {', '.join(ATTENTION_SCALES)}")
    if train_tokens < 2 or test_tokens < 1:
        raise ValueError(
            f"attention scale needs train_tokens >= 2 and test_tokens >= 1, "
            f"got {train_tokens} and {test_tokens}"
        )
    if kind != "proportional":
        return 1.0
    return math.sqrt(math.log(max(test_tokens, 2)) / math.log(train_tokens))


def default_shift_factor(*, train_tokens: int, test_tokens: int) -> float:
    """The resolution-dependent shift a = sqrt(N_test / N_train) (N = tokens per image)."""
    if train_tokens < 1 or test_tokens < 1:
        raise ValueError(f"token counts must be >= 1, got {train_tokens} and {test_tokens}")
    return math.sqrt(test_tokens / train_tokens)


def timestep_shift(t: torch.Tensor | float, a: float) -> torch.Tensor | float:
    """Shift sampling times towards noise: t' = a t / (1 + (a - 1) t).

    t in [0, 1] (1 = noise); a > 0, a = 1 is the identity. Maps 0 -> 0 and 1 -> 1, monotone.
    Works on floats and on tensors of any shape.
    """
    if a <= 0:
        raise ValueError(f"timestep shift factor must be > 0, got {a}")
    return a * t / (1 + (a - 1) * t)
