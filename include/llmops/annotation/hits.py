"""What a HIT is made of: its question (HTML from a Jinja template), its idempotency token, its
HIT type (reward, timing, qualifications) and what a batch of HITs will cost."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from llmops.annotation.items import PROJECT_DIR, Item
from llmops.annotation.settings import MTurkConfig, TaskConfig

__all__ = ["BudgetExceededError", "CostEstimate", "answer_field", "batch_key", "estimate_cost",
           "hit_type_request", "render_question", "request_token"]

TEMPLATES_DIR = PROJECT_DIR / "include" / "annotation" / "templates"
HTML_QUESTION_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd"
# MTurk's system qualification types (the same ids in the sandbox and in production)
QUAL_APPROVAL_RATE = "000000000000000000L0"
QUAL_HITS_APPROVED = "00000000000000000040"
QUAL_LOCALE = "00000000000000000071"
CENT = Decimal("0.01")


class BudgetExceededError(RuntimeError):
    """The estimated cost of a run is above ``mturk.budget_usd``; nothing was created."""


def batch_key(items: Sequence[Item]) -> str:
    return hashlib.sha256("\n".join(sorted(it.id for it in items)).encode()).hexdigest()[:16]


def request_token(dag_id: str, partition: str, key: str) -> str:
    """MTurk ``UniqueRequestToken`` (at most 64 characters) for one batch of one run: a retry or a
    backfill of the same (DAG, partition, batch) asks for the same HIT, and MTurk refuses a second."""
    return hashlib.sha256(f"{dag_id}|{partition}|{key}".encode()).hexdigest()[:64]


def answer_field(position: int) -> str:
    """Form field name of the item at ``position`` in a HIT (ids stay out of the page)."""
    return f"item_{position}"


def _template(task: TaskConfig) -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    path = Path(task.template)
    folder, name = (path.parent, path.name) if path.is_absolute() else (TEMPLATES_DIR, task.template)
    env = Environment(loader=FileSystemLoader(str(folder)), autoescape=select_autoescape(default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template(name)


def render_question(items: Sequence[Item], task: TaskConfig) -> str:
    """The ``HTMLQuestion`` XML for one HIT: the rendered page inside CDATA."""
    html = _template(task).render(
        task=task,
        items=[{"field": answer_field(i), "text": it.text, "lang": it.lang or ""} for i, it in enumerate(items)],
    )
    body = html.replace("]]>", "]]]]><![CDATA[>")  # a text cannot close the CDATA section
    return (f'<HTMLQuestion xmlns="{HTML_QUESTION_NS}"><HTMLContent><![CDATA[{body}]]></HTMLContent>'
            "<FrameHeight>0</FrameHeight></HTMLQuestion>")


@dataclass(frozen=True)
class CostEstimate:
    hits: int
    assignments_per_hit: int
    reward_usd: Decimal
    fee_rate: Decimal
    rewards_usd: Decimal
    fees_usd: Decimal
    total_usd: Decimal

    def as_dict(self) -> dict[str, Any]:
        return {"hits": self.hits, "assignments_per_hit": self.assignments_per_hit,
                "reward_usd": str(self.reward_usd), "fee_rate": str(self.fee_rate),
                "rewards_usd": str(self.rewards_usd), "fees_usd": str(self.fees_usd),
                "total_usd": str(self.total_usd)}


def estimate_cost(hits: int, assignments: int, reward: Decimal, *, bonus_per_assignment: Decimal = Decimal(0)) -> CostEstimate:
    """Rewards plus MTurk's commission: 20% (at least $0.01) per assignment, and another 20% for
    HITs with 10 or more assignments; bonuses carry the same 20%."""
    rate = Decimal("0.20") + (Decimal("0.20") if assignments >= 10 else Decimal(0))
    fee_each = max(CENT, (reward * rate).quantize(CENT, rounding=ROUND_HALF_UP))
    n = hits * assignments
    rewards = (reward + bonus_per_assignment) * n
    fees = fee_each * n + (bonus_per_assignment * Decimal("0.20")).quantize(CENT, rounding=ROUND_HALF_UP) * n
    return CostEstimate(hits, assignments, reward, rate, rewards.quantize(CENT), fees.quantize(CENT),
                        (rewards + fees).quantize(CENT))


def check_budget(cost: CostEstimate, budget: Decimal) -> None:
    if cost.total_usd > budget:
        raise BudgetExceededError(
            f"estimated cost ${cost.total_usd} ({cost.hits} HITs x {cost.assignments_per_hit} assignments x "
            f"${cost.reward_usd} reward = ${cost.rewards_usd}, plus ${cost.fees_usd} MTurk fees at "
            f"{cost.fee_rate * 100:.0f}%) is above annotation.mturk.budget_usd=${budget}; raise the budget, "
            "or lower selection.size, mturk.assignments or mturk.reward_usd. No HIT was created."
        )


def qualification_requirements(cfg: MTurkConfig) -> list[dict[str, Any]]:
    q = cfg.qualifications
    reqs: list[dict[str, Any]] = []
    if q.min_approval_rate is not None:
        reqs.append({"QualificationTypeId": QUAL_APPROVAL_RATE, "Comparator": "GreaterThanOrEqualTo",
                     "IntegerValues": [q.min_approval_rate], "ActionsGuarded": "Accept"})
    if q.min_hits_approved is not None:
        reqs.append({"QualificationTypeId": QUAL_HITS_APPROVED, "Comparator": "GreaterThanOrEqualTo",
                     "IntegerValues": [q.min_hits_approved], "ActionsGuarded": "Accept"})
    if q.locales:
        reqs.append({"QualificationTypeId": QUAL_LOCALE, "Comparator": "In",
                     "LocaleValues": [{"Country": c} for c in q.locales], "ActionsGuarded": "Accept"})
    if q.custom_id:
        reqs.append({"QualificationTypeId": q.custom_id, "Comparator": "GreaterThanOrEqualTo",
                     "IntegerValues": [q.custom_min_score], "ActionsGuarded": "Accept"})
    return reqs


def hit_type_request(task: TaskConfig, cfg: MTurkConfig) -> dict[str, Any]:
    """Arguments of ``create_hit_type`` (MTurk returns the same id for identical arguments)."""
    return {
        "AutoApprovalDelayInSeconds": cfg.auto_approval_delay_s,
        "AssignmentDurationInSeconds": cfg.duration_s,
        "Reward": str(cfg.reward_usd.quantize(CENT)),
        "Title": task.title,
        "Keywords": ", ".join(cfg.keywords),
        "Description": task.question,
        "QualificationRequirements": qualification_requirements(cfg),
    }
