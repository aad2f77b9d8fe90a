"""Streamed float64 feature statistics, their merge/all-reduce, .npz caching, FID and sFID."""

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from lit_rpe.distributed import all_gather_rows
from lit_rpe.eval.metrics import (
    FeatureStatistics,
    InceptionScoreAccumulator,
    fid_result_from_statistics,
    frechet_result,
    inception_score,
    save_statistics_npz,
)


def correlated_features(n: int, dim: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mixing = torch.randn(dim, dim, generator=g, dtype=torch.float64) / dim**0.5
    return torch.randn(n, dim, generator=g, dtype=torch.float64) @ mixing + 0.5 + shift


def reference_fid(x: np.ndarray, y: np.ndarray) -> float:
    """The textbook computation on full feature arrays (np.cov, scipy sqrtm)."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_frechet_distance_of_diagonal_gaussians_by_hand():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var1, var2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    # For commuting covariances: |mu1 - mu2|^2 + sum (sqrt(var1) - sqrt(var2))^2 = 5 + 6.
    for method in ("sqrtm", "eigh"):
        d = frechet_result(mu1, np.diag(var1), mu2, np.diag(var2), method=method).value
        assert d == pytest.approx(11.0, abs=1e-10)


def test_fid_of_a_set_with_itself_is_zero_and_fid_is_symmetric():
    a = FeatureStatistics(24).update(correlated_features(400, 24, seed=0))
    b = FeatureStatistics(24).update(correlated_features(300, 24, seed=1, shift=0.3))
    assert abs(fid_result_from_statistics(a, a).value) < 1e-9
    ab, ba = fid_result_from_statistics(a, b).value, fid_result_from_statistics(b, a).value
    assert ab > 0.1
    assert ab == pytest.approx(ba, rel=1e-9)
    assert fid_result_from_statistics(a, b, method="eigh").value == pytest.approx(ab, rel=1e-9)


def test_streamed_chunks_on_two_ranks_equal_a_direct_computation():
    real, fake = (
        correlated_features(530, 32, seed=2),
        correlated_features(470, 32, seed=3, shift=0.2),
    )
    # Two "ranks", each streaming uneven chunks, then merged.
    rank0, rank1 = FeatureStatistics(32), FeatureStatistics(32)
    for chunk in real[:300].split(70):
        rank0.update(chunk.float())  # features arrive in float32 and are summed in float64
    for chunk in real[300:].split(33):
        rank1.update(chunk.float())
    merged = rank0 + rank1
    direct = real.float().double().numpy()
    assert merged.count == 530
    np.testing.assert_allclose(merged.mean.numpy(), direct.mean(0), rtol=1e-12)
    np.testing.assert_allclose(
        merged.covariance().numpy(), np.cov(direct, rowvar=False), atol=1e-12
    )
    fake_stats = FeatureStatistics(32).update(fake.float())
    expected = reference_fid(direct, fake.float().double().numpy())
    assert fid_result_from_statistics(merged, fake_stats).value == pytest.approx(expected, rel=1e-9)


def test_singular_covariances_stay_finite():
    # Fewer samples than dimensions (a small-sample sFID): both products are rank deficient,
    # sqrtm's root then carries rounding noise that the real part and the eigh route remove.
    x = FeatureStatistics(64).update(correlated_features(20, 64, seed=4))
    y = FeatureStatistics(64).update(correlated_features(20, 64, seed=5, shift=0.1))
    exact = fid_result_from_statistics(x, y, method="eigh").value
    via_sqrtm = fid_result_from_statistics(x, y).value
    assert np.isfinite(exact) and np.isfinite(via_sqrtm)
    assert via_sqrtm == pytest.approx(exact, rel=1e-6)


def test_nonfinite_root_retries_with_the_eps_offset(monkeypatch):
    # scipy's sqrtm can return inf/nan on a singular product; simulate that on the first call
    # and check the reference recipe: retry with eps on both diagonals, and warn.
    calls, real_sqrtm = [], scipy.linalg.sqrtm

    def flaky_sqrtm(matrix):
        calls.append(matrix)
        return np.full_like(matrix, np.nan) if len(calls) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr("lit_rpe.eval.metrics.statistics.scipy.linalg.sqrtm", flaky_sqrtm)
    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 0.0])
    with pytest.warns(UserWarning, match="singular"):
        d = frechet_result(np.zeros(2), s1, np.zeros(2), s2, eps=1e-2).value
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (s1 + 0.01 * np.eye(2)) @ (s2 + 0.01 * np.eye(2)))
    root_trace = np.sqrt(1.01 * 9.01) + np.sqrt(4.01 * 0.01)
    assert d == pytest.approx(14.0 - 2 * root_trace, rel=1e-9)


def duplicated_features(seed: int, n: int = 2, distinct: int = 32, shift: float = 0.0):
    """n samples of ``distinct`` features, each feature twice: a covariance of rank < n in
    2 * distinct dimensions (fewer samples than dimensions, and collinear features)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, distinct, generator=g, dtype=torch.float64) + shift
    return FeatureStatistics(2 * distinct).update(x.repeat_interleave(2, dim=1))


def test_rank_deficient_covariance_root_is_retried_finite_and_reported():
    # sqrtm's root of such a product often has a large imaginary diagonal (pytorch-fid and ADM
    # raise there); the retry with the eps offset gives the exact (eigh) value to ~1e-6.
    retried = 0
    for seed in range(12):
        x, y = duplicated_features(seed), duplicated_features(seed + 100, shift=0.1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's "Matrix is singular" notice
            raw = scipy.linalg.sqrtm(x.covariance().numpy() @ y.covariance().numpy())
        broken = not np.isfinite(raw).all() or np.abs(np.diagonal(raw).imag).max() > 1e-3
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fid_result_from_statistics(x, y)
        exact = fid_result_from_statistics(x, y, method="eigh").value
        assert np.isfinite(result.value)
        assert result.value == pytest.approx(exact, rel=1e-5)
        assert result.retried == broken
        messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        assert any("retrying with 1e-06" in m for m in messages) == broken
        if broken:
            assert "imaginary part" in result.reason or "not finite" in result.reason
            retried += 1
    assert retried >= 1  # the premise: scipy does produce broken roots for such input


def test_large_imaginary_root_retries_with_the_eps_offset(monkeypatch):
    calls, real_sqrtm = [], scipy.linalg.sqrtm

    def noisy_sqrtm(matrix):
        calls.append(matrix)
        root = real_sqrtm(matrix).astype(complex)
        return root + 0.5j * np.eye(len(matrix)) if len(calls) == 1 else root

    monkeypatch.setattr("lit_rpe.eval.metrics.statistics.scipy.linalg.sqrtm", noisy_sqrtm)
    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    with pytest.warns(UserWarning, match="imaginary part of 0.5"):
        result = frechet_result(np.zeros(2), s1, np.zeros(2), s2, eps=1e-2)
    assert result.retried and "imaginary part of 0.5" in result.reason
    root_trace = np.sqrt(1.01 * 9.01) + np.sqrt(4.01 * 1.01)
    assert float(result) == pytest.approx(15.0 - 2 * root_trace, rel=1e-9)
    # the float API is unchanged, and a clean root is not retried
    monkeypatch.setattr("lit_rpe.eval.metrics.statistics.scipy.linalg.sqrtm", real_sqrtm)
    assert frechet_result(np.zeros(2), s1, np.zeros(2), s2).value == pytest.approx(15.0 - 2 * 5.0)
    assert not frechet_result(np.zeros(2), s1, np.zeros(2), s2).retried


def test_root_still_broken_after_the_retry_raises(monkeypatch):
    monkeypatch.setattr(
        "lit_rpe.eval.metrics.statistics.scipy.linalg.sqrtm", lambda m: np.full_like(m, np.inf)
    )
    with pytest.warns(UserWarning, match="not finite"):
        with pytest.raises(ValueError, match="even with 1e-06 added.*method='eigh'"):
            frechet_result(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2))


def test_npz_round_trip_and_merge_after_loading(tmp_path):
    first, second = correlated_features(200, 16, seed=6), correlated_features(150, 16, seed=7)
    stats = FeatureStatistics(16).update(first)
    path = stats.save_npz(tmp_path / "ref" / "stats.npz")
    with np.load(path) as data:
        assert set(data) == {"mu", "sigma", "n"}
        assert int(data["n"]) == 200
    loaded = FeatureStatistics.load_npz(path)
    np.testing.assert_allclose(loaded.mean.numpy(), stats.mean.numpy(), rtol=1e-14)
    np.testing.assert_allclose(loaded.covariance().numpy(), stats.covariance().numpy(), atol=1e-14)
    # (mu, sigma, n) is enough to keep accumulating.
    continued = loaded.update(second)
    everything = FeatureStatistics(16).update(torch.cat([first, second]))
    np.testing.assert_allclose(
        continued.covariance().numpy(), everything.covariance().numpy(), atol=1e-12
    )


def test_pool_and_spatial_statistics_share_a_file_with_adm_key_names(tmp_path):
    pool = FeatureStatistics(8).update(correlated_features(50, 8, seed=8))
    spatial = FeatureStatistics(12).update(correlated_features(50, 12, seed=9))
    path = save_statistics_npz(tmp_path / "ref.npz", pool, spatial)
    with np.load(path) as data:
        assert {"mu", "sigma", "mu_s", "sigma_s"} <= set(data)
    loaded = FeatureStatistics.load_npz(path, suffix="_s")
    assert abs(fid_result_from_statistics(loaded, spatial).value) < 1e-9
    # ADM's reference batches have no n: it has to be given.
    adm = tmp_path / "adm.npz"
    np.savez(adm, mu=pool.mean.numpy(), sigma=pool.covariance().numpy())
    with pytest.raises(KeyError, match="count"):
        FeatureStatistics.load_npz(adm)
    assert FeatureStatistics.load_npz(adm, count=50).count == 50


class _FeaturesAsImages(nn.Module):
    """Lets torchmetrics' FID consume precomputed features: its 'network' is the identity."""

    num_features = 16

    def forward(self, x):
        return x


def test_agrees_with_torchmetrics_fid():
    real, fake = (
        correlated_features(120, 16, seed=10),
        correlated_features(90, 16, seed=11, shift=0.4),
    )
    metric = FrechetInceptionDistance(feature=_FeaturesAsImages())
    metric.update(real.float(), real=True)
    metric.update(fake.float(), real=False)
    ours = fid_result_from_statistics(
        FeatureStatistics(16).update(real.float()), FeatureStatistics(16).update(fake.float())
    ).value
    assert metric.compute().item() == pytest.approx(ours, rel=1e-5)


def test_dimension_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"\(N, 8\)"):
        FeatureStatistics(8).update(torch.zeros(3, 9))
    with pytest.raises(ValueError, match="merge"):
        FeatureStatistics(8).merge(FeatureStatistics(9))
    assert all_gather_rows(torch.ones(2, 3)).shape == (2, 3)  # no process group: unchanged


def _ddp_worker(rank: int, world: int, init_file: str, features, logits, total):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        # Rank r holds an uneven share of the samples: r=0 the first 70, r=1 the rest.
        mine = slice(0, 70) if rank == 0 else slice(70, None)
        stats = FeatureStatistics(features.shape[1]).update(features[mine]).all_reduce_()
        full = FeatureStatistics(features.shape[1]).update(features)
        assert stats.count == full.count
        torch.testing.assert_close(stats.covariance(), full.covariance(), rtol=1e-12, atol=1e-12)
        gathered = all_gather_rows(features[mine])
        assert torch.equal(gathered, features)
        indices = torch.arange(total)[mine]
        acc = InceptionScoreAccumulator(total, logits.shape[1], splits=5)
        acc.update(logits[mine], indices)
        streamed = acc.all_reduce_().compute()
        expected = inception_score(logits, splits=5)
        assert streamed.mean == pytest.approx(expected.mean, rel=1e-12)
        assert streamed.std == pytest.approx(expected.std, rel=1e-9, abs=1e-12)
    finally:
        dist.destroy_process_group()


@pytest.mark.ddp
def test_all_reduce_across_two_gloo_ranks(tmp_path):
    features = correlated_features(110, 6, seed=12)
    logits = torch.randn(110, 7, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    mp.spawn(
        _ddp_worker,
        args=(2, str(tmp_path / "rendezvous"), features, logits, 110),
        nprocs=2,
        join=True,
    )
