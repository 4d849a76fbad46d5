"""The watchdog: work published long ago whose next stage never ran.

Asset events start the stages, and an event can be lost (Airflow drops the events that arrive while
a DAG with ``max_active_runs=1`` runs, apache/airflow#56050; a paused DAG; a failed run nobody
cleared). Each night ``llm_drift_nightly`` asks the store and the model registry directly:

* a current curated version older than ``drift.watchdog.max_age_hours`` that no labeled version and
  no annotation job under way covers (:func:`llmops.annotation.jobs.unlabeled_curated`);
* a registered model version older than that with no evaluation (no ``eval.<suite>.run_id`` tag).

The findings go into the nightly summary and report, raise an alert through ``drift.notifier``,
and with ``drift.watchdog.trigger`` start ``llm_annotation`` for the unlabeled versions.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

__all__ = ["overdue"]

log = logging.getLogger(__name__)


def _age_hours(created: datetime, now: datetime) -> float:
    return round((now - created).total_seconds() / 3600, 1)


def overdue(cfg: Any, store: Any, *, now: datetime | None = None, client: Any | None = None) -> dict[str, Any]:
    """What is overdue now (no text, ids and ages only)."""
    from llmops.annotation.jobs import unlabeled_curated
    from llmops.versions import read_manifest

    w = cfg.drift.watchdog
    now = now or datetime.now(UTC)
    out: dict[str, Any] = {"max_age_hours": w.max_age_hours, "unlabeled": [], "unevaluated": []}
    if not w.enabled:
        out["overdue"] = False
        return out
    for partition, version in unlabeled_curated(cfg, store):
        created = datetime.fromisoformat(read_manifest(store, cfg.dataset, "curated", version)["created_at"])
        age = _age_hours(created if created.tzinfo else created.replace(tzinfo=UTC), now)
        if age >= w.max_age_hours:
            out["unlabeled"].append({"partition": partition, "version_id": version, "age_hours": age})
    if client is not None:
        from llmops.evaluation.promotion import unevaluated_versions

        for mv in unevaluated_versions(cfg, client):
            age = _age_hours(datetime.fromtimestamp(int(mv.creation_timestamp) / 1000, UTC), now)
            if age >= w.max_age_hours:
                out["unevaluated"].append({"model": mv.name, "version": str(mv.version), "age_hours": age})
    out["overdue"] = bool(out["unlabeled"] or out["unevaluated"])
    if out["overdue"]:
        log.warning("watchdog: %d curated version(s) unlabeled and %d model version(s) unevaluated for more than "
                    "%s h: %s", len(out["unlabeled"]), len(out["unevaluated"]), w.max_age_hours,
                    out["unlabeled"] + out["unevaluated"])
    return out
