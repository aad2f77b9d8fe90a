"""Evaluation: the FID Inception network, streamed statistics and the metrics built on them."""

from lit_rpe.eval.inception import (
    FEATURE_DIMS,
    FIDInceptionV3,
    InceptionFeature,
    InceptionV3Layers,
    preprocess_uint8,
    resize_bilinear_tf1,
)
from lit_rpe.eval.inception_weights import (
    PYTORCH_FID_FILENAME,
    PYTORCH_FID_URL,
    TORCH_FIDELITY_FILENAME,
    TORCH_FIDELITY_URL,
    WEIGHTS_ENV_VAR,
    default_weights_dir,
    missing_weights_message,
    resolve_inception_weights,
)
from lit_rpe.eval.scores import (
    InceptionScoreAccumulator,
    MeanStd,
    PrecisionRecall,
    inception_score,
    kernel_inception_distance,
    manifold_radii,
    precision_recall,
)
from lit_rpe.eval.statistics import (
    FeatureStatistics,
    all_gather_rows,
    all_reduce_sum_,
    fid_from_statistics,
    frechet_distance,
    save_statistics_npz,
)
from lit_rpe.eval.swd import (
    SWDResult,
    laplacian_descriptors,
    laplacian_pyramid,
    sliced_wasserstein_distance,
    swd_from_descriptors,
)

__all__ = [
    "FEATURE_DIMS",
    "PYTORCH_FID_FILENAME",
    "PYTORCH_FID_URL",
    "TORCH_FIDELITY_FILENAME",
    "TORCH_FIDELITY_URL",
    "WEIGHTS_ENV_VAR",
    "FIDInceptionV3",
    "FeatureStatistics",
    "InceptionFeature",
    "InceptionScoreAccumulator",
    "InceptionV3Layers",
    "MeanStd",
    "PrecisionRecall",
    "SWDResult",
    "all_gather_rows",
    "all_reduce_sum_",
    "default_weights_dir",
    "fid_from_statistics",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
    "laplacian_descriptors",
    "laplacian_pyramid",
    "manifold_radii",
    "missing_weights_message",
    "precision_recall",
    "preprocess_uint8",
    "resolve_inception_weights",
    "resize_bilinear_tf1",
    "save_statistics_npz",
    "sliced_wasserstein_distance",
    "swd_from_descriptors",
]
