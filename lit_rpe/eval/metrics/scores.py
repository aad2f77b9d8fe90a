"""Inception Score, Kernel Inception Distance and precision/recall on Inception features.

- IS (Salimans et al. 2016) on the 1008 unbiased logits, in 10 consecutive splits as
  torch-fidelity and ADM do (ADM's 5000-sample splits are the same thing at 50k samples).
  ``InceptionScoreAccumulator`` streams it: per split it only needs the count, the sum of the
  class probabilities and the sum of sum_c p log p, all additive across ranks.
- KID (Binkowski et al. 2018): the unbiased polynomial-kernel MMD^2 (``polynomial_mmd``, the
  estimator of torch-fidelity and torchmetrics) averaged over random subsets, drawn from a
  seeded generator so the value is reproducible.
- Precision/recall (Kynkaenniemi et al. 2019, as in ADM's evaluator): each set's manifold is
  the union of balls around its samples with radius the distance to the k-th nearest
  neighbour (k = 3); precision is the fraction of generated samples inside the real manifold,
  recall the fraction of real samples inside the generated one.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from lit_rpe.distributed import all_reduce_sum_


class MeanStd(NamedTuple):
    """A metric averaged over splits or subsets: ``mean`` and population ``std`` (floats)."""

    mean: float
    std: float


def _split_scores(prob_sums: torch.Tensor, plogp_sums: torch.Tensor, counts: torch.Tensor):
    # IS of a split = exp(mean_i KL(p_i || q)) with q the split's mean p; the mean KL expands
    # to mean_i sum_c p_ic log p_ic - sum_c q_c log q_c.
    q = prob_sums / counts[:, None]
    mean_kl = plogp_sums / counts - torch.xlogy(q, q).sum(1)
    return mean_kl.exp()


def _probabilities_and_plogp(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    log_p = logits.double().log_softmax(dim=1)
    p = log_p.exp()
    return p, (p * log_p).sum(1)


def inception_score(logits: torch.Tensor, splits: int = 10) -> MeanStd:
    """IS of (N, C) classifier logits (``logits_unbiased`` for the FID Inception).

    Split s holds samples ``s*N//splits`` to ``(s+1)*N//splits - 1`` in the given order
    (torch-fidelity's boundaries, without its shuffle). Returns the mean and std over splits;
    1 for uninformative predictions, up to C for confident predictions spread evenly.
    """
    n = logits.shape[0]
    if n < splits:
        raise ValueError(f"IS with {splits} splits needs at least {splits} samples, got {n}")
    acc = InceptionScoreAccumulator(n, logits.shape[1], splits, device=logits.device)
    acc.update(logits, torch.arange(n, device=logits.device))
    return acc.compute()


class InceptionScoreAccumulator:
    """Streamed IS: feed logits with their global sample indices, from any rank, in any order.

    ``total`` is the number of samples of the whole evaluation (all ranks); sample i goes to
    the split ``inception_score`` would put it in, so the result equals that function on the
    full logits ordered by index, whatever the chunking or the number of GPUs.
    """

    def __init__(
        self,
        total: int,
        num_classes: int = 1008,
        splits: int = 10,
        device: str | torch.device = "cpu",
    ) -> None:
        if total < splits:
            raise ValueError(f"IS with {splits} splits needs at least {splits} samples")
        self.total, self.splits = total, splits
        self.counts = torch.zeros(splits, dtype=torch.float64, device=device)
        self.prob_sums = torch.zeros(splits, num_classes, dtype=torch.float64, device=device)
        self.plogp_sums = torch.zeros(splits, dtype=torch.float64, device=device)

    def update(self, logits: torch.Tensor, indices: torch.Tensor) -> None:
        """Add logits (B, C) of the samples with global indices (B,) in [0, total)."""
        indices = torch.as_tensor(indices, device=self.counts.device).long()
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.total):
            raise ValueError(f"sample indices must lie in [0, {self.total})")
        # Sample i is in split s iff s*N//K <= i < (s+1)*N//K, i.e. s = ((i+1)*K - 1) // N.
        split = ((indices + 1) * self.splits - 1) // self.total
        p, plogp = _probabilities_and_plogp(logits.to(self.counts.device))
        self.counts.index_add_(0, split, torch.ones_like(plogp))
        self.prob_sums.index_add_(0, split, p)
        self.plogp_sums.index_add_(0, split, plogp)

    def all_reduce_(self) -> InceptionScoreAccumulator:
        """Sum the per-split sums over DDP ranks, in place (once, on every rank). Returns self."""
        for tensor in (self.counts, self.prob_sums, self.plogp_sums):
            all_reduce_sum_(tensor)
        return self

    def compute(self) -> MeanStd:
        """Mean and population std of the per-split scores; every split must be non-empty."""
        if bool((self.counts == 0).any()):
            raise ValueError("some IS splits received no samples")
        scores = _split_scores(self.prob_sums, self.plogp_sums, self.counts)
        return MeanStd(scores.mean().item(), scores.std(unbiased=False).item())


def polynomial_mmd(
    x: torch.Tensor,
    y: torch.Tensor,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
) -> torch.Tensor:
    """Unbiased MMD^2 between samples x (m, d) and y (n, d), a 0-dim tensor.

    With k(a, b) = (gamma a.b + coef)^degree (gamma = 1/d by default): the mean of k over the
    pairs i != j within x, plus the same within y, minus twice the mean over all cross pairs.
    """
    gamma = 1.0 / x.shape[1] if gamma is None else gamma

    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (gamma * (a @ b.T) + coef) ** degree

    def within(a: torch.Tensor) -> torch.Tensor:
        k = kernel(a, a)
        return (k.sum() - k.diagonal().sum()) / (a.shape[0] * (a.shape[0] - 1))

    return within(x) + within(y) - 2 * kernel(x, y).mean()


def kernel_inception_distance(
    real: torch.Tensor,
    fake: torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
    seed: int = 0,
) -> MeanStd:
    """KID between (N_r, d) and (N_f, d) features: mean and std of MMD^2 over random subsets.

    Kernel k(x, y) = (gamma x.y + coef)^degree with gamma = 1/d by default (torch-fidelity's
    and torchmetrics' defaults: 100 subsets of 1000). Each subset takes the first
    ``subset_size`` entries of a random permutation of the real rows, then of the fake rows,
    both drawn from one CPU generator seeded with ``seed``. Computed in float64.
    """
    if min(real.shape[0], fake.shape[0]) < subset_size:
        raise ValueError(
            f"KID subset_size {subset_size} exceeds the samples ({real.shape[0]} real, "
            f"{fake.shape[0]} fake); pass a smaller subset_size"
        )
    generator = torch.Generator().manual_seed(seed)
    real, fake = real.double(), fake.double()
    values = []
    for _ in range(subsets):
        pick_real = torch.randperm(real.shape[0], generator=generator)[:subset_size]
        pick_fake = torch.randperm(fake.shape[0], generator=generator)[:subset_size]
        f_real = real[pick_real.to(real.device)]
        f_fake = fake[pick_fake.to(fake.device)]
        values.append(polynomial_mmd(f_real, f_fake, degree=degree, gamma=gamma, coef=coef))
    stacked = torch.stack(values)
    return MeanStd(stacked.mean().item(), stacked.std(unbiased=False).item())


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Expanded form, clipped at 0 against rounding (ADM's evaluator does the same).
    d = a.square().sum(1, keepdim=True) - 2 * a @ b.T + b.square().sum(1)[None]
    return d.clamp_min_(0)


def manifold_radii(features: torch.Tensor, k: int = 3, batch_size: int = 4096) -> torch.Tensor:
    """Squared distance from each of (N, d) features to its k-th nearest other sample, (N,).

    The sample itself sits at distance 0 in its own row, so the k-th neighbour is entry k of
    the sorted row, as in ADM's evaluator (duplicates count as neighbours at distance 0).
    """
    if features.shape[0] <= k:
        raise ValueError(f"need more than k={k} samples, got {features.shape[0]}")
    radii = []
    for start in range(0, features.shape[0], batch_size):
        rows = _squared_distances(features[start : start + batch_size], features)
        radii.append(rows.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def fraction_in_manifold(
    manifold: torch.Tensor, radii: torch.Tensor, queries: torch.Tensor, batch_size: int = 4096
) -> float:
    """Fraction of queries (M, d) within radius of at least one manifold sample (N, d)."""
    inside = []
    for start in range(0, queries.shape[0], batch_size):
        d = _squared_distances(queries[start : start + batch_size], manifold)
        inside.append((d <= radii[None]).any(1))
    return torch.cat(inside).double().mean().item()


class PrecisionRecall(NamedTuple):
    precision: float
    recall: float


def precision_recall(
    real: torch.Tensor,
    fake: torch.Tensor,
    k: int = 3,
    batch_size: int = 4096,
    dtype: torch.dtype = torch.float32,
) -> PrecisionRecall:
    """Improved precision and recall of fake (N_f, d) against real (N_r, d) features.

    Distances are computed in ``dtype`` (float32 by default; ADM uses float16 where finite)
    on the features' device, ``batch_size`` query rows at a time.
    """
    real, fake = real.to(dtype), fake.to(dtype)
    real_radii = manifold_radii(real, k, batch_size)
    fake_radii = manifold_radii(fake, k, batch_size)
    return PrecisionRecall(
        precision=fraction_in_manifold(real, real_radii, fake, batch_size),
        recall=fraction_in_manifold(fake, fake_radii, real, batch_size),
    )
