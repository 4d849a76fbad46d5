"""Two-sample drift statistics: PSI, Kolmogorov-Smirnov, chi-squared, and an MMD permutation test
and domain-classifier AUC for embeddings.

Every test returns an effect size with its p-value. A report flags drift only when both say so:
the p-value is below the (corrected) level *and* the effect reaches its threshold, so large nights
do not alarm on differences nobody would act on, and small nights do not alarm on noise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["categorical_test", "distribution", "domain_auc", "ks_test", "mmd_test", "psi", "psi_categorical"]

EPS = 1e-4


def psi(reference: ArrayLike, current: ArrayLike, bins: int = 10) -> float:
    """Population stability index of a numeric feature, on the reference's quantile bins."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    if len(ref) == 0 or len(cur) == 0:
        return 0.0
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1) / len(ref)
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1) / len(cur)
    r, c = np.clip(r, EPS, None), np.clip(c, EPS, None)
    return float(np.sum((c - r) * np.log(c / r)))


def distribution(values: Sequence[Any]) -> dict[str, float]:
    n = len(values)
    return {str(k): v / n for k, v in sorted(Counter(str(x) for x in values).items())} if n else {}


def psi_categorical(reference: Sequence[Any], current: Sequence[Any]) -> float:
    r, c = distribution(reference), distribution(current)
    keys = sorted(set(r) | set(c))
    return float(sum((max(c.get(k, 0), EPS) - max(r.get(k, 0), EPS)) * np.log(max(c.get(k, 0), EPS) /
                                                                              max(r.get(k, 0), EPS)) for k in keys))


def ks_test(reference: ArrayLike, current: ArrayLike) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov: ``(statistic, p-value)``."""
    from scipy.stats import ks_2samp

    ref, cur = np.asarray(reference, dtype=float), np.asarray(current, dtype=float)
    if len(ref) == 0 or len(cur) == 0:
        return 0.0, 1.0
    res = ks_2samp(ref, cur)
    return float(res.statistic), float(res.pvalue)


def categorical_test(reference: Sequence[Any], current: Sequence[Any]) -> tuple[float, float]:
    """Chi-squared test of homogeneity of two categorical samples: ``(statistic, p-value)``."""
    from scipy.stats import chi2_contingency

    keys = sorted({str(x) for x in reference} | {str(x) for x in current})
    if len(keys) < 2 or not len(reference) or not len(current):
        return 0.0, 1.0
    r, c = Counter(str(x) for x in reference), Counter(str(x) for x in current)
    table = np.array([[r.get(k, 0) for k in keys], [c.get(k, 0) for k in keys]], dtype=float)
    table = table[:, table.sum(0) > 0]
    res = chi2_contingency(table)
    return float(res.statistic), float(res.pvalue)


def _sample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= n else x[rng.choice(len(x), size=n, replace=False)]


def mmd_test(x: Any, y: Any, *, n_permutations: int = 500, max_n: int = 500, seed: int = 0) -> tuple[float, float]:
    """Maximum mean discrepancy (RBF kernel, median-distance bandwidth) with a permutation test:
    ``(MMD², p-value)``. Each side is subsampled to ``max_n`` rows; the p-value is at least
    ``1 / (n_permutations + 1)``."""
    rng = np.random.default_rng(seed)
    a = _sample(np.asarray(x, dtype=np.float64), max_n, rng)
    b = _sample(np.asarray(y, dtype=np.float64), max_n, rng)
    if len(a) < 2 or len(b) < 2:
        return 0.0, 1.0
    pooled = np.vstack([a, b])
    sq = np.sum(pooled**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * pooled @ pooled.T, 0)
    off = d2[np.triu_indices(len(pooled), 1)]
    bandwidth = float(np.median(off)) or 1.0
    kernel = np.exp(-d2 / bandwidth)
    n, m = len(a), len(b)

    def stat(signs: np.ndarray) -> np.ndarray:  # rows: +1/n for x, -1/m for y; biased MMD² = w K wᵀ
        return np.einsum("pi,ij,pj->p", signs, kernel, signs, optimize=True)

    base = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    observed = float(stat(base[None, :])[0])
    count, done = 0, 0
    while done < n_permutations:
        k = min(100, n_permutations - done)
        perms = np.stack([base[rng.permutation(n + m)] for _ in range(k)])
        count += int(np.sum(stat(perms) >= observed - 1e-12))
        done += k
    return observed, (1 + count) / (1 + n_permutations)


def domain_auc(x: Any, y: Any, *, max_n: int = 1000, seed: int = 0) -> float:
    """Cross-validated ROC AUC of a logistic regression telling current (``y``) from reference
    (``x``) rows: 0.5 means indistinguishable, 1.0 fully separable."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    rng = np.random.default_rng(seed)
    a = _sample(np.asarray(x, dtype=np.float64), max_n, rng)
    b = _sample(np.asarray(y, dtype=np.float64), max_n, rng)
    if min(len(a), len(b)) < 5:
        return 0.5
    features = np.vstack([a, b])
    target = np.concatenate([np.zeros(len(a)), np.ones(len(b))])
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    scores = cross_val_predict(LogisticRegression(max_iter=1000, C=1.0), features, target, cv=folds,
                               method="predict_proba")[:, 1]
    return float(roc_auc_score(target, scores))
