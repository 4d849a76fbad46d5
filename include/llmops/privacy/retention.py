"""Retention: personal data is kept only as long as configured (``privacy.retention``).

* ``raw_days`` – raw versions (unredacted text) of partitions older than this lose their data and
  quarantine files; the manifest stays (lineage, counts) and says when and why the files went.
  Reading such a version fails with that reason instead of a missing-file error.
* ``quarantine_days`` – the quarantine files (original text of set-aside records) of every stage
  are emptied for partitions older than this; counts stay in the manifest.
* ``annotation_days`` – the exported items (``items.jsonl``: text sent to the crowd) of published
  annotation jobs older than this are deleted; the ledger (HITs, payments) stays.

Ages count from the partition date (a version without one: its creation date) to ``today`` – the
run's logical date in Airflow, so a backfill is deterministic. A run that finds nothing to do
changes nothing; each run that removes something adds one ``retention`` audit event.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from llmops.privacy.audit import record_event
from llmops.versions import version_prefix

__all__ = ["enforce_retention"]

log = logging.getLogger(__name__)


def _day(manifest: dict[str, Any]) -> date | None:
    for value in (manifest.get("partition"), manifest.get("created_at")):
        if value:
            try:
                return date.fromisoformat(str(value)[:10])
            except ValueError:
                continue
    return None


def _empty_quarantine() -> bytes:
    import pyarrow.parquet as pq

    from llmops.records import quarantine_schema

    buf = io.BytesIO()
    pq.write_table(quarantine_schema().empty_table(), buf, compression="zstd")
    return buf.getvalue()


def enforce_retention(cfg: Any, *, store: Any, today: date | str | None = None,
                      who: dict[str, str] | None = None) -> dict[str, Any]:
    """Apply ``cfg.privacy.retention`` as of ``today``; returns what was removed (counts, ids)."""
    from llmops.privacy.erasure import _manifests

    r = cfg.privacy.retention
    today = date.fromisoformat(today[:10]) if isinstance(today, str) else (today or datetime.now(UTC).date())
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    out: dict[str, Any] = {"today": today.isoformat(), "raw_versions": [], "quarantine_versions": [],
                           "annotation_jobs": [], "records": {"raw": 0, "quarantine": 0, "annotation_items": 0}}
    for stage in ("raw", "curated", "labeled"):
        for manifest in _manifests(store, cfg.dataset, stage):
            day = _day(manifest)
            if day is None:
                continue
            prefix = version_prefix(cfg.dataset, stage, manifest["id"])
            retention = dict(manifest.get("retention") or {})
            changed = False
            if stage == "raw" and r.raw_days and day < today - timedelta(days=r.raw_days) \
                    and not retention.get("data_purged_at"):
                for entry in [*manifest["files"], *manifest["quarantine_files"]]:
                    store.delete(f"{prefix}/{entry['path']}")
                out["records"]["raw"] += sum(e["rows"] for e in manifest["files"])
                out["records"]["quarantine"] += sum(e["rows"] for e in manifest["quarantine_files"])
                retention.update(data_purged_at=stamp, policy=f"raw_days={r.raw_days}")
                out["raw_versions"].append(manifest["id"])
                changed = True
            elif r.quarantine_days and day < today - timedelta(days=r.quarantine_days) \
                    and not retention.get("quarantine_purged_at") and not retention.get("data_purged_at") \
                    and any(e["rows"] for e in manifest["quarantine_files"]):
                empty = _empty_quarantine()
                entries = []
                for entry in manifest["quarantine_files"]:
                    store.write_bytes(f"{prefix}/{entry['path']}", empty)
                    out["records"]["quarantine"] += entry["rows"]
                    entries.append({**entry, "rows": 0, "bytes": len(empty),
                                    "sha256": hashlib.sha256(empty).hexdigest()})
                manifest["quarantine_files"] = entries
                retention.update(quarantine_purged_at=stamp, quarantine_policy=f"quarantine_days={r.quarantine_days}")
                out["quarantine_versions"].append(manifest["id"])
                changed = True
            if changed:
                manifest["retention"] = retention
                store.write_bytes(f"{prefix}/manifest.json", json.dumps(manifest, indent=2, sort_keys=True).encode())
    if r.annotation_days:
        jobs_prefix = f"annotations/{cfg.dataset}/jobs/"
        for key in store.list(jobs_prefix):
            if not key.endswith("/ledger.json"):
                continue
            ledger = json.loads(store.read_bytes(key))
            when = ledger.get("updated_at") or ""
            items_key = key[: -len("ledger.json")] + "items.jsonl"
            if ledger.get("status") != "published" or not when or not store.exists(items_key):
                continue
            if date.fromisoformat(when[:10]) < today - timedelta(days=r.annotation_days):
                out["records"]["annotation_items"] += sum(1 for line in store.read_bytes(items_key).splitlines()
                                                          if line.strip())
                store.delete(items_key)
                out["annotation_jobs"].append(ledger["job_id"])
    out["changed"] = bool(out["raw_versions"] or out["quarantine_versions"] or out["annotation_jobs"])
    if out["changed"]:
        basis = json.dumps([out["raw_versions"], out["quarantine_versions"], out["annotation_jobs"]])
        record_event(store, "retention", event_key=f"{today}:{hashlib.sha256(basis.encode()).hexdigest()[:16]}",
                     details={k: out[k] for k in ("today", "records")} | {
                         "raw_versions": len(out["raw_versions"]), "quarantine_versions": len(out["quarantine_versions"]),
                         "annotation_jobs": len(out["annotation_jobs"]),
                         "policy": r.model_dump()}, who=who)
        log.info("retention as of %s: %s", today, out["records"])
    return out
