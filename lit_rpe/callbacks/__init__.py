"""Training callbacks."""

from lit_rpe.callbacks.sample_grid import SampleGridCallback

__all__ = ["SampleGridCallback"]
