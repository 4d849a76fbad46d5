"""Worker quality control: approve or reject each submitted assignment by the gold (known-answer)
items only, pick bonuses, and find repeat offenders to block."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from llmops.annotation.settings import QCConfig

__all__ = ["Decision", "decide", "worker_ref"]


def worker_ref(worker_id: str) -> str:
    """A pseudonymous worker reference for manifests and logs (MTurk worker ids identify people)."""
    return "w_" + hashlib.sha256(f"llmops-worker:{worker_id}".encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Decision:
    assignment_id: str
    worker_id: str
    hit_id: str
    action: str  # approve | reject
    reason: str
    feedback: str | None = None
    bonus: Decimal = Decimal(0)


def decide(assignments: Sequence[dict[str, Any]], gold: dict[str, str], worker_gold: dict[str, dict[str, Any]],
           cfg: QCConfig) -> list[Decision]:
    """``assignments``: ``{"assignment_id", "worker_id", "hit_id", "answers": {item_id: label}}``.

    An assignment is rejected only when it answered a gold item wrongly *and* its worker's
    accuracy over all gold answers in the job (at least ``min_gold_answers`` of them) is below
    ``reject_below_gold_accuracy``; everything else is approved. Honest mistakes on one control
    item do not cost a careful worker their pay.
    """
    out = []
    for a in assignments:
        stats = worker_gold.get(a["worker_id"], {"answered": 0, "correct": 0, "accuracy": 1.0})
        golds = [(item, label) for item, label in a["answers"].items() if item in gold]
        wrong = sum(1 for item, label in golds if label != gold[item])
        judged = stats["answered"] >= cfg.min_gold_answers
        if wrong and judged and stats["accuracy"] < cfg.reject_below_gold_accuracy:
            feedback = f"{cfg.feedback} ({wrong} of {len(golds)} control items in this HIT were wrong.)"
            out.append(Decision(a["assignment_id"], a["worker_id"], a["hit_id"], "reject",
                                f"gold accuracy {stats['accuracy']:.2f} < {cfg.reject_below_gold_accuracy}",
                                feedback))
            continue
        bonus = Decimal(0)
        if cfg.bonus_usd > 0 and judged and stats["accuracy"] >= cfg.bonus_min_gold_accuracy:
            bonus = cfg.bonus_usd
        reason = "no gold failures" if not wrong else "gold failures within tolerance"
        out.append(Decision(a["assignment_id"], a["worker_id"], a["hit_id"], "approve", reason, None, bonus))
    return out
