"""Registers the project's Airflow plugin: the Data Docs, HIT group, MLflow and Triggered DAG links and the
app serving Data Docs."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from llmops_airflow.docs_app import create_app
from llmops_airflow.links import DataDocsLink, HitGroupLink, MlflowRunLink, TriggeredDagLink


class LLMOpsPlugin(AirflowPlugin):
    name = "llmops"
    operator_extra_links = [DataDocsLink(), HitGroupLink(), MlflowRunLink(), TriggeredDagLink()]
    fastapi_apps = [{"app": create_app(), "url_prefix": "/llmops", "name": "LLMOps Data Docs"}]
