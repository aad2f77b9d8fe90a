"""Training callbacks."""

from lit_rpe.callbacks.periodic_fid import PeriodicFIDCallback
from lit_rpe.callbacks.sample_grid import SampleGridCallback

__all__ = ["PeriodicFIDCallback", "SampleGridCallback"]
