"""
### llm_drift_nightly

Every night: does the champion still work on today's data, where did the data move, and what to do.

1. **analyze** – the window's curated partitions (`drift.lookback_days` ending with the night
   before the run) against the champion's training data (its model version's dataset lineage):
   text statistics, MiniLM embeddings (MMD + domain classifier), predicted-label mix, per slice;
   the champion on its golden suites and on items labeled in the window, against its
   promotion-time numbers. Report (HTML + JSON, with the trend over earlier nights) on the object
   store next to the data under `drift/<dataset>/<night>/`, and in MLflow (experiment `llm_drift`).
2. **alert** – on a breach or overdue work, the `drift.notifier` (a JSON-lines file by default; SMTP or Slack by
   connection id).
3. **request_labels** – on a breach, one `llm_annotation` run on the window's newest curated
   partition, focused on the drifted slices (run id `drift__<night>`, so a retry or a re-run triggers nothing twice); its labels
   retrain through `llm_fine_tuning`, which runs on the labeled asset.
4. **catch_up_labels** – the watchdog (`drift.watchdog`): curated versions published more than
   `max_age_hours` ago without labels, and registered model versions without an evaluation, are in
   the summary and the report and raise the alert; with `trigger`, one `llm_annotation` run
   (`watchdog__<night>`) labels every unlabeled curated version.
5. **retrain** – on a breach, `llm_fine_tuning` right away when labeled data newer than the
   champion's training data already exists.

Each run analyses its own window, so `airflow backfill create --dag-id llm_drift_nightly
--from-date ... --to-date ...` gives one comparable report per night.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from typing import Any

from airflow.sdk import CronTriggerTimetable, Param, dag, task

from llmops_airflow.dagconfig import DEFAULT_CONFIG, dag_settings
from llmops_airflow.dagconfig import load_pipeline_config as _config
from llmops_airflow.operators.trigger import TriggerRunOperator

# read when the DAG is parsed (a light YAML read, not the validated model): LLMOPS_CONFIG or the project default
_SCHEDULE = dag_settings(os.environ.get("LLMOPS_CONFIG") or DEFAULT_CONFIG).drift.schedule
NIGHT = "{{ ti.xcom_pull(task_ids='analyze')['night'] }}"


def night_of(params: dict[str, Any], context: dict[str, Any]) -> date:
    """The night a run analyses: the ``night`` param, else the day before the end of the run's data
    interval; a manual run without a logical date (the REST API's and the CLI's default) has no
    interval, so the day before its ``run_after``."""
    if params.get("night"):
        return date.fromisoformat(str(params["night"]))
    end = context.get("data_interval_end") or context.get("logical_date") or context["dag_run"].run_after
    return (end - timedelta(days=1)).date()


@dag(
    dag_id="llm_drift_nightly",
    schedule=CronTriggerTimetable(_SCHEDULE, timezone="UTC", interval=timedelta(days=1)),
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["llmops", "drift", "monitoring"],
    default_args={"owner": "llmops", "retries": 2, "retry_delay": timedelta(minutes=2)},
    params={
        "config_path": Param(DEFAULT_CONFIG, type="string",
                             description="Pipeline config, relative to the project folder or absolute."),
        "night": Param(None, type=["null", "string"], format="date",
                       description="Analyse the window ending on this day (default: the day before the run)."),
    },
)
def llm_drift_nightly() -> None:
    @task
    def analyze(params: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
        import logging

        from llmops.drift.nightly import run_nightly
        from llmops_airflow.hooks.store import ObjectStoreHook

        params = params or {}
        night = night_of(params, context)
        cfg = _config(params["config_path"])
        # the store through the Airflow connection of storage.conn_id (S3 keys stay in the connection)
        summary = run_nightly(cfg, night, store=ObjectStoreHook.for_config(cfg).store,
                              airflow_run=f"{context['dag'].dag_id}/{context['run_id']}")
        versions = summary["window"]["curated_versions"]
        summary["annotate_partition"] = max(versions) if versions else None
        # label where the data moved: the drifted slices of one field (the first that has any)
        focus: dict[str, list[str]] = {}
        for name in summary["drifted_slices"]:
            field, _, value = name.partition("=")
            if not focus or field in focus:
                focus.setdefault(field, []).append(value)
        summary["focus"] = focus or None
        log = logging.getLogger("airflow.task")
        if summary.get("skipped"):
            log.info("drift %s: skipped: %s", summary["night"], summary["skipped"])
        else:
            log.info("drift %s: %s; %d breach(es)%s; report %s", summary["night"],
                     "DRIFT" if summary["drift"] else "no drift", len(summary["breaches"]),
                     f"; drifted slices {', '.join(summary['drifted_slices'])}" if summary["drifted_slices"] else "",
                     summary["report_path"])
            for b in summary["breaches"]:
                log.info("  breach %s", b)
        return summary

    @task
    def alert(summary: dict[str, Any], params: dict[str, Any] | None = None, **context: Any) -> bool:
        from llmops_airflow.notifiers import build_notifier

        if not summary["drift"] and not (summary.get("watchdog") or {}).get("overdue"):
            return False
        build_notifier(_config((params or {})["config_path"]).drift.notifier, summary).notify(context)
        return True

    @task.short_circuit
    def needs_labels(summary: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The llm_annotation conf on a breach (a falsy return skips request_labels)."""
        config_path = (params or {})["config_path"]
        cfg = _config(config_path)
        if not (summary["drift"] and cfg.drift.actions.annotate and summary.get("annotate_partition")):
            return None
        return {"config_path": config_path, "partition": summary["annotate_partition"], "focus": summary["focus"]}

    @task.short_circuit
    def overdue_labels(summary: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The llm_annotation conf when the watchdog found curated versions waiting too long for labels."""
        config_path = (params or {})["config_path"]
        found = summary.get("watchdog") or {}
        if not (found.get("unlabeled") and _config(config_path).drift.watchdog.trigger):
            return None
        return {"config_path": config_path}  # the run labels every unlabeled curated version

    @task.short_circuit
    def needs_retraining(summary: dict[str, Any], params: dict[str, Any] | None = None) -> bool:
        cfg = _config((params or {})["config_path"])
        return bool(summary["drift"] and cfg.drift.actions.retrain and summary.get("new_labeled_versions"))

    summary = analyze()
    alert(summary)
    TriggerRunOperator(
        task_id="request_labels",
        trigger_dag_id="llm_annotation",
        trigger_run_id=f"drift__{NIGHT}",
        conf=needs_labels(summary),
        skip_when_already_exists=True,
    )
    TriggerRunOperator(
        task_id="catch_up_labels",
        trigger_dag_id="llm_annotation",
        trigger_run_id=f"watchdog__{NIGHT}",
        conf=overdue_labels(summary),
        skip_when_already_exists=True,
    )
    needs_retraining(summary) >> TriggerRunOperator(
        task_id="retrain",
        trigger_dag_id="llm_fine_tuning",
        trigger_run_id=f"drift__{NIGHT}",
        conf={"config_path": "{{ params.config_path }}"},
        skip_when_already_exists=True,
    )


llm_drift_nightly()
