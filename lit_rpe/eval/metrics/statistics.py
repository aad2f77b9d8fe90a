"""Streamed Gaussian feature statistics (float64), their reduction across ranks, FID and sFID.

A ``FeatureStatistics`` holds the count, the sum and the sum of outer products of the features
seen so far. All three are plain sums, so chunks, workers and DDP ranks combine by addition and
the result does not depend on how the samples were split. Mean and (unbiased) covariance are
derived only when needed; ``.npz`` files store (mu, sigma, n) with ADM's key names.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

from lit_rpe.distributed import all_reduce_sum_


class FeatureStatistics:
    """Count, sum and sum of outer products of (N, dim) features, in float64.

    ``update`` adds a chunk; ``merge`` (or ``+``) adds two statistics; ``all_reduce_`` sums
    over DDP ranks. ``mean`` (dim,) and ``covariance()`` (dim, dim, normalised by n - 1 like
    ``np.cov``) are float64 tensors on ``device``.
    """

    def __init__(self, dim: int, device: torch.device | str = "cpu") -> None:
        self.dim = dim
        self.count = 0
        self.total = torch.zeros(dim, dtype=torch.float64, device=device)
        self.outer = torch.zeros(dim, dim, dtype=torch.float64, device=device)

    @property
    def device(self) -> torch.device:
        return self.total.device

    def update(self, features: torch.Tensor) -> FeatureStatistics:
        """Add features (N, dim), any float dtype; accumulated in float64. Returns self."""
        if features.dim() != 2 or features.shape[1] != self.dim:
            raise ValueError(f"expected (N, {self.dim}) features, got {tuple(features.shape)}")
        x = features.detach().to(self.device, torch.float64)
        self.count += x.shape[0]
        self.total += x.sum(0)
        self.outer += x.T @ x
        return self

    def merge(self, other: FeatureStatistics) -> FeatureStatistics:
        """A new statistics object of the union of both sample sets."""
        if other.dim != self.dim:
            raise ValueError(f"cannot merge statistics of dim {self.dim} and {other.dim}")
        merged = FeatureStatistics(self.dim, self.device)
        merged.count = self.count + other.count
        merged.total = self.total + other.total.to(self.device)
        merged.outer = self.outer + other.outer.to(self.device)
        return merged

    __add__ = merge

    def all_reduce_(self) -> FeatureStatistics:
        """Sum count, sum and outer sum over all DDP ranks, in place. Returns self.

        Every rank must call it once, after its last ``update``; a second call would add the
        already-summed totals again.
        """
        count = torch.tensor([float(self.count)], dtype=torch.float64, device=self.device)
        for tensor in (count, self.total, self.outer):
            all_reduce_sum_(tensor)
        self.count = int(count.item())  # exact: float64 holds integers up to 2**53
        return self

    @property
    def mean(self) -> torch.Tensor:
        """Mean feature (dim,), float64."""
        if self.count < 1:
            raise ValueError("no samples accumulated")
        return self.total / self.count

    def covariance(self) -> torch.Tensor:
        """Unbiased sample covariance (dim, dim) = (sum x x^T - n mu mu^T) / (n - 1)."""
        if self.count < 2:
            raise ValueError(f"covariance needs at least 2 samples, have {self.count}")
        mu = self.mean
        return (self.outer - self.count * torch.outer(mu, mu)) / (self.count - 1)

    @classmethod
    def from_moments(cls, mu: np.ndarray, sigma: np.ndarray, count: int) -> FeatureStatistics:
        """Rebuild the sums from (mu, sigma, n), so loaded statistics can be merged further."""
        mu_t = torch.as_tensor(np.asarray(mu), dtype=torch.float64)
        sigma_t = torch.as_tensor(np.asarray(sigma), dtype=torch.float64)
        stats = cls(mu_t.shape[0])
        stats.count = int(count)
        stats.total = mu_t * count
        stats.outer = sigma_t * (count - 1) + count * torch.outer(mu_t, mu_t)
        return stats

    def arrays(self, suffix: str = "") -> dict[str, np.ndarray]:
        """{"mu"+suffix: (dim,), "sigma"+suffix: (dim, dim), "n"+suffix: ()} as float64 numpy."""
        return {
            f"mu{suffix}": self.mean.cpu().numpy(),
            f"sigma{suffix}": self.covariance().cpu().numpy(),
            f"n{suffix}": np.asarray(self.count, dtype=np.int64),
        }

    def save_npz(self, path: str | os.PathLike) -> Path:
        """Write mu, sigma, n to ``path`` (.npz); returns the path."""
        return save_statistics_npz(path, pool=self)

    @classmethod
    def load_npz(
        cls, path: str | os.PathLike, suffix: str = "", count: int | None = None
    ) -> FeatureStatistics:
        """Read mu+suffix, sigma+suffix and n+suffix (suffix "_s" for sFID's spatial statistics).

        ADM's reference batches store no n; pass ``count`` (their number of images) for those.
        """
        with np.load(path) as data:
            if f"n{suffix}" in data:
                count = int(data[f"n{suffix}"])
            elif count is None:
                raise KeyError(f"{path} has no n{suffix}; pass count= (the number of images)")
            return cls.from_moments(data[f"mu{suffix}"], data[f"sigma{suffix}"], count)


def save_statistics_npz(
    path: str | os.PathLike,
    pool: FeatureStatistics,
    spatial: FeatureStatistics | None = None,
) -> Path:
    """Write pool statistics as mu/sigma/n and spatial ones as mu_s/sigma_s/n_s (ADM's names)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = pool.arrays()
    if spatial is not None:
        arrays.update(spatial.arrays("_s"))
    with open(path, "wb") as f:  # a file object keeps numpy from appending another ".npz"
        np.savez(f, **arrays)
    return path


# The largest imaginary part on the diagonal of sqrtm's root accepted as rounding noise, as in
# pytorch-fid and ADM's evaluator (both raise above it; we retry with the eps offset first).
IMAGINARY_TOLERANCE = 1e-3


@dataclass(frozen=True)
class FrechetResult:
    """A Fréchet distance and how its matrix square root was obtained.

    value: the distance. retried: sqrtm's root of ``sigma1 sigma2`` was unusable (``reason``
    says how: not finite, or a large imaginary part) and the value uses the root of
    ``(sigma1 + eps I)(sigma2 + eps I)`` instead, pytorch-fid's fallback. Published FIDs have
    been wrong for this reason; a retried value is close to, not equal to, the exact one.
    """

    value: float
    retried: bool = False
    reason: str = ""

    def __float__(self) -> float:
        return self.value


def frechet_result(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = 1e-6,
    method: str = "sqrtm",
) -> FrechetResult:
    """||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)), in float64.

    method "sqrtm" follows the reference implementations (pytorch-fid, ADM): scipy's sqrtm of
    the product, keeping the real part when the imaginary one is rounding noise. A root that is
    not finite (a singular product) or whose diagonal has an imaginary part above
    ``IMAGINARY_TOLERANCE`` is detected, recomputed with ``eps`` added to both diagonals, and
    reported: a warning, and ``retried``/``reason`` in the result. A root still broken after
    that raises ValueError.
    method "eigh" computes tr (sigma1 sigma2)^(1/2) as the sum of square roots of the
    eigenvalues of the symmetric PSD matrix s1^(1/2) sigma2 s1^(1/2) (s1^(1/2) from an
    eigen-decomposition, negative rounding clipped to 0): the same quantity, no complex numbers
    and no retry.
    """
    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, np.float64)),
        np.atleast_1d(np.asarray(mu2, np.float64)),
    )
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape}")
    diff = mu1 - mu2
    reason = ""
    if method == "sqrtm":
        tr_covmean, reason = _trace_sqrt_product_sqrtm(sigma1, sigma2, eps)
    elif method == "eigh":
        tr_covmean = _trace_sqrt_product_eigh(sigma1, sigma2)
    else:
        raise ValueError(f"unknown method {method!r}; valid: sqrtm, eigh")
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)
    return FrechetResult(value, retried=bool(reason), reason=reason)


def _root_problem(covmean: np.ndarray) -> str:
    """What makes sqrtm's root unusable ("" when nothing does)."""
    if not np.isfinite(covmean).all():
        return "the square root of sigma1 sigma2 is not finite (a singular product)"
    if np.iscomplexobj(covmean):
        imag = float(np.abs(np.diagonal(covmean).imag).max())
        if imag > IMAGINARY_TOLERANCE:
            return (
                f"the square root of sigma1 sigma2 has an imaginary part of {imag:.3g} on its "
                f"diagonal (above {IMAGINARY_TOLERANCE:g}; a near-singular product)"
            )
    return ""


def _trace_sqrt_product_sqrtm(
    sigma1: np.ndarray, sigma2: np.ndarray, eps: float
) -> tuple[float, str]:
    """tr (sigma1 sigma2)^(1/2) by scipy's sqrtm, and why it was retried ("" if it was not)."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    reason = _root_problem(covmean)
    if reason:
        warnings.warn(
            f"FID: {reason}; retrying with {eps} added to both covariance diagonals",
            stacklevel=4,
        )
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
        still = _root_problem(covmean)
        if still:
            raise ValueError(
                f"FID: {still}, even with {eps} added to both diagonals; method='eigh' computes "
                "the distance without a general matrix square root"
            )
    return float(np.trace(covmean).real), reason


def _trace_sqrt_product_eigh(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
        values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
        return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T

    root1 = psd_sqrt(sigma1)
    inner = root1 @ sigma2 @ root1
    values = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sqrt(np.clip(values, 0, None)).sum())


def fid_result_from_statistics(
    a: FeatureStatistics, b: FeatureStatistics, eps: float = 1e-6, method: str = "sqrtm"
) -> FrechetResult:
    """FID (pool features) or sFID (spatial features) between two accumulated statistics, with
    whether its square root had to be retried (``FrechetResult``)."""
    return frechet_result(
        a.mean.cpu().numpy(),
        a.covariance().cpu().numpy(),
        b.mean.cpu().numpy(),
        b.covariance().cpu().numpy(),
        eps=eps,
        method=method,
    )
