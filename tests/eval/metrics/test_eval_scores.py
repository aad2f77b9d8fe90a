"""Inception Score, KID and precision/recall against values computed by hand or brute force."""

import math

import pytest
import torch

from lit_rpe.eval.metrics import (
    InceptionScoreAccumulator,
    inception_score,
    kernel_inception_distance,
    manifold_radii,
    precision_recall,
)


def test_inception_score_of_uniform_predictions_is_one():
    score = inception_score(torch.zeros(50, 1008))
    assert score.mean == pytest.approx(1.0, abs=1e-12)
    assert score.std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("k", [1, 4, 10])
def test_confident_predictions_spread_over_k_classes_score_k(k):
    labels = torch.arange(200) % k  # every split of 20 holds each class equally often
    logits = torch.nn.functional.one_hot(labels, 1008).double() * 80.0
    score = inception_score(logits, splits=10)
    assert score.mean == pytest.approx(k, rel=1e-9)
    assert score.std == pytest.approx(0.0, abs=1e-9)


def brute_force_inception_score(logits: torch.Tensor, splits: int) -> list[float]:
    """Per-split exp(mean KL(p_i || p_split)), with explicit loops over samples and classes."""
    probs = torch.softmax(logits.double(), dim=1).tolist()
    n, scores = len(probs), []
    for s in range(splits):
        part = probs[s * n // splits : (s + 1) * n // splits]
        marginal = [sum(p[c] for p in part) / len(part) for c in range(len(part[0]))]
        kls = [
            sum(pc * math.log(pc / qc) for pc, qc in zip(p, marginal, strict=True)) for p in part
        ]
        scores.append(math.exp(sum(kls) / len(kls)))
    return scores


def test_inception_score_matches_a_brute_force_computation():
    logits = torch.randn(23, 6, generator=torch.Generator().manual_seed(0)) * 2
    scores = brute_force_inception_score(logits, splits=5)  # uneven splits: 4, 5, 4, 5, 5
    mean = sum(scores) / 5
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / 5)
    result = inception_score(logits, splits=5)
    assert result.mean == pytest.approx(mean, rel=1e-12)
    assert result.std == pytest.approx(std, rel=1e-9)


def test_streamed_inception_score_ignores_chunking_and_order():
    logits = torch.randn(103, 9, generator=torch.Generator().manual_seed(1)) * 3
    expected = inception_score(logits, splits=10)
    order = torch.randperm(103, generator=torch.Generator().manual_seed(2))
    acc = InceptionScoreAccumulator(total=103, num_classes=9, splits=10)
    for chunk in order.split(17):
        acc.update(logits[chunk], chunk)
    streamed = acc.compute()
    assert streamed.mean == pytest.approx(expected.mean, rel=1e-12)
    assert streamed.std == pytest.approx(expected.std, rel=1e-9)
    with pytest.raises(ValueError, match="indices"):
        acc.update(logits[:1], torch.tensor([103]))
    empty = InceptionScoreAccumulator(total=103, num_classes=9)
    empty.update(logits[:50], torch.arange(50))
    with pytest.raises(ValueError, match="no samples"):
        empty.compute()


def poly_kernel(x: list[float], y: list[float]) -> float:
    return (sum(a * b for a, b in zip(x, y, strict=True)) / len(x) + 1.0) ** 3


def brute_force_mmd2(xs: list[list[float]], ys: list[list[float]]) -> float:
    """Unbiased within-set terms (i != j), all m^2 cross terms: the KID estimator."""
    m = len(xs)
    within = sum(
        poly_kernel(a[i], a[j]) for a in (xs, ys) for i in range(m) for j in range(m) if i != j
    )
    cross = sum(poly_kernel(x, y) for x in xs for y in ys)
    return within / (m * (m - 1)) - 2 * cross / m**2


def test_kid_on_whole_sets_matches_a_brute_force_mmd():
    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(7, 3, generator=g), torch.randn(7, 3, generator=g) + 0.7
    expected = brute_force_mmd2(real.double().tolist(), fake.double().tolist())
    # One subset of all samples: the permutation drawn does not change the estimate.
    kid = kernel_inception_distance(real, fake, subsets=1, subset_size=7)
    assert kid.mean == pytest.approx(expected, rel=1e-12)
    assert kid.std == 0.0


def test_kid_subsets_are_seeded_draws_without_replacement():
    g = torch.Generator().manual_seed(4)
    real, fake = torch.randn(12, 4, generator=g), torch.randn(9, 4, generator=g) * 1.5
    kid = kernel_inception_distance(real, fake, subsets=5, subset_size=6, seed=11)
    # Documented draw order: per subset, a permutation of the real rows, then of the fake rows.
    draws = torch.Generator().manual_seed(11)
    values = []
    for _ in range(5):
        pick_real = torch.randperm(12, generator=draws)[:6]
        pick_fake = torch.randperm(9, generator=draws)[:6]
        values.append(
            brute_force_mmd2(real[pick_real].double().tolist(), fake[pick_fake].double().tolist())
        )
    mean = sum(values) / 5
    assert kid.mean == pytest.approx(mean, rel=1e-12)
    assert kid.std == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in values) / 5), rel=1e-9)
    assert kernel_inception_distance(real, fake, subsets=5, subset_size=6, seed=11) == kid
    with pytest.raises(ValueError, match="subset_size"):
        kernel_inception_distance(real, fake, subset_size=10)


def brute_force_precision_recall(real: list, fake: list, k: int) -> tuple[float, float]:
    def dist2(a, b):
        return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))

    def radii(points):
        # Sorted distances to all points of the set, itself included at 0: entry k.
        return [sorted(dist2(p, q) for q in points)[k] for p in points]

    def covered(manifold, rad, queries):
        inside = [
            any(dist2(q, m) <= r for m, r in zip(manifold, rad, strict=True)) for q in queries
        ]
        return sum(inside) / len(inside)

    return covered(real, radii(real), fake), covered(fake, radii(fake), real)


def test_precision_recall_on_a_line_by_hand():
    real = torch.arange(10, dtype=torch.float64)[:, None]  # 0, 1, ..., 9
    fake = torch.tensor([[0.5], [1.5], [2.5], [50.0]], dtype=torch.float64)
    # Real radii (k = 3): 3 at the ends (0 -> 3), 2 inside (5 -> 3 or 7). The outlier 50 is
    # 41 from the nearest real point: precision 3/4. The outlier's own radius (its third
    # neighbour, 0.5, is 49.5 away) swallows every real point: recall 1.
    assert manifold_radii(real, k=3).sqrt()[[0, 5, 9]].tolist() == [3.0, 2.0, 3.0]
    result = precision_recall(real, fake, k=3, dtype=torch.float64)
    assert result.precision == 0.75
    assert result.recall == 1.0


def test_precision_recall_match_brute_force_on_random_sets():
    g = torch.Generator().manual_seed(5)
    real = torch.randn(40, 5, generator=g, dtype=torch.float64)
    fake = torch.randn(30, 5, generator=g, dtype=torch.float64) * 0.7 + 0.8
    expected = brute_force_precision_recall(real.tolist(), fake.tolist(), k=3)
    # Small batches exercise the row batching.
    result = precision_recall(real, fake, k=3, batch_size=7, dtype=torch.float64)
    assert (result.precision, result.recall) == pytest.approx(expected, abs=1e-12)
    assert 0.0 < result.precision < 1.0 and 0.0 < result.recall < 1.0


def test_identical_sets_have_full_precision_and_recall():
    points = torch.randn(25, 8, generator=torch.Generator().manual_seed(6))
    assert tuple(precision_recall(points, points.clone())) == (1.0, 1.0)


def test_manifold_radii_is_the_kth_other_neighbour():
    points = torch.randn(15, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    for k in (1, 3):
        radii = manifold_radii(points, k=k, batch_size=4)
        for i, p in enumerate(points):
            others = sorted(float((p - q).square().sum()) for j, q in enumerate(points) if j != i)
            assert radii[i].item() == pytest.approx(others[k - 1], rel=1e-12)
    with pytest.raises(ValueError, match="more than k"):
        manifold_radii(points[:3], k=3)
