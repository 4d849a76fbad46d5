"""
### llm_dataset_gate

Validate any published dataset version with a Great Expectations suite, on demand – for example
to re-check old versions after a suite changed, or to gate a version produced elsewhere.

Params: `dataset`, `stage`, `version_id`, `suite` (a file under `include/expectations/` or a
path) and `policy`: `fail` (the task fails, naming each failed expectation), `warn` (the result
and Data Docs are stored beside the version) or `quarantine` (a successor version without the
failing rows is published; its id is the task's XCom). The task's **Data Docs** link opens the
rendered validation.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag

from llmops_airflow.operators.quality import GreatExpectationsGateOperator


@dag(
    dag_id="llm_dataset_gate",
    schedule=None,
    start_date=datetime(2026, 11, 1),
    catchup=False,
    doc_md=__doc__,
    tags=["llmops", "quality"],
    default_args={"owner": "llmops", "retries": 2, "retry_delay": timedelta(seconds=30)},
    params={
        "dataset": Param("support_messages", type="string"),
        "stage": Param("curated", type="string", enum=["raw", "curated", "labeled", "eval"]),
        "version_id": Param("", type="string", description="Version to validate, e.g. curated-0123abcd..."),
        "suite": Param("curated", type="string"),
        "policy": Param("fail", type="string", enum=["fail", "warn", "quarantine"]),
    },
)
def llm_dataset_gate() -> None:
    GreatExpectationsGateOperator(
        task_id="gate",
        dataset="{{ params.dataset }}",
        stage="{{ params.stage }}",
        version_id="{{ params.version_id }}",
        suite="{{ params.suite }}",
        policy="{{ params.policy }}",
    )


llm_dataset_gate()
