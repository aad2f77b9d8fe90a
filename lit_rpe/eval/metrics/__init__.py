"""Metric maths, independent of models and grids.

- ``inception``, ``inception_weights``: the TF-compatible FID Inception v3 and its weight file.
- ``statistics``: streamed float64 feature statistics, FID and sFID; ``scores``: IS, KID,
  precision/recall; ``swd``: sliced Wasserstein distance on Laplacian pyramids.
- ``object_metrics``: exact per-image object measures (count, size, class, edge width) for
  the shapes data set, no network needed.
- ``references``: centre-cropped validation images and their cached statistics.
- ``val_loss``: the flow-matching validation loss at any resolution and rule.

Names are imported on first use.
"""

from lit_rpe._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "FEATURE_DIMS": "inception",
        "FIDInceptionV3": "inception",
        "FeatureStatistics": "statistics",
        "FrechetResult": "statistics",
        "InceptionFeature": "inception",
        "InceptionScoreAccumulator": "scores",
        "InceptionV3Layers": "inception",
        "MeanStd": "scores",
        "PYTORCH_FID_FILENAME": "inception_weights",
        "PYTORCH_FID_URL": "inception_weights",
        "PrecisionRecall": "scores",
        "SWDResult": "swd",
        "TORCH_FIDELITY_FILENAME": "inception_weights",
        "TORCH_FIDELITY_URL": "inception_weights",
        "WEIGHTS_ENV_VAR": "inception_weights",
        "default_weights_dir": "inception_weights",
        "fid_result_from_statistics": "statistics",
        "frechet_result": "statistics",
        "inception_score": "scores",
        "kernel_inception_distance": "scores",
        "laplacian_descriptors": "swd",
        "laplacian_pyramid": "swd",
        "manifold_radii": "scores",
        "missing_weights_message": "inception_weights",
        "precision_recall": "scores",
        "preprocess_uint8": "inception",
        "resize_bilinear_tf1": "inception",
        "resolve_inception_weights": "inception_weights",
        "save_statistics_npz": "statistics",
        "swd_from_descriptors": "swd",
    },
)
