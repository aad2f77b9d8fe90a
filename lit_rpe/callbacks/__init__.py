"""Training callbacks: ``SampleGridCallback`` (PNG grids of the EMA during and after training)
and ``PeriodicFIDCallback`` (``val/fid`` every n steps). Names are imported on first use."""

from lit_rpe._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {"PeriodicFIDCallback": "periodic_fid", "SampleGridCallback": "sample_grid"},
)
