"""Operators of the annotation stage: select -> export HITs -> (wait: sensors/annotation.py) ->
review -> publish the labeled version.

Each returns a small JSON-able summary (ids and counts; never text, worker ids or secrets) and is
safe to retry: the job id is derived from (DAG, partition, curated version, settings), HITs carry
MTurk's ``UniqueRequestToken`` and every side effect is recorded in the job's ledger first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from airflow.sdk import Context

from llmops_airflow.links import HIT_GROUP_XCOM_KEY, DataDocsLink, HitGroupLink
from llmops_airflow.operators.collection import (
    _ConfiguredOperator,
    producer_from_context,
    push_docs_link,
    summary,
)
from llmops_airflow.operators.trigger import TriggerRunOperator


def open_crowd(cfg: Any, store: Any) -> Any:
    """The configured crowd backend; MTurk credentials come from the ``mturk.conn_id`` connection."""
    from llmops.annotation.jobs import make_backend

    client = None
    if cfg.annotation.backend == "mturk":
        from llmops_airflow.hooks.mturk import MTurkHook

        client = MTurkHook(aws_conn_id=cfg.annotation.mturk.conn_id, sandbox=cfg.annotation.mturk.sandbox).conn
    return make_backend(cfg, store, mturk_client=client)


@contextmanager
def no_retry_on_policy_errors() -> Iterator[None]:
    """Failures a retry cannot fix (budget, PII guard, a failed gate) fail the task at once."""
    from airflow.sdk.exceptions import AirflowFailException

    from llmops.annotation.hits import BudgetExceededError
    from llmops.annotation.jobs import PIIGuardError
    from llmops.quality.gate import GateFailedError

    try:
        yield
    except (BudgetExceededError, PIIGuardError, GateFailedError) as exc:
        raise AirflowFailException(str(exc)) from None


def _curated_from_events(context: Context) -> list[dict[str, Any]]:
    """The curated-version events that triggered this run, oldest first (the scheduler batches
    the events that arrive before it creates the run)."""
    events = context.get("triggering_asset_events") or {}
    found = []
    for key in list(events):
        for event in events[key]:
            extra = dict(getattr(event, "extra", None) or {})
            if str(extra.get("version_id", "")).startswith("curated-"):
                found.append((str(getattr(event, "timestamp", "")), extra))
    return [extra for _, extra in sorted(found, key=lambda pair: pair[0])]


class SelectForAnnotationOperator(_ConfiguredOperator):
    """Chooses the items to label from a curated version and plans the HITs.

    The curated versions are ``curated_version_id`` when given (comma-separated for several), else
    the version of ``partition``, else every partition's current curated version that is not
    labeled or being labeled yet (:func:`llmops.annotation.jobs.unlabeled_curated`, oldest first):
    the store decides, not only the asset events that started the run. With nothing left to label
    (an event another run already handled) the task is skipped and the run succeeds.
    """

    template_fields: Sequence[str] = ("config_path", "partition", "curated_version_id", "focus")
    ui_color = "#fff3e0"

    def __init__(self, *, curated_version_id: str | None = None, focus: dict[str, list[str]] | str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.curated_version_id = curated_version_id
        self.focus = focus

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from llmops.annotation.jobs import prepare_job
        from llmops.versions import latest_for_partition, read_manifest

        cfg = self.load_config()
        store = self.open_store(cfg)
        versions = [v.strip() for v in (self.curated_version_id or "").split(",") if v.strip()]
        partition = (self.partition or "").strip() or None
        if not versions and partition:
            found = latest_for_partition(store, cfg.dataset, "curated", partition)
            versions = [found] if found else []
            if not versions:
                raise AirflowFailException(f"partition {partition} has no curated version to annotate")
        if not versions:
            from airflow.sdk.exceptions import AirflowSkipException

            from llmops.annotation.jobs import unlabeled_curated

            events = [e["version_id"] for e in _curated_from_events(context)]
            if events:
                self.log.info("triggered by %s curated asset event(s): %s", len(events), events)
            pending = unlabeled_curated(cfg, store)
            if not pending:
                raise AirflowSkipException(
                    "nothing to label: every current curated version is labeled or in a job under way"
                    + (f" (the triggering versions {events} were handled by another run)" if events else ""))
            versions = [v for _, v in pending]
            partition = pending[-1][0]
            missed = sorted(set(versions) - set(events))
            self.log.info("labeling %s curated version(s) not labeled yet: %s%s", len(versions), versions,
                          f"; not in this run's events: {missed}" if events and missed else "")
        partition = partition or read_manifest(store, cfg.dataset, "curated", versions[-1]).get("partition") \
            or versions[-1]
        focus = self.focus
        if isinstance(focus, str):  # rendered from a template / the DAG param
            import json

            focus = json.loads(focus) if focus.strip() not in ("", "None", "null") else None
        with no_retry_on_policy_errors():
            out = prepare_job(cfg, store=store, curated_version_id=versions, partition=partition,
                              dag_id=context["ti"].dag_id, focus=focus or None)
        self.log.info("annotation job %s: %s", out["job_id"], out)
        return out


class _JobOperator(_ConfiguredOperator):
    """An operator working on one annotation job (the ``select`` task's ``job_id``)."""

    template_fields: Sequence[str] = ("config_path", "job_id")

    def __init__(self, *, job_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("partition", "")
        super().__init__(**kwargs)
        self.job_id = job_id


class CrowdExportOperator(_JobOperator):
    """Creates the job's HITs (budget checked first; never twice) and links the HIT group."""

    operator_extra_links = (HitGroupLink(),)
    ui_color = "#ffe0b2"

    def execute(self, context: Context) -> dict[str, Any]:
        from llmops.annotation.jobs import export_job

        cfg = self.load_config()
        store = self.open_store(cfg)
        with no_retry_on_policy_errors():
            out = export_job(cfg, store=store, job_id=self.job_id, backend=open_crowd(cfg, store))
        if out["worker_url"]:
            context["ti"].xcom_push(key=HIT_GROUP_XCOM_KEY, value=out["worker_url"])
            self.log.info("HIT group: %s", out["worker_url"])
        return out


class CrowdReviewOperator(_JobOperator):
    """Approves/rejects the submitted assignments by gold answers, pays bonuses, blocks repeat offenders."""

    ui_color = "#fff8e1"

    def execute(self, context: Context) -> dict[str, Any]:
        from llmops.annotation.jobs import review_job

        cfg = self.load_config()
        store = self.open_store(cfg)
        return review_job(cfg, store=store, job_id=self.job_id, backend=open_crowd(cfg, store))


class PublishLabelsOperator(_JobOperator):
    """Aggregates the answers into a ``labeled`` dataset version (Great Expectations ``labeled``
    gate) and announces it on the first outlet."""

    operator_extra_links = (DataDocsLink(),)
    ui_color = "#e8f5e9"

    def execute(self, context: Context) -> dict[str, Any]:
        from llmops.annotation.jobs import publish_labels

        cfg = self.load_config()
        store = self.open_store(cfg)
        with no_retry_on_policy_errors():
            manifest = publish_labels(cfg, store=store, job_id=self.job_id, producer=producer_from_context(context))
        out = summary(manifest)
        ann = manifest["annotation"]
        out["annotation"] = {k: ann[k] for k in ("job_id", "backend", "label_distribution", "gold")}
        out["annotation"]["agreement_alpha"] = ann["aggregation"]["krippendorff_alpha"]
        self.log.info("labeled version %s: %s; labels %s; gold accuracy %s; alpha %s", out["version_id"],
                      out["counts"], ann["label_distribution"], ann["gold"]["accuracy"],
                      ann["aggregation"]["krippendorff_alpha"])
        push_docs_link(context, manifest)
        for outlet in self.outlets or []:
            context["outlet_events"][outlet].extra = {
                "version_id": out["version_id"], "dataset": out["dataset"], "partition": out["partition"],
                "parents": out["parents"], "counts": {k: v for k, v in out["counts"].items() if k != "by_reason"},
                "labels": ann["labels"],
            }
        return out


class CatchUpOperator(TriggerRunOperator):
    """The last task of an annotation run: when curated versions are still unlabeled (published
    while this run was busy: the scheduler may drop the asset events that arrive while the DAG is at
    ``max_active_runs``, apache/airflow#56050), trigger one more run of this DAG for them; else do
    nothing. The triggered run's id is derived from the versions, so a retry triggers nothing twice.
    """

    template_fields: Sequence[str] = (*TriggerRunOperator.template_fields, "config_path")
    ui_color = "#fff8e1"

    def __init__(self, *, config_path: str, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_dag_id", "{{ dag.dag_id }}")
        kwargs.setdefault("trigger_run_id", "")
        super().__init__(**kwargs)
        self.config_path = config_path

    def execute(self, context: Context) -> None:
        import hashlib

        from llmops.annotation.jobs import unlabeled_curated
        from llmops.config import load_config
        from llmops_airflow.dagconfig import resolve_config_path
        from llmops_airflow.hooks.store import ObjectStoreHook

        cfg = load_config(resolve_config_path(self.config_path))
        pending = unlabeled_curated(cfg, ObjectStoreHook.for_config(cfg).store)
        if not pending:
            self.log.info("every current curated version is labeled or in a job under way: nothing to catch up")
            return None
        versions = [v for _, v in pending]
        self.log.info("%s curated version(s) still unlabeled (%s): one more run for them", len(versions),
                      ", ".join(f"{p}: {v}" for p, v in pending))
        self.trigger_run_id = "catch_up__" + hashlib.sha256(",".join(versions).encode()).hexdigest()[:16]
        self.conf = {"config_path": self.config_path}
        self.skip_when_already_exists = True
        return super().execute(context)
