"""Operators for the collection side: collect sources into a raw version, curate it.

Both return a small JSON-able summary as their XCom (version id, counts) – never records, text or
secrets – and are idempotent: a retry or a backfill of the same partition writes the same
content-addressed version and replaces the partition's pointer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from airflow.sdk import BaseOperator, Context

# where the config is and how it is loaded live in the light dagconfig module (DAG files read
# their parse-time keys there); kept importable from here
from llmops_airflow.dagconfig import DEFAULT_CONFIG, PROJECT_DIR, load_pipeline_config, resolve_config_path
from llmops_airflow.links import DATA_DOCS_XCOM_KEY, DataDocsLink

__all__ = ["DEFAULT_CONFIG", "PROJECT_DIR", "CollectSourcesOperator", "CurateDatasetOperator", "CurateShardOperator",
           "MergeShardsOperator", "load_pipeline_config", "producer_from_context", "push_docs_link",
           "resolve_config_path", "summary"]


def producer_from_context(context: Context) -> dict[str, Any]:
    ti = context["ti"]
    return {
        "kind": "airflow",
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "partition": context.get("ds"),
    }


def summary(manifest: dict[str, Any]) -> dict[str, Any]:
    return {
        "version_id": manifest["id"],
        "dataset": manifest["dataset"],
        "stage": manifest["stage"],
        "partition": manifest.get("partition"),
        "parents": manifest["parents"],
        "counts": manifest["counts"],
        "pii": manifest.get("pii", {}),
        "validations": [{k: v for k, v in entry.items() if k != "unexpected"}
                        for entry in manifest.get("validations", [])],
    }


def push_docs_link(context: Context, manifest: dict[str, Any], prefix: str | None = None) -> str | None:
    """Publish the URL of the version's (first) Data Docs page for the task's "Data Docs" link."""
    from llmops.versions import version_prefix
    from llmops_airflow.docs_app import docs_url

    docs = next((v["data_docs"] for v in manifest.get("validations", []) if v.get("data_docs")), None)
    if docs is None:
        return None
    base = prefix or version_prefix(manifest["dataset"], manifest["stage"], manifest["id"])
    url = docs_url(f"{base}/{docs}")
    context["ti"].xcom_push(key=DATA_DOCS_XCOM_KEY, value=url)
    return url


@contextmanager
def _no_retry_on_gate_failure() -> Iterator[None]:
    """A failed quality gate fails the task at once: retrying on the same data cannot pass."""
    from airflow.sdk.exceptions import AirflowFailException

    from llmops.quality.gate import GateFailedError

    try:
        yield
    except GateFailedError as exc:
        raise AirflowFailException(str(exc)) from None


class _ConfiguredOperator(BaseOperator):
    template_fields: Sequence[str] = ("config_path", "partition")
    operator_extra_links = (DataDocsLink(),)

    def __init__(self, *, config_path: str | None = DEFAULT_CONFIG, partition: str = "{{ ds }}",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config_path = config_path
        self.partition = partition

    def load_config(self) -> Any:
        from llmops.config import load_config

        path = resolve_config_path(self.config_path)
        self.log.info("config: %s", path or "embedded defaults")
        return load_config(path)

    def open_store(self, cfg: Any) -> Any:
        from llmops_airflow.hooks.store import ObjectStoreHook

        return ObjectStoreHook.for_config(cfg).store


class CollectSourcesOperator(_ConfiguredOperator):
    """Reads every configured source for ``partition`` into a ``raw`` dataset version."""

    ui_color = "#e3f2fd"

    def execute(self, context: Context) -> dict[str, Any]:
        from llmops.collect import CollectContext
        from llmops.secrets import resolve_secret
        from llmops.stages import collect_raw

        cfg = self.load_config()
        store = self.open_store(cfg)

        def s3_factory(conn_id: str | None, endpoint_url: str | None) -> Any:
            from llmops_airflow.hooks.store import ObjectStoreHook

            return ObjectStoreHook("s3://unused", conn_id, endpoint_url)._s3_client()

        ctx = CollectContext(secret_resolver=resolve_secret, s3_client_factory=s3_factory)
        with _no_retry_on_gate_failure():
            manifest = collect_raw(cfg, store=store, partition=self.partition,
                                   producer=producer_from_context(context), ctx=ctx)
        out = summary(manifest)
        out["shards"] = len(manifest["files"])
        self.log.info("raw version %s in %s shard(s): %s", out["version_id"], out["shards"], out["counts"])
        push_docs_link(context, manifest)
        return out


class CurateDatasetOperator(_ConfiguredOperator):
    """Curates a ``raw`` version (normalise, filter, dedup, PII) into a ``curated`` version.

    When the task has outlets, the first one's asset event carries the version id and counts.
    """

    template_fields: Sequence[str] = ("config_path", "partition", "raw_version_id")
    ui_color = "#e8f5e9"

    def __init__(self, *, raw_version_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.raw_version_id = raw_version_id

    def execute(self, context: Context) -> dict[str, Any]:
        from llmops.stages import curate_version

        cfg = self.load_config()
        store = self.open_store(cfg)

        def progress(counts: dict[str, Any]) -> None:
            self.log.info("progress: %s records in, %s kept (%s docs/s)", counts["input"], counts["kept"],
                          counts.get("docs_per_s"))

        with _no_retry_on_gate_failure():
            manifest = curate_version(cfg, store=store, raw_version_id=self.raw_version_id,
                                      partition=self.partition, producer=producer_from_context(context),
                                      progress=progress)
        return self.announce(context, manifest)

    def announce(self, context: Context, manifest: dict[str, Any]) -> dict[str, Any]:
        """Log the published version, link its Data Docs and put it on the outlets' asset event."""
        out = summary(manifest)
        self.log.info("curated version %s: %s; PII %s", out["version_id"], out["counts"], out["pii"])
        url = push_docs_link(context, manifest)
        if url:
            self.log.info("Data Docs: %s", url)
        for outlet in self.outlets or []:
            context["outlet_events"][outlet].extra = {
                "version_id": out["version_id"],
                "dataset": out["dataset"],
                "partition": out["partition"],
                "parents": out["parents"],
                "counts": {k: v for k, v in out["counts"].items() if k != "by_reason"},
            }
        return out


class CurateShardOperator(_ConfiguredOperator):
    """Curates one shard of a ``raw`` version on whichever worker runs it (normalise, filter, exact
    duplicates in the shard, PII redaction, MinHash keys) into the store's staging area; map it over
    the shard numbers ``range(collect.output["shards"])`` (see ``dags/llm_data_collection.py``).

    Idempotent: a shard already staged (or already merged) is not computed again. Its XCom is a
    small summary (rows, survivors, rejected by category), never text.
    """

    template_fields: Sequence[str] = ("config_path", "partition", "raw_version_id")
    ui_color = "#f1f8e9"

    def __init__(self, *, raw_version_id: str, shard: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.raw_version_id = raw_version_id
        self.shard = shard

    def execute(self, context: Context) -> dict[str, Any]:
        from llmops.curate.shards import curate_shard
        from llmops.versions import read_manifest

        cfg = self.load_config()
        store = self.open_store(cfg)
        raw = read_manifest(store, cfg.dataset, "raw", self.raw_version_id)
        out = curate_shard(cfg, store=store, raw=raw, index=int(self.shard))
        self.log.info("shard %s: %s", self.shard, out)
        return out


class MergeShardsOperator(CurateDatasetOperator):
    """Decides exact and near duplicates across all staged shards of a ``raw`` version from their
    compact keys and publishes one ``curated`` version (quality gate, counts, subject index); the
    reduce after the mapped :class:`CurateShardOperator` tasks. A repeated merge returns the
    version published before."""

    ui_color = "#c8e6c9"

    def execute(self, context: Context) -> dict[str, Any]:
        from llmops.curate.shards import merge_shards
        from llmops.versions import read_manifest

        cfg = self.load_config()
        store = self.open_store(cfg)
        raw = read_manifest(store, cfg.dataset, "raw", self.raw_version_id)
        with _no_retry_on_gate_failure():
            manifest = merge_shards(cfg, store=store, raw=raw, partition=self.partition,
                                    producer=producer_from_context(context))
        return self.announce(context, manifest)
