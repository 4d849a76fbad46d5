"""Trigger that waits in the triggerer until an annotation job's assignments are all in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


def job_progress_for(config_path: str | None, job_id: str) -> dict[str, Any]:
    """Load the config, open the store and the crowd, and count the job's assignments."""
    from llmops.annotation.jobs import job_progress
    from llmops.config import load_config
    from llmops_airflow.hooks.store import ObjectStoreHook
    from llmops_airflow.operators.annotation import open_crowd
    from llmops_airflow.operators.collection import resolve_config_path

    cfg = load_config(resolve_config_path(config_path))
    store = ObjectStoreHook.for_config(cfg).store
    return job_progress(store, cfg.dataset, job_id, open_crowd(cfg, store))


class AnnotationCompleteTrigger(BaseTrigger):
    """Polls the crowd every ``poll_interval`` seconds (in a thread: boto3 is blocking) and fires
    once: ``complete`` when every assignment is submitted, ``deadline`` when ``deadline`` (epoch
    seconds) passes first, ``error`` after ``max_errors`` failed polls in a row."""

    def __init__(self, *, config_path: str | None, job_id: str, deadline: float, poll_interval: float = 60.0,
                 max_errors: int = 5) -> None:
        super().__init__()
        self.config_path = config_path
        self.job_id = job_id
        self.deadline = float(deadline)
        self.poll_interval = float(poll_interval)
        self.max_errors = int(max_errors)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"config_path": self.config_path, "job_id": self.job_id, "deadline": self.deadline,
             "poll_interval": self.poll_interval, "max_errors": self.max_errors},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        errors = 0
        while True:
            try:
                progress = await asyncio.to_thread(job_progress_for, self.config_path, self.job_id)
                errors = 0
            except Exception as exc:  # a poll can fail transiently (network, throttling)
                errors += 1
                self.log.warning("poll %s of job %s failed: %s", errors, self.job_id, exc)
                if errors >= self.max_errors:
                    yield TriggerEvent({"status": "error", "job_id": self.job_id, "message": str(exc)})
                    return
                await asyncio.sleep(self.poll_interval)
                continue
            self.log.info("job %s: %s/%s assignments submitted", self.job_id, progress["submitted"], progress["expected"])
            if progress["done"]:
                yield TriggerEvent({"status": "complete", **progress})
                return
            now = time.time()
            if now >= self.deadline:
                yield TriggerEvent({"status": "deadline", **progress})
                return
            await asyncio.sleep(max(0.0, min(self.poll_interval, self.deadline - now)))
