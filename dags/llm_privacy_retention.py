"""
### llm_privacy_retention

Daily enforcement of `privacy.retention` (see `include/config/pipeline.yaml`): raw partitions
(unredacted text), quarantine files and annotation exports older than their limit are removed;
manifests keep the counts and say when and why. Ages count to the run's logical date, so a
backfill or a re-run gives the same result; a run with nothing to remove changes nothing. Each
run that removes data adds a `retention` event to the audit trail (`llmops audit`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from llmops_airflow.dagconfig import DEFAULT_CONFIG
from llmops_airflow.dagconfig import load_pipeline_config as _config


@dag(
    dag_id="llm_privacy_retention",
    schedule=CronDataIntervalTimetable("30 3 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["llmops", "privacy"],
    default_args={"owner": "llmops", "retries": 2, "retry_delay": timedelta(minutes=5)},
    params={"config_path": Param(DEFAULT_CONFIG, type="string",
                                 description="Pipeline config, relative to the project folder or absolute.")},
)
def llm_privacy_retention() -> None:
    @task
    def enforce(params: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
        import pendulum

        from llmops.privacy.retention import enforce_retention
        from llmops_airflow.hooks.store import ObjectStoreHook

        cfg = _config((params or {})["config_path"])
        # the end of the run's interval: a backfilled night counts ages as that night did
        end = context.get("data_interval_end") or context.get("logical_date") or pendulum.now("UTC")
        today = end.date()
        return enforce_retention(cfg, store=ObjectStoreHook.for_config(cfg).store, today=today)

    enforce()


llm_privacy_retention()
