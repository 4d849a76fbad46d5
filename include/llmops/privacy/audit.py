"""An append-only audit trail of what the pipeline did with personal data.

Events – erasures, exports to the crowd (MTurk), model promotions, retention runs – are JSON
objects under ``audit/events/<event>/<id>.json`` in the pipeline's store: one object per event,
written once and never rewritten (an event id comes from what happened, so a retried task finds
its event and adds nothing). They hold who/what/when and counts, never personal data. On S3, an
Object Lock (compliance mode) on the ``audit/`` prefix makes the trail tamper-proof.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from datetime import UTC, datetime
from typing import Any

__all__ = ["EVENTS", "actor", "read_events", "record_event"]

PREFIX = "audit/events"
EVENTS = ("erasure", "annotation_export", "model_promotion", "retention")


def actor() -> dict[str, str]:
    """Who acts: the Airflow DAG run and task when run by Airflow, else the OS user."""
    ctx = {k: os.environ[v] for k, v in (("dag_id", "AIRFLOW_CTX_DAG_ID"), ("run_id", "AIRFLOW_CTX_DAG_RUN_ID"),
                                         ("task_id", "AIRFLOW_CTX_TASK_ID"), ("owner", "AIRFLOW_CTX_DAG_OWNER"))
           if os.environ.get(v)}
    if not ctx:
        try:
            ctx = {"user": getpass.getuser()}
        except Exception:  # pragma: no cover - no user database in some containers
            ctx = {"user": "unknown"}
    return ctx


def record_event(store: Any, event: str, *, event_key: str, details: dict[str, Any],
                 who: dict[str, str] | None = None, at: datetime | None = None) -> bool:
    """Append one event; ``event_key`` identifies it (a request id, a job id, a model version and
    alias). Returns False when the event was already recorded (nothing is written)."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}; one of {', '.join(EVENTS)}")
    ident = hashlib.sha256(f"{event}\x1f{event_key}".encode()).hexdigest()[:24]
    key = f"{PREFIX}/{event}/{ident}.json"
    if store.exists(key):
        return False
    entry = {"event": event, "id": ident, "key": event_key,
             "at": (at or datetime.now(UTC)).isoformat(timespec="seconds"),
             "actor": who if who is not None else actor(), "details": details}
    data = json.dumps(entry, indent=1, sort_keys=True, default=str).encode()
    create = getattr(store, "create_bytes", None)
    if create is not None:  # of two processes recording the same event at once, one writes it
        return bool(create(key, data))
    store.write_bytes(key, data)
    return True


def read_events(store: Any, *, event: str | None = None, since: str | None = None) -> list[dict[str, Any]]:
    """Events, oldest first; ``since`` is an ISO date or time (inclusive)."""
    prefix = f"{PREFIX}/{event}" if event else PREFIX
    out = []
    for key in store.list(prefix):
        if key.endswith(".json"):
            entry = json.loads(store.read_bytes(key))
            if since is None or entry["at"] >= since:
                out.append(entry)
    return sorted(out, key=lambda e: (e["at"], e["event"], e["id"]))
