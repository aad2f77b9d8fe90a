"""Training callbacks: ``SampleGridCallback`` (PNG grids of the EMA during and after training)
and ``ResolutionEvalCallback`` (FID/IS, SWD and validation loss at several resolutions and
inference rules every n steps) and ``DivergenceGuard`` (stops a run whose loss runs away).
Names are imported on first use."""

from lit_rpe._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "DivergenceGuard": "divergence",
        "ResolutionEvalCallback": "resolution_eval",
        "SampleGridCallback": "sample_grid",
    },
)
