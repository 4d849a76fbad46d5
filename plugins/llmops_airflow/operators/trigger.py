"""Trigger a run of another DAG, without the provider's parse-time cost.

``airflow.providers.standard.operators.trigger_dagrun`` imports ``airflow.api.common.trigger_dag``,
``airflow.models.dagrun`` and ``airflow.models.serialized_dag`` at module level (~0.8 s in a fresh
DAG processor child, 15 times a light DAG file). :class:`TriggerRunOperator` is the fire-and-forget
case of ``TriggerDagRunOperator``: on Airflow 3 that operator only raises the Task SDK's
``DagRunTriggerException``, and the task runner creates the run through the execution API, marks
the task skipped when the run id exists and ``skip_when_already_exists`` is set, and pushes the
``trigger_run_id`` XCom that the "Triggered DAG" link reads. This operator raises the same signal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from llmops_airflow.links import TriggeredDagLink

__all__ = ["TriggerRunOperator"]


class TriggerRunOperator(BaseOperator):
    """Trigger a run of ``trigger_dag_id`` (fire and forget), as ``TriggerDagRunOperator`` does on Airflow 3.

    :param trigger_dag_id: the DAG to trigger (templated).
    :param trigger_run_id: the run id of the triggered run (templated, required): a fixed one makes a
        retry or a re-run trigger nothing twice.
    :param conf: the triggered run's conf (templated; an ``XComArg`` works and sets the dependency).
    :param skip_when_already_exists: mark the task skipped, not failed, when that run already exists.
    """

    template_fields: Sequence[str] = ("trigger_dag_id", "trigger_run_id", "conf", "skip_when_already_exists")
    template_fields_renderers = {"conf": "py"}
    ui_color = "#ffefeb"  # the provider operator's
    operator_extra_links = (TriggeredDagLink(),)

    def __init__(
        self,
        *,
        trigger_dag_id: str,
        trigger_run_id: str,
        conf: dict[str, Any] | None = None,
        skip_when_already_exists: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.trigger_dag_id = trigger_dag_id
        self.trigger_run_id = trigger_run_id
        self.conf = conf
        self.skip_when_already_exists = skip_when_already_exists

    def execute(self, context: Context) -> None:
        from airflow.sdk.exceptions import DagRunTriggerException

        if not self.trigger_run_id:
            raise ValueError(f"{self.task_id}: trigger_run_id is empty; give the triggered run a fixed id")
        self.log.info("Triggering %s, run id %s", self.trigger_dag_id, self.trigger_run_id)
        raise DagRunTriggerException(
            trigger_dag_id=self.trigger_dag_id,
            dag_run_id=self.trigger_run_id,
            conf=self.conf,
            reset_dag_run=False,
            skip_when_already_exists=self.skip_when_already_exists,
            wait_for_completion=False,  # fire and forget: these fields only matter when waiting
            allowed_states=["success"],
            failed_states=["failed"],
            poke_interval=60,
            deferrable=False,
        )
