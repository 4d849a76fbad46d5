"""From worker answers to one label per item.

* majority vote (ties go to the label listed first in the task), confidence = the winner's share;
* Dawid-Skene (crowd-kit's EM implementation): per-worker confusion matrices, so a spammer's
  votes count for little; confidence = the posterior of the chosen label;
* batch agreement as Krippendorff's alpha (nominal), and per-worker accuracy on gold items.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ItemLabel", "Vote", "aggregate", "dawid_skene", "gold_accuracy", "krippendorff_alpha", "majority_vote"]

log = logging.getLogger(__name__)

Vote = tuple[str, str, str]  # (item id, worker id, label)


@dataclass
class ItemLabel:
    item_id: str
    label: str
    confidence: float
    votes: dict[str, int] = field(default_factory=dict)

    @property
    def n_votes(self) -> int:
        return sum(self.votes.values())

    @property
    def agreement(self) -> float:
        """Share of the votes that agree with the chosen label."""
        return self.votes.get(self.label, 0) / self.n_votes if self.n_votes else 0.0


def _vote_counts(votes: Sequence[Vote]) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for item, _, label in votes:
        counts[item][label] += 1
    return counts


def majority_vote(votes: Sequence[Vote], labels: Sequence[str]) -> dict[str, ItemLabel]:
    rank = {lab: i for i, lab in enumerate(labels)}
    out = {}
    for item, counter in _vote_counts(votes).items():
        label = min(counter, key=lambda lab: (-counter[lab], rank.get(lab, len(rank)), lab))
        out[item] = ItemLabel(item, label, counter[label] / sum(counter.values()), dict(counter))
    return out


def dawid_skene(votes: Sequence[Vote], labels: Sequence[str], *, n_iter: int = 100) -> tuple[dict[str, ItemLabel], dict[str, float]]:
    """Labels with posteriors, and each worker's estimated accuracy (prior-weighted diagonal of
    the worker's confusion matrix)."""
    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    counts = _vote_counts(votes)
    df = pd.DataFrame(list(votes), columns=["task", "worker", "label"])
    model = DawidSkene(n_iter=n_iter, tol=1e-6)
    model.fit(df)
    probas: Any = model.probas_
    rank = {lab: i for i, lab in enumerate(labels)}
    out = {}
    for item in probas.index:
        row = probas.loc[item]
        best = max(row.index, key=lambda lab: (round(float(row[lab]), 9), -rank.get(lab, len(rank))))
        out[str(item)] = ItemLabel(str(item), str(best), float(row[best]), dict(counts[str(item)]))
    priors: Any = model.priors_
    skills: dict[str, float] = {}
    errors: Any = model.errors_  # index (worker, observed label), columns = true label
    for worker in sorted(set(df["worker"])):
        matrix = errors.loc[worker]
        skills[worker] = round(float(sum(priors[k] * matrix.at[k, k] for k in priors.index if k in matrix.index)), 4)
    return out, skills


def aggregate(votes: Sequence[Vote], labels: Sequence[str], method: str = "dawid_skene") -> tuple[dict[str, ItemLabel], dict[str, float]]:
    if not votes:
        return {}, {}
    if method == "majority":
        return majority_vote(votes, labels), {}
    if len({lab for _, _, lab in votes}) < 2:  # nothing to disagree about: EM is undefined
        return majority_vote(votes, labels), {}
    return dawid_skene(votes, labels)


def krippendorff_alpha(votes: Sequence[Vote], labels: Sequence[str]) -> float | None:
    """Nominal Krippendorff's alpha over all items with at least two votes (None when undefined)."""
    import krippendorff
    import numpy as np

    items = sorted({i for i, c in _vote_counts(votes).items() if sum(c.values()) >= 2})
    workers = sorted({w for _, w, _ in votes})
    if len(items) < 2 or len(workers) < 2:
        return None
    code = {lab: float(i) for i, lab in enumerate(labels)}
    col = {item: j for j, item in enumerate(items)}
    row = {w: i for i, w in enumerate(workers)}
    data = np.full((len(workers), len(items)), np.nan)
    for item, worker, label in votes:
        if item in col and label in code:
            data[row[worker], col[item]] = code[label]
    values = {code[lab] for _, _, lab in votes if lab in code}
    if len(values) < 2:
        return 1.0
    return round(float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")), 4)


def gold_accuracy(votes: Sequence[Vote], gold: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per worker: gold items answered, answered correctly, accuracy."""
    stats: dict[str, dict[str, Any]] = {}
    for item, worker, label in votes:
        if item not in gold:
            continue
        s = stats.setdefault(worker, {"answered": 0, "correct": 0})
        s["answered"] += 1
        s["correct"] += int(label == gold[item])
    for s in stats.values():
        s["accuracy"] = round(s["correct"] / s["answered"], 4)
    return stats
