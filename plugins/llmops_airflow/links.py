"""Operator extra links: from a task to what it produced."""

from __future__ import annotations

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom

DATA_DOCS_XCOM_KEY = "data_docs_url"


class DataDocsLink(BaseOperatorLink):
    """"Data Docs" button: the Great Expectations Data Docs of the version the task validated."""

    name = "Data Docs"

    def get_link(self, operator, *, ti_key):  # type: ignore[no-untyped-def]
        return XCom.get_value(ti_key=ti_key, key=DATA_DOCS_XCOM_KEY) or ""


HIT_GROUP_XCOM_KEY = "hit_group_url"


class HitGroupLink(BaseOperatorLink):
    """"HIT group" button: the HITs on the MTurk worker site (sandbox or production) the task created."""

    name = "HIT group"

    def get_link(self, operator, *, ti_key):  # type: ignore[no-untyped-def]
        url = XCom.get_value(ti_key=ti_key, key=HIT_GROUP_XCOM_KEY) or ""
        return url if url.startswith("https://") else ""


MLFLOW_RUN_XCOM_KEY = "mlflow_run_url"


class MlflowRunLink(BaseOperatorLink):
    """"MLflow run" button: the run a training or evaluation task logged to an MLflow server."""

    name = "MLflow run"

    def get_link(self, operator, *, ti_key):  # type: ignore[no-untyped-def]
        url = XCom.get_value(ti_key=ti_key, key=MLFLOW_RUN_XCOM_KEY) or ""
        return url if url.startswith(("https://", "http://")) else ""


# the key the task runner pushes the triggered run's id under (the provider's XCOM_RUN_ID)
TRIGGER_RUN_ID_XCOM_KEY = "trigger_run_id"


class TriggeredDagLink(BaseOperatorLink):
    """"Triggered DAG" button: the run a TriggerRunOperator triggered (what the provider's
    TriggerDagRunLink shows, without importing the provider's operator module at parse time)."""

    name = "Triggered DAG"

    def get_link(self, operator, *, ti_key):  # type: ignore[no-untyped-def]
        run_id = XCom.get_value(ti_key=ti_key, key=TRIGGER_RUN_ID_XCOM_KEY)
        if not run_id:  # not triggered (skipped, failed): nothing to link to
            return ""
        from airflow.utils.helpers import build_airflow_dagrun_url  # what the provider's link uses

        return build_airflow_dagrun_url(dag_id=operator.trigger_dag_id, run_id=run_id)


def mlflow_run_url(tracking_uri: str | None, experiment_id: str | None, run_id: str | None) -> str:
    """The MLflow UI page of a run, when the tracking URI is a server (credentials stripped);
    "" for a local store, which has no UI to link to."""
    from urllib.parse import urlsplit, urlunsplit

    if not tracking_uri or not experiment_id or not run_id:
        return ""
    parts = urlsplit(tracking_uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    base = urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"
