"""Metrics per slice of an evaluation set (language, source, ``meta.*`` fields) and slice regressions.

A slice key is a record field (``lang``, ``source``) or a dotted path into the record's ``meta``
(``meta.domain`` reads ``meta["domain"]``; ``meta`` may be a dict or the JSON object string the
Parquet files store). Slices with fewer than ``min_size`` items are reported but not scored: a
metric over three examples says little, and must not decide the largest gap or a regression.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["MISSING", "accuracy", "slice_metrics", "slice_regressions", "slice_value"]

MISSING = "(missing)"  # slice value of records that lack the field

Metric = Callable[[list[Any], list[Any]], float]


def accuracy(predictions: Sequence[Any], references: Sequence[Any]) -> float:
    """Share of exact matches (0.0 for no items)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        return 0.0
    return sum(p == r for p, r in zip(predictions, references, strict=True)) / len(predictions)


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, str):
        try:
            obj = json.loads(obj) if obj.strip() else {}
        except ValueError:
            return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def slice_value(record: Any, field: str) -> str:
    """The slice a record falls in for ``field`` (``lang``, ``meta.domain``, ``meta.a.b``), as a
    string; :data:`MISSING` when the record lacks it."""
    value: Any = record
    for part in field.split("."):
        value = _get(value, part)
        if value is None:
            return MISSING
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def slice_metrics(
    records: Sequence[Any],
    predictions: Sequence[Any],
    references: Sequence[Any],
    by: Sequence[str],
    metric: Metric,
    min_size: int = 5,
) -> dict[str, Any]:
    """``metric(predictions, references)`` per slice of every field in ``by``.

    Returns ``{"by": {field: {value: {"n", "metric"}}}, "largest_gap": {"field", "best", "worst",
    "gap", "best_metric", "worst_metric"} | None}``. Slices smaller than ``min_size`` have
    ``"metric": None, "skipped": "too_small"`` and are left out of the gap, which compares the best
    and worst scored slice of each field (a field needs two scored slices)."""
    if not len(records) == len(predictions) == len(references):
        raise ValueError(
            f"records ({len(records)}), predictions ({len(predictions)}) and references "
            f"({len(references)}) differ in length"
        )
    if min_size < 1:
        raise ValueError("min_size must be at least 1")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    gap: dict[str, Any] | None = None
    for field in by:
        groups: dict[str, list[int]] = {}
        for i, record in enumerate(records):
            groups.setdefault(slice_value(record, field), []).append(i)
        slices: dict[str, dict[str, Any]] = {}
        for value in sorted(groups):
            idx = groups[value]
            if len(idx) < min_size:
                slices[value] = {"n": len(idx), "metric": None, "skipped": "too_small"}
                continue
            score = metric([predictions[i] for i in idx], [references[i] for i in idx])
            slices[value] = {"n": len(idx), "metric": float(score)}
        out[field] = slices
        scored = [(s["metric"], value) for value, s in slices.items() if s["metric"] is not None]
        if len(scored) >= 2:
            best_metric, best = max(scored, key=lambda t: (t[0], t[1]))
            worst_metric, worst = min(scored, key=lambda t: (t[0], t[1]))
            if gap is None or best_metric - worst_metric > gap["gap"]:
                gap = {"field": field, "best": best, "worst": worst, "gap": best_metric - worst_metric,
                       "best_metric": best_metric, "worst_metric": worst_metric}
    return {"by": out, "largest_gap": gap}


def slice_regressions(candidate: Mapping[str, Any], champion: Mapping[str, Any], tolerance: float) -> list[dict[str, Any]]:
    """Slices scored in both :func:`slice_metrics` outputs where the candidate is worse than the
    champion by more than ``tolerance``: ``{"field", "value", "candidate", "champion", "delta",
    "n"}`` (``delta`` = candidate - champion, ``n`` the candidate's slice size), worst first."""
    if tolerance < 0:
        raise ValueError("tolerance must not be negative")
    found: list[dict[str, Any]] = []
    cand_by: Mapping[str, Any] = candidate.get("by", {})
    champ_by: Mapping[str, Any] = champion.get("by", {})
    for field, slices in cand_by.items():
        other = champ_by.get(field)
        if not other:
            continue
        for value, cand in slices.items():
            champ = other.get(value)
            if champ is None or cand.get("metric") is None or champ.get("metric") is None:
                continue
            c, p = float(cand["metric"]), float(champ["metric"])
            if c < p - tolerance - 1e-12:  # exactly at the tolerance is not a regression
                found.append({"field": field, "value": value, "candidate": c, "champion": p,
                              "delta": c - p, "n": cand.get("n")})
    found.sort(key=lambda r: (r["delta"], r["field"], r["value"]))
    return found
