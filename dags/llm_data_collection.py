"""
### llm_data_collection

Daily collection of support messages into a **curated, PII-redacted dataset version**.

1. **collect** – every source in `include/config/pipeline.yaml` (files, HTTP API, S3, saved
   `datasets`) for the run's partition (its logical date) → a `raw` version. Unusable input is
   quarantined with its reason.
2. **curate_shard** (one mapped task per shard of the raw version, `curation.shard_rows` rows
   each, on any Celery/Kubernetes worker) – normalise, quality-filter, language-filter, Presidio
   PII redaction, exact keys and MinHash signatures, staged in the object store.
3. **dedup_merge** – exact and near (MinHash LSH) duplicates decided across all shards from their
   keys, then one `curated` version whose asset event carries its id and counts. The version is the
   same for 1 or N shards.

Each run processes only its own partition (its logical date, or the `partition` param of a manual
run), so backfills are safe (`airflow backfill create
--dag-id llm_data_collection --from-date ... --to-date ...`) and re-running a partition writes the
same content-addressed version. Set the `config_path` param to use another config file.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from llmops_airflow.assets import CURATED_DATASET
from llmops_airflow.operators.collection import (
    DEFAULT_CONFIG,
    CollectSourcesOperator,
    CurateShardOperator,
    MergeShardsOperator,
)


@task(task_id="plan_shards")
def shard_list(collected: dict) -> list[int]:
    """The shards of the raw version (one per data file): what ``curate_shard`` is mapped over."""
    return list(range(int(collected["shards"])))


@dag(
    dag_id="llm_data_collection",
    # classic data intervals: the run for [D, D+1) starts after midnight of D+1 and its
    # logical date (`ds`) is D, the partition it processes
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=3,
    doc_md=__doc__,
    tags=["llmops", "collection", "pii"],
    default_args={
        "owner": "llmops",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(hours=2),
    },
    params={
        "config_path": Param(DEFAULT_CONFIG, type="string",
                             description="Pipeline config, relative to the project folder or absolute."),
        "partition": Param(None, type=["null", "string"], format="date",
                           description="Process this partition (YYYY-MM-DD) instead of the run's logical date."),
    },
)
def llm_data_collection() -> None:
    collect = CollectSourcesOperator(
        task_id="collect",
        config_path="{{ params.config_path }}",
        partition="{{ params.partition or ds }}",
    )
    raw_version_id = "{{ ti.xcom_pull(task_ids='collect')['version_id'] }}"
    shards = CurateShardOperator.partial(
        task_id="curate_shard",
        config_path="{{ params.config_path }}",
        partition="{{ params.partition or ds }}",
        raw_version_id=raw_version_id,
        map_index_template="shard {{ task.shard }}",
    ).expand(shard=shard_list(collect.output))
    merge = MergeShardsOperator(
        task_id="dedup_merge",
        config_path="{{ params.config_path }}",
        partition="{{ params.partition or ds }}",
        raw_version_id=raw_version_id,
        outlets=[CURATED_DATASET],
    )
    shards >> merge


llm_data_collection()
