"""
### llm_annotation

Human labels for a **curated dataset version**, from a crowd: Amazon Mechanical Turk in
production (sandbox by default), a local simulated crowd in the embedded setup – same tasks,
same ledger.

1. **select** – choose items by the configured strategy (stratified, uncertainty with the champion
   model, diversity on MiniLM embeddings), pre-label them with labeling functions, mix in gold
   (known-answer) items; refuse the export unless the version was PII-redacted and every text
   passes a second PII scan (failures name item ids, never text).
2. **export** – check the budget (rewards + MTurk fees) before any call, then one HIT per batch of
   items; every HIT carries a `UniqueRequestToken` derived from (DAG, partition, batch), so
   retries and backfills never post a HIT twice. The "HIT group" link opens the worker site.
3. **wait** – deferred in the triggerer until all assignments are submitted; on the deadline
   proceed, extend or fail (`annotation.wait`).
4. **review** – approve, or reject on gold failures only (with feedback); bonuses; block repeat
   offenders. Each action is recorded in the job's ledger and never repeated.
5. **publish** – Dawid-Skene (or majority) aggregation into a `labeled` version with label,
   confidence, votes and agreement per item, gated by the `labeled` Great Expectations suite,
   exported as JSONL and Label Studio tasks, and announced on the labeled asset.

6. **catch_up** – if curated versions are still unlabeled (published while this run was busy),
   trigger one more run for them.

Runs when a curated version is published (asset schedule) and labels every current curated
version that is not labeled or being labeled yet (the store decides, not only the triggering
events: an event another run handled skips the run, one the scheduler dropped is still labeled);
a manual run takes the `curated_version` or `partition` param, or none for the same catch-up.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag

from llmops_airflow.assets import CURATED_DATASET, LABELED_DATASET
from llmops_airflow.dagconfig import DEFAULT_CONFIG
from llmops_airflow.operators.annotation import (
    CatchUpOperator,
    CrowdExportOperator,
    CrowdReviewOperator,
    PublishLabelsOperator,
    SelectForAnnotationOperator,
)
from llmops_airflow.sensors.annotation import AnnotationSensor

JOB_ID = "{{ ti.xcom_pull(task_ids='select')['job_id'] }}"


@dag(
    dag_id="llm_annotation",
    schedule=[CURATED_DATASET],
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["llmops", "annotation", "mturk"],
    default_args={
        "owner": "llmops",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(hours=1),
    },
    params={
        "config_path": Param(DEFAULT_CONFIG, type="string",
                             description="Pipeline config, relative to the project folder or absolute."),
        "curated_version": Param(None, type=["null", "string"],
                                 description="Label this curated version (default: the triggering one)."),
        "partition": Param(None, type=["null", "string"], format="date",
                           description="Or: label the curated version of this partition (YYYY-MM-DD)."),
        "focus": Param(None, type=["null", "object"],
                       description='Only items of these slices, e.g. {"lang": ["es"]} (llm_drift_nightly sets the '
                                   "drifted slices)."),
    },
)
def llm_annotation() -> None:
    config = "{{ params.config_path }}"
    select = SelectForAnnotationOperator(
        task_id="select",
        config_path=config,
        curated_version_id="{{ params.curated_version or '' }}",
        partition="{{ params.partition or '' }}",
        focus="{{ params.focus | tojson if params.focus else '' }}",
    )
    export = CrowdExportOperator(task_id="export", config_path=config, job_id=JOB_ID)
    wait = AnnotationSensor(
        task_id="wait",
        config_path=config,
        job_id=JOB_ID,
        deferrable=True,
        poke_interval=60,
        timeout=timedelta(days=14).total_seconds(),
        execution_timeout=None,
    )
    review = CrowdReviewOperator(task_id="review", config_path=config, job_id=JOB_ID)
    publish = PublishLabelsOperator(task_id="publish", config_path=config, job_id=JOB_ID, outlets=[LABELED_DATASET])
    catch_up = CatchUpOperator(task_id="catch_up", config_path=config)
    select >> export >> wait >> review >> publish >> catch_up


llm_annotation()
