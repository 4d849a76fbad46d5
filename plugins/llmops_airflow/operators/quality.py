"""A Great Expectations gate over any published dataset version, usable from any DAG.

    GreatExpectationsGateOperator(
        task_id="gate", dataset="support_messages", stage="curated",
        version_id="{{ ti.xcom_pull(task_ids='curate')['version_id'] }}", suite="curated", policy="fail",
    )

``fail`` fails the task with one line per failed expectation; ``warn`` records the result (and
its Data Docs) beside the version and succeeds; ``quarantine`` publishes a successor version
without the failing rows. The XCom is ``{"version_id", "validation"}`` (the successor's id when
rows moved) and the task's "Data Docs" link opens the rendered validation.

The same, as a TaskFlow task: ``from llmops_airflow.operators.quality import quality_gate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from llmops_airflow.links import DATA_DOCS_XCOM_KEY, DataDocsLink
from llmops_airflow.operators.collection import DEFAULT_CONFIG, producer_from_context, resolve_config_path


def _gate(context: Context, *, config_path: str | None, dataset: str, stage: str, version_id: str, suite: str,
          policy: str, params: dict[str, Any] | None, log: Any) -> dict[str, Any]:
    from airflow.sdk.exceptions import AirflowFailException

    from llmops.config import load_config
    from llmops.quality.gate import GateFailedError
    from llmops.quality.published import gate_published_version
    from llmops_airflow.docs_app import docs_url
    from llmops_airflow.hooks.store import ObjectStoreHook

    cfg = load_config(resolve_config_path(config_path))
    store = ObjectStoreHook.for_config(cfg).store
    try:
        out = gate_published_version(store, cfg, dataset=dataset, stage=stage, version_id=version_id, suite=suite,
                                     policy=policy, producer=producer_from_context(context), params=params)
    except GateFailedError as exc:  # the data will not change on a retry
        raise AirflowFailException(str(exc)) from None
    url = docs_url(out.pop("docs_key"))
    context["ti"].xcom_push(key=DATA_DOCS_XCOM_KEY, value=url)
    v = out["validation"]
    log.info("gate %s (%s) on %s: success=%s, %s failed expectation(s); Data Docs: %s",
             suite, policy, version_id, v["success"], v["failed_expectations"], url)
    return out


class GreatExpectationsGateOperator(BaseOperator):
    """Validate a published dataset version with an expectation suite and apply a policy."""

    template_fields: Sequence[str] = ("config_path", "dataset", "stage", "version_id", "suite", "policy", "suite_params")
    operator_extra_links = (DataDocsLink(),)
    ui_color = "#fff3e0"

    def __init__(self, *, dataset: str, stage: str, version_id: str, suite: str, policy: str = "fail",
                 config_path: str | None = DEFAULT_CONFIG, suite_params: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config_path = config_path
        self.dataset = dataset
        self.stage = stage
        self.version_id = version_id
        self.suite = suite
        self.policy = policy
        self.suite_params = suite_params

    def execute(self, context: Context) -> dict[str, Any]:
        return _gate(context, config_path=self.config_path, dataset=self.dataset, stage=self.stage,
                     version_id=self.version_id, suite=self.suite, policy=self.policy, params=self.suite_params,
                     log=self.log)


def _quality_gate(dataset: str, stage: str, version_id: str, suite: str, policy: str = "fail",
                  config_path: str | None = DEFAULT_CONFIG, **context: Any) -> dict[str, Any]:
    """TaskFlow form of :class:`GreatExpectationsGateOperator`."""
    import logging

    return _gate(context, config_path=config_path, dataset=dataset, stage=stage, version_id=version_id,  # type: ignore[arg-type]
                 suite=suite, policy=policy, params=None, log=logging.getLogger("llmops.quality_gate"))


_quality_gate.__name__ = _quality_gate.__qualname__ = "quality_gate"


def __getattr__(name: str) -> Any:
    """``quality_gate`` is built on first use: ``airflow.sdk.task`` imports the standard provider's
    Python operator, which a DAG file that only uses the operator should not pay for at parse time."""
    if name == "quality_gate":
        from airflow.sdk import task

        gate = task(task_id="quality_gate")(_quality_gate)
        globals()["quality_gate"] = gate
        return gate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
