"""Sensor for an annotation job: waits (deferred, in the triggerer, by default) until every
assignment is submitted, then applies the deadline policy when time runs out first."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, Context

from llmops_airflow.operators.collection import DEFAULT_CONFIG, resolve_config_path


class AnnotationSensor(BaseSensorOperator):
    """Waits for the assignments of ``job_id``.

    On the deadline (``annotation.wait``): ``proceed`` continues with what is in, ``fail`` fails
    the task, ``extend`` extends the HITs (and adds ``extra_assignments``) up to
    ``max_extensions`` times, then proceeds. With ``deferrable=False`` it pokes like any sensor.
    """

    template_fields: Sequence[str] = ("config_path", "job_id")
    ui_color = "#fce4ec"

    def __init__(self, *, job_id: str, config_path: str | None = DEFAULT_CONFIG, deferrable: bool = True,
                 **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)
        self.job_id = job_id
        self.config_path = config_path
        self.deferrable = deferrable

    # -- helpers ---------------------------------------------------------------------------------
    def _cfg_store(self) -> tuple[Any, Any]:
        from llmops.config import load_config
        from llmops_airflow.hooks.store import ObjectStoreHook

        cfg = load_config(resolve_config_path(self.config_path))
        store = ObjectStoreHook.for_config(cfg).store
        return cfg, store

    def _progress(self) -> dict[str, Any]:
        from llmops_airflow.triggers.annotation import job_progress_for

        return job_progress_for(self.config_path, self.job_id)

    def _defer(self, deadline: float) -> None:
        from llmops_airflow.triggers.annotation import AnnotationCompleteTrigger

        cfg, _ = self._cfg_store()
        self.defer(
            trigger=AnnotationCompleteTrigger(config_path=self.config_path, job_id=self.job_id, deadline=deadline,
                                              poll_interval=cfg.annotation.wait.poll_interval_s),
            method_name="execute_complete",
            # the trigger fires at the deadline itself; the timeout only guards a lost triggerer
            timeout=timedelta(seconds=max(60.0, deadline - time.time()) + 3600),
        )

    def _on_deadline(self, progress: dict[str, Any]) -> dict[str, Any] | None:
        """Apply the policy; returns the result to finish with, or None after extending."""
        from airflow.sdk.exceptions import AirflowFailException

        from llmops.annotation.jobs import extend_job, read_ledger
        from llmops_airflow.operators.annotation import open_crowd

        cfg, store = self._cfg_store()
        policy = cfg.annotation.wait
        got = f"{progress['submitted']} of {progress['expected']} assignments"
        if policy.on_deadline == "fail":
            raise AirflowFailException(f"annotation job {self.job_id}: deadline passed with {got} submitted "
                                       "(annotation.wait.on_deadline: fail)")
        if policy.on_deadline == "extend":
            n = len(read_ledger(store, cfg.dataset, self.job_id)["extensions"]) + 1
            if n <= policy.max_extensions:
                entry = extend_job(cfg, store=store, job_id=self.job_id, backend=open_crowd(cfg, store), extension=n)
                self.log.warning("deadline passed with %s; extension %s/%s of %s HITs", got, n,
                                 policy.max_extensions, len(entry["hits"]))
                return None
        self.log.warning("annotation job %s: deadline passed with %s; proceeding with what is in", self.job_id, got)
        return {**progress, "deadline_passed": True}

    # -- sensor ----------------------------------------------------------------------------------
    def poke(self, context: Context) -> bool:
        from llmops.annotation.jobs import read_ledger

        progress = self._progress()
        if progress["done"]:
            return True
        cfg, store = self._cfg_store()
        if time.time() >= read_ledger(store, cfg.dataset, self.job_id)["deadline"]:
            return self._on_deadline(progress) is not None
        return False

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        progress = self._progress()
        if progress["done"]:
            self.log.info("all %s assignments are in", progress["expected"])
            return progress
        self._defer(float(progress["deadline"]))
        return None  # pragma: no cover - defer raises

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowException

        from llmops.annotation.jobs import read_ledger

        status = event.get("status")
        if status == "complete":
            self.log.info("annotation job %s: all %s assignments are in", self.job_id, event["expected"])
            return event
        if status == "deadline":
            result = self._on_deadline(event)
            if result is not None:
                return result
            cfg, store = self._cfg_store()
            self._defer(float(read_ledger(store, cfg.dataset, self.job_id)["deadline"]))
        raise AirflowException(f"annotation job {self.job_id}: waiting failed: {event.get('message', event)}")
