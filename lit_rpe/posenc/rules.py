"""Inference rules: how positions and frequencies are chosen at a test grid (docs/DESIGN.md 3c).

A rule names a position layout and a frequency method, plus the add-ons (per-axis or coupled
scale, per-axis or single tau, attention scale, timestep shift). ``rule_frequencies`` and
``inference_positions`` are the pure functions a forward pass and a sampler call; they never
touch module state.

tau, the magnitude factor on cos and sin (YaRN-type methods, or the ``yarn`` attention add-on),
is per axis by default, as the official DyPE code applies its mscale to each axis's cos and sin
with that axis's own scale: the row half of every head gets ``tau(s_h)``, the column half
``tau(s_w)``. ``tau_axes="max"`` is the coupled form, one tau (the larger) on both halves. With
RoPE, q.k then gains ``tau_h^2`` on its row part and ``tau_w^2`` on its column part; the additive
``sincos`` table cannot carry a factor into q.k per axis, so there the logits are multiplied by
``tau_h * tau_w`` (``max^2`` when coupled): ``tau^2`` on square grids, as with one tau, and the
geometric mean of the two RoPE factors otherwise (it differs from their mean by
``(tau_h - tau_w)^2 / 2``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from lit_rpe.posenc.addons import (
    ATTENTION_SCALES,
    addon_axis_taus,
    attention_logit_factor,
    default_shift_factor,
    fit_proportion_tau,
)
from lit_rpe.posenc.frequencies import (
    TIME_DEPENDENT_METHODS,
    base_frequencies,
    scaled_axis_frequencies,
)
from lit_rpe.posenc.positions import grid_positions, rpe2d_even_positions, rpe2d_seeded_positions

# rule name -> (position layout, frequency method)
INFERENCE_RULES: dict[str, tuple[str, str]] = {
    "extrapolate": ("grid", "extrapolate"),
    "interpolate": ("grid", "interpolate"),  # w / s on 0..n-1 == unscaled w on i * L / n
    "rpe2d_even": ("rpe2d_even", "extrapolate"),
    "rpe2d_random": ("rpe2d_random", "extrapolate"),
    "ntk": ("grid", "ntk"),
    "yarn": ("grid", "yarn"),
    "ntk_by_parts": ("grid", "ntk_by_parts"),
    "dype_pi": ("grid", "dype_pi"),
    "dype_ntk": ("grid", "dype_ntk"),
    "dype_yarn": ("grid", "dype_yarn"),
    "tasr": ("grid", "tasr"),  # Lumina-Next's time-aware scaled RoPE (frequencies.py)
    "tasr_static": ("grid", "tasr_static"),  # TASR's final base change at every step
}
SCALINGS = ("decoupled", "coupled")
TAU_AXES = ("per_axis", "max", "none")
_METHODS_WITH_TAU = ("yarn", "ntk_by_parts", "dype_yarn")


@dataclass(frozen=True)
class InferenceRule:
    """An inference rule and its add-ons; hashable, so resolved encodings can be cached.

    name: one of ``INFERENCE_RULES``. scaling: ``decoupled`` (s per axis) or ``coupled`` (the
    larger axis scale on both). attention_scale: ``none``, ``yarn`` (YaRN's tau on cos and sin,
    for rules without a tau of their own) or ``proportional``. timestep_shift: the factor a of
    ``t' = a t / (1 + (a - 1) t)``, or ``"auto"`` for ``sqrt(N_test / N_train)``.
    tau_axes: ``per_axis`` (each axis's tau on its half of a head, the default) or ``max`` (the
    larger tau on both; see the module docstring) or ``none`` (the frequency method's own tau
    dropped: FiT's ntk-by-parts has none; add-on factors still apply).
    attention_scale ``fit_pro1`` / ``fit_pro2``: FiT's ``ntkpro1`` / ``ntkpro2`` factor on cos
    and sin (``addons.fit_proportion_tau``).
    lambda_s, lambda_t: DyPE's ``kappa(t) = lambda_s t^lambda_t`` (None: the method's default).
    watershed: TASR's switch time in Lumina's convention (0 = noise; None: ``TASR_WATERSHED``).
    """

    name: str = "extrapolate"
    scaling: Literal["decoupled", "coupled"] = "decoupled"
    attention_scale: Literal["none", "yarn", "proportional", "fit_pro1", "fit_pro2"] = "none"
    timestep_shift: float | Literal["auto"] = 1.0
    tau_axes: Literal["per_axis", "max", "none"] = "per_axis"
    lambda_s: float | None = None
    lambda_t: float | None = None
    watershed: float | None = None

    def __post_init__(self) -> None:
        _check_types(self)
        if self.name not in INFERENCE_RULES:
            raise ValueError(
                f"unknown inference rule {self.name!r}; valid: {', '.join(INFERENCE_RULES)}"
            )
        if self.scaling not in SCALINGS:
            raise ValueError(f"unknown scaling {self.scaling!r}; valid: {', '.join(SCALINGS)}")
        if self.tau_axes not in TAU_AXES:
            raise ValueError(f"unknown tau_axes {self.tau_axes!r}; valid: {', '.join(TAU_AXES)}")
        if self.attention_scale not in ATTENTION_SCALES:
            raise ValueError(
                f"unknown attention scale {self.attention_scale!r}; "
                f"valid: {', '.join(ATTENTION_SCALES)}"
            )
        if (
            self.attention_scale in ("yarn", "fit_pro1", "fit_pro2")
            and self.frequency_method in _METHODS_WITH_TAU
            and self.tau_axes != "none"
        ):
            raise ValueError(
                f"rule {self.name!r} already scales attention by tau^2; "
                f"attention_scale={self.attention_scale!r} would apply it twice"
            )
        if self.timestep_shift != "auto" and not (
            isinstance(self.timestep_shift, int | float) and self.timestep_shift > 0
        ):
            raise ValueError(f"timestep_shift must be > 0 or 'auto', got {self.timestep_shift!r}")
        dype = self.frequency_method.startswith("dype_")
        if not dype and (self.lambda_s is not None or self.lambda_t is not None):
            raise ValueError(f"lambda_s/lambda_t apply to dype_* rules only, not {self.name!r}")
        if self.watershed is not None:
            if self.name != "tasr":
                raise ValueError(f"watershed applies to the tasr rule only, not {self.name!r}")
            if not 0.0 <= self.watershed <= 1.0:
                raise ValueError(f"watershed is a time in [0, 1], got {self.watershed!r}")

    @property
    def positions(self) -> str:
        return INFERENCE_RULES[self.name][0]

    @property
    def label(self) -> str:
        """The rule and every add-on that differs from its default, e.g.
        ``ntk+attn_proportional+shift_auto`` or ``dype_ntk+lambda_s_1.5``: a row of the results
        table, a cell folder and a logged metric name."""
        parts = [self.name]
        for f in dataclasses.fields(self)[1:]:
            value = getattr(self, f.name)
            if value != f.default:
                parts.append(_LABELS.get(f.name, f"{f.name}_{{}}").format(value))
        return "+".join(parts)

    def spec(self) -> str | dict:
        """The shortest YAML form ``parse_rule`` reads back: the name alone when every add-on is
        at its default, else a mapping of the name and the changed fields."""
        changed = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)[1:]
            if getattr(self, f.name) != f.default
        }
        return {"name": self.name, **changed} if changed else self.name

    @property
    def frequency_method(self) -> str:
        return INFERENCE_RULES[self.name][1]

    @property
    def time_dependent(self) -> bool:
        """True when the encoding changes with the sampling time (DyPE, TASR): the sampler must
        pass the step's t."""
        return self.frequency_method in TIME_DEPENDENT_METHODS

    def shift_factor(self, *, train_tokens: int, test_tokens: int) -> float:
        """The timestep-shift factor a for this rule at a test size (tokens per image)."""
        if self.timestep_shift == "auto":
            return default_shift_factor(train_tokens=train_tokens, test_tokens=test_tokens)
        return float(self.timestep_shift)


# How ``label`` writes the add-ons it has always written; any other field: "<field>_<value>".
_LABELS = {
    "attention_scale": "attn_{}",
    "timestep_shift": "shift_{}",
    "scaling": "{}",
    "tau_axes": "tau_{}",
}
RuleSpec = str | Mapping | InferenceRule  # what a YAML file, the CLI or a caller may give


def _check_types(rule: InferenceRule) -> None:
    """The numeric fields hold numbers (YAML's ``1.5``, ``2``; not ``"1.5"`` or ``true``)."""
    for name in ("lambda_s", "lambda_t", "watershed"):
        value = getattr(rule, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"rule field {name} must be a number or null, got {value!r}")


def parse_rule(value: RuleSpec) -> InferenceRule:
    """The one checked constructor of a rule, from a YAML file, the CLI or code.

    value: a rule name (``"dype_ntk"``), a mapping of ``InferenceRule`` fields
    (``{name: dype_ntk, lambda_s: 1.5, timestep_shift: auto}``) or an ``InferenceRule``.
    A wrong field name or value raises ValueError naming the field and the valid choices.
    """
    if isinstance(value, InferenceRule):
        return value
    if isinstance(value, str):
        return InferenceRule(value)
    if not isinstance(value, Mapping):
        raise ValueError(
            f"a rule is a name or a mapping of its fields, got {value!r}; "
            f"names: {', '.join(INFERENCE_RULES)}"
        )
    fields = [f.name for f in dataclasses.fields(InferenceRule)]
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ValueError(f"unknown rule field(s) {unknown}; valid: {', '.join(fields)}")
    if "name" not in value:
        raise ValueError(f"a rule mapping needs a name; valid: {', '.join(INFERENCE_RULES)}")
    return InferenceRule(**value)


@dataclass(frozen=True)
class AxisFrequencies:
    """Resolved frequencies of one forward pass: per-axis (k,) float64 tensors and scalars."""

    h: torch.Tensor
    w: torch.Tensor
    tau_h: float  # multiplies cos and sin of the row half of each head (RoPE)
    tau_w: float  # ... of the column half
    logit_factor: float  # extra factor on attention logits from the attention-scale add-on


def axis_scales(
    train_grid: tuple[int, int], test_grid: tuple[int, int], scaling: str = "decoupled"
) -> tuple[float, float]:
    """Per-axis scales ``s_a = max(1, n_a / L_a)``; ``coupled`` uses the larger on both axes."""
    s_h = max(1.0, test_grid[0] / train_grid[0])
    s_w = max(1.0, test_grid[1] / train_grid[1])
    return (max(s_h, s_w),) * 2 if scaling == "coupled" else (s_h, s_w)


@functools.lru_cache(maxsize=1024)
def rule_frequencies(
    rule: InferenceRule | None,
    *,
    dim: int,
    theta: float,
    train_grid: tuple[int, int],
    test_grid: tuple[int, int],
    t: float | None = None,
) -> AxisFrequencies:
    """Frequencies for one (rule, grid, t): cached, so blocks and batches share one computation.

    rule None means training: unscaled frequencies. dim: per-axis dim (see ``frequencies.py``).
    The returned tensors are shared between calls: treat them as read-only.
    """
    if rule is None:
        base = base_frequencies(dim, theta)
        return AxisFrequencies(base, base, 1.0, 1.0, 1.0)
    if min(test_grid) < 1:
        raise ValueError(f"test grid must have >= 1 token per axis, got {test_grid}")
    s_h, s_w = axis_scales(train_grid, test_grid, rule.scaling)
    common = dict(
        theta=theta, t=t, lambda_s=rule.lambda_s, lambda_t=rule.lambda_t, watershed=rule.watershed
    )
    f_h, tau_h = scaled_axis_frequencies(
        rule.frequency_method, dim, train_len=train_grid[0], scale=s_h, **common
    )
    f_w, tau_w = scaled_axis_frequencies(
        rule.frequency_method, dim, train_len=train_grid[1], scale=s_w, **common
    )
    if rule.tau_axes == "none":
        tau_h = tau_w = 1.0
    # The add-on's tau is 1 for rules that have one of their own (__post_init__), and vice versa.
    add_h, add_w = addon_axis_taus(rule.attention_scale, s_h, s_w)
    fit_pro = fit_proportion_tau(rule.attention_scale, train_grid, test_grid)
    tau_h, tau_w = tau_h * add_h * fit_pro, tau_w * add_w * fit_pro
    if rule.tau_axes == "max":
        tau_h = tau_w = max(tau_h, tau_w)
    logit = attention_logit_factor(
        rule.attention_scale,
        train_tokens=train_grid[0] * train_grid[1],
        test_tokens=test_grid[0] * test_grid[1],
    )
    return AxisFrequencies(f_h, f_w, tau_h, tau_w, logit)


def inference_positions(
    rule: InferenceRule,
    *,
    batch: int,
    test_grid: tuple[int, int],
    max_len: tuple[int, int],
    seeds: Sequence[int] | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions a rule uses at ``test_grid`` (h, w): (pos_h (B, h), pos_w (B, w)) float32.

    max_len: the (rows, cols) position range the model was trained on (rpe2d rules stay inside
    it). ``rpe2d_random`` needs one seed per image so each image's draw is reproducible.
    """
    h, w = test_grid
    if rule.positions == "grid":
        return grid_positions(batch, h, device=device), grid_positions(batch, w, device=device)
    if rule.positions == "rpe2d_even":
        return (
            rpe2d_even_positions(batch, h, max_len[0], device=device),
            rpe2d_even_positions(batch, w, max_len[1], device=device),
        )
    if seeds is None or len(seeds) != batch:
        raise ValueError(f"rpe2d_random needs one seed per image ({batch}), got {seeds!r}")
    return rpe2d_seeded_positions(seeds, h, w, max_len, device=device)
