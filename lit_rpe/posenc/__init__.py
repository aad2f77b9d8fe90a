"""Positional encodings: positions, frequency scaling, encoders and inference rules.

Conventions (docs/DESIGN.md): positions are per-sample data (B, n) per axis; time t runs
1 = noise to 0 = data; every resolution- or time-dependent quantity is a pure function of
its inputs.
"""

from lit_rpe.posenc.addons import (
    ATTENTION_SCALES,
    addon_axis_taus,
    attention_logit_factor,
    default_shift_factor,
    fit_proportion,
    fit_proportion_tau,
    timestep_shift,
    yarn_tau,
)
from lit_rpe.posenc.encoders import ENCODERS, apply_rope, rope_tables, sincos_embedding
from lit_rpe.posenc.encoding import PositionalEncoding, encode_positions
from lit_rpe.posenc.fit_options import FIT_INTERPOLATIONS, fit_rule
from lit_rpe.posenc.frequencies import (
    DYPE_DEFAULTS,
    FREQUENCY_METHODS,
    TASR_WATERSHED,
    TIME_DEPENDENT_METHODS,
    axis_frequencies,
    band_ramp,
    base_frequencies,
    ntk_theta,
    rotation_pair_index,
    scaled_axis_frequencies,
    tasr_interpolates,
)
from lit_rpe.posenc.positions import (
    TRAINING_POSITIONS,
    grid_positions,
    rpe2d_even_positions,
    rpe2d_positions,
    rpe2d_seeded_positions,
    training_positions,
)
from lit_rpe.posenc.rules import (
    INFERENCE_RULES,
    SCALINGS,
    TAU_AXES,
    AxisFrequencies,
    InferenceRule,
    axis_scales,
    inference_positions,
    parse_rule,
    rule_frequencies,
)

__all__ = [
    "ATTENTION_SCALES",
    "DYPE_DEFAULTS",
    "ENCODERS",
    "FIT_INTERPOLATIONS",
    "FREQUENCY_METHODS",
    "INFERENCE_RULES",
    "SCALINGS",
    "TASR_WATERSHED",
    "TAU_AXES",
    "TIME_DEPENDENT_METHODS",
    "TRAINING_POSITIONS",
    "AxisFrequencies",
    "InferenceRule",
    "PositionalEncoding",
    "addon_axis_taus",
    "apply_rope",
    "attention_logit_factor",
    "axis_frequencies",
    "axis_scales",
    "band_ramp",
    "base_frequencies",
    "default_shift_factor",
    "encode_positions",
    "fit_proportion",
    "fit_proportion_tau",
    "fit_rule",
    "grid_positions",
    "inference_positions",
    "parse_rule",
    "ntk_theta",
    "rope_tables",
    "rotation_pair_index",
    "rpe2d_even_positions",
    "rpe2d_positions",
    "rpe2d_seeded_positions",
    "rule_frequencies",
    "scaled_axis_frequencies",
    "sincos_embedding",
    "tasr_interpolates",
    "timestep_shift",
    "training_positions",
    "yarn_tau",
]
