"""Evaluation in three layers: metric maths, one scored cell, and the grid of cells.

- ``metrics``: the metric maths (FID Inception, streamed statistics, IS/KID/precision-recall,
  SWD, object measures of the shapes set, reference statistics, the validation loss).
- ``settings``: ``EvalSettings``, what an evaluation scores and how, of the grid and the
  callback; ``cell``: one cell (model, rule, resolution) scored with every metric, the core
  that the eval grid and ``lit_rpe.training.callbacks.ResolutionEvalCallback`` share;
  ``generation``: seed-indexed generation split across ranks; ``protocol``: the protocol card
  recorded with every number.
- ``grid``: the eval grid runner and its reports (``python -m lit_rpe.eval.grid``).

Names are imported on first use, so ``import lit_rpe.eval.grid.spec`` stays light.
"""

from lit_rpe._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "EvalSettings": "settings",
        "ProtocolCard": "protocol",
        "build_card": "protocol",
    },
)
