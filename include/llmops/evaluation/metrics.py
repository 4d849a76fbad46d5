"""The metric layer of the evaluation stage.

Every metric is a Hugging Face ``evaluate`` module kept in this repository under
``include/evaluate_metrics/<name>/<name>.py`` and loaded from that folder, so loading never touches the
network (``evaluate.load("bleu")`` would fetch the module from the Hub). :func:`load_metric` loads and caches
one; :func:`compute` is the one-call form.

Confidence intervals come from a percentile bootstrap over examples (:func:`bootstrap_ci`) and the
champion/challenger comparison from a paired bootstrap of the difference (:func:`paired_bootstrap_diff`).
Both call the metric once per resample, so they take plain numpy functions: :data:`FAST` has vectorised
versions of the classification metrics that agree with the ``evaluate`` modules.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import evaluate

__all__ = [
    "FAST",
    "METRICS_DIR",
    "available_metrics",
    "bootstrap_ci",
    "compute",
    "fast_accuracy",
    "fast_exact_match",
    "fast_macro_f1",
    "load_metric",
    "normalise_text",
    "paired_bootstrap_diff",
]

METRICS_DIR = Path(__file__).resolve().parents[2] / "evaluate_metrics"

MetricFn = Callable[..., float]

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def available_metrics() -> list[str]:
    """Names of the metric modules under :data:`METRICS_DIR` (folders holding ``<name>/<name>.py``)."""
    if not METRICS_DIR.is_dir():
        return []
    return sorted(p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file())


@functools.cache
def _load(name: str) -> evaluate.EvaluationModule:
    import evaluate

    # A local folder path: evaluate copies the script into its modules cache and imports it; no Hub lookup.
    # keep_in_memory avoids per-call Arrow cache files and file locks under ~/.cache/huggingface/metrics.
    return evaluate.load(str(METRICS_DIR / name), keep_in_memory=True)


def load_metric(name: str) -> evaluate.EvaluationModule:
    """The ``evaluate`` module for ``name``, loaded once per process from :data:`METRICS_DIR`.

    The instance is shared; use :func:`compute` when several threads may score with the same metric.
    """
    names = available_metrics()
    if name not in names:
        raise ValueError(f"unknown metric {name!r}; available: {', '.join(names) or '(none)'}")
    return _load(name)


def _lock(name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())


def _plain(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


def _discard_pending(module: evaluate.EvaluationModule) -> None:
    """Drop a half-written batch so a failed call does not leak rows or an input format into the next one."""
    module.writer = None
    module.buf_writer = None
    module.data = None
    module.selected_feature_format = None


def compute(name: str, **inputs: Any) -> dict[str, Any]:
    """Score with metric ``name``: ``compute("accuracy", predictions=..., references=...)``.

    Inputs are the module's features (``predictions``/``references``; ``confidences`` for ``ece``;
    ``nll``/``n_tokens`` for ``perplexity``) plus its options (e.g. ``tokenize="intl"`` for ``bleu``).
    Values are floats, except ``per_class`` from ``macro_f1`` (a dict keyed by ``str(label)``).
    """
    module = load_metric(name)
    with _lock(name):
        try:
            result = module.compute(**{k: _plain(v) for k, v in inputs.items()})
        except Exception:
            _discard_pending(module)
            raise
    if result is None:  # only for a non-main process in a distributed setting
        raise RuntimeError(f"metric {name!r} returned no result")
    return dict(result)


# --------------------------------------------------------------------------- fast numpy versions
def _pair(predictions: Any, references: Any) -> tuple[np.ndarray, np.ndarray]:
    p, r = np.asarray(predictions), np.asarray(references)
    if p.shape != r.shape or p.ndim != 1:
        raise ValueError(
            f"predictions and references must be 1-D of equal length, got {p.shape} and {r.shape}")
    if p.size == 0:
        raise ValueError("no examples to score")
    return p, r


def fast_accuracy(predictions: Any, references: Any) -> float:
    """Fraction of predictions equal to the reference (same as the ``accuracy`` module)."""
    p, r = _pair(predictions, references)
    return float(np.count_nonzero(p == r) / p.size)


def _codes(p: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer class codes for predictions and references, and the number of codes."""
    if p.dtype.kind in "iub" and r.dtype.kind in "iub":
        lo = min(int(p.min()), int(r.min()))
        hi = max(int(p.max()), int(r.max()))
        if lo >= 0 and hi < 4 * p.size + 64:  # small non-negative labels: index directly
            return p.astype(np.intp), r.astype(np.intp), hi + 1
    _, inverse = np.unique(np.concatenate([p, r]), return_inverse=True)
    inverse = inverse.reshape(-1)
    return inverse[: p.size], inverse[p.size:], int(inverse.max()) + 1


def fast_macro_f1(predictions: Any, references: Any) -> float:
    """Macro F1 over the union of labels present (same as the ``macro_f1`` module without ``labels``)."""
    p, r = _pair(predictions, references)
    pc, rc, k = _codes(p, r)
    tp = np.bincount(rc[pc == rc], minlength=k)
    denom = np.bincount(rc, minlength=k) + np.bincount(pc, minlength=k)  # 2tp + fp + fn
    present = denom > 0
    return float(np.mean(2.0 * tp[present] / denom[present]))


def normalise_text(text: str) -> str:
    """Strip, collapse whitespace runs to one space and casefold (as the ``exact_match`` module does)."""
    return " ".join(text.split()).casefold()


@functools.lru_cache(maxsize=1 << 16)
def _normalised(text: str) -> str:
    return normalise_text(text)


def fast_exact_match(predictions: Any, references: Any) -> float:
    """Fraction of normalised predictions equal to their normalised reference (the ``exact_match`` module)."""
    p, r = _pair(predictions, references)
    hits = sum(_normalised(a) == _normalised(b) for a, b in zip(p.tolist(), r.tolist(), strict=True))
    return hits / p.size


FAST: dict[str, Callable[[Any, Any], float]] = {
    "accuracy": fast_accuracy,
    "macro_f1": fast_macro_f1,
    "exact_match": fast_exact_match,
}


# --------------------------------------------------------------------------- bootstrap
def _indexable(values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values
    try:
        arr = np.asarray(values)
    except ValueError:  # ragged (e.g. a variable number of references per example)
        arr = None
    if arr is None or arr.dtype == object or arr.ndim != 1:
        out = np.empty(len(values), dtype=object)
        for i, value in enumerate(values):
            out[i] = value
        return out
    return arr


def _prepare(arrays: Sequence[Any], n_resamples: int, confidence: float) -> list[np.ndarray]:
    if not arrays:
        raise ValueError("need at least one array to resample")
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")
    arrs = [_indexable(a) for a in arrays]
    lengths = {len(a) for a in arrs}
    if len(lengths) != 1:
        raise ValueError(f"arrays must have the same length, got {sorted(lengths)}")
    if 0 in lengths:
        raise ValueError("no examples to resample")
    return arrs


def _interval(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(stats, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_ci(metric_fn: MetricFn, *arrays: Any, n_resamples: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """Percentile bootstrap confidence interval of ``metric_fn(*arrays)``: ``(point, low, high)``.

    Each resample draws ``n`` example indices with replacement (the same indices for every array, so
    pairs stay together) and calls ``metric_fn`` on the resampled numpy arrays; ``point`` is the metric on
    the full data. Deterministic for a given ``seed``. ``metric_fn`` runs ``n_resamples`` times, so use a
    plain numpy function (see :data:`FAST`), not an ``evaluate`` module.
    """
    arrs = _prepare(arrays, n_resamples, confidence)
    n = len(arrs[0])
    point = float(metric_fn(*arrs))
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples, dtype=float)
    for i in range(n_resamples):
        idx = rng.integers(0, n, size=n)
        stats[i] = metric_fn(*(a[idx] for a in arrs))
    low, high = _interval(stats, confidence)
    return point, low, high


def paired_bootstrap_diff(metric_fn: Callable[[Any, Any], float], preds_a: Any, preds_b: Any, refs: Any,
                          n_resamples: int = 1000, seed: int = 0,
                          confidence: float = 0.95) -> tuple[float, float, float]:
    """Paired bootstrap of ``metric_fn(preds_a, refs) - metric_fn(preds_b, refs)``: ``(diff, low, high)``.

    Both systems are scored on the same resampled examples each time, so example difficulty cancels out
    and the interval is much tighter than comparing two independent intervals. A ``low`` above 0 means
    ``a`` is better at the given confidence (for a higher-is-better metric).
    """
    a, b, r = _prepare((preds_a, preds_b, refs), n_resamples, confidence)
    n = len(r)
    diff = float(metric_fn(a, r)) - float(metric_fn(b, r))
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples, dtype=float)
    for i in range(n_resamples):
        idx = rng.integers(0, n, size=n)
        ri = r[idx]
        stats[i] = float(metric_fn(a[idx], ri)) - float(metric_fn(b[idx], ri))
    low, high = _interval(stats, confidence)
    return diff, low, high
