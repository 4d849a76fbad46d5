"""The collection-side stages as plain functions: what the CLI and the Airflow tasks call.

* :func:`collect_raw` – read every configured source for a partition into a ``raw`` version
  (canonical records; unusable input quarantined with its reason).
* :func:`curate_version` – turn a ``raw`` version into a ``curated`` one (normalise, filter,
  dedup, redact PII), with the raw version as parent.
* :func:`curate_paths` – both in one pass over local files, written to one folder
  (``llmops curate INPUT... --out DIR``).
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from llmops.collect import CollectContext, collect
from llmops.config import FilesSource, PipelineConfig, config_hash
from llmops.quality.apply import gate_writer
from llmops.records import Quarantined, Record
from llmops.storage import ObjectStore, open_store
from llmops.versions import VersionWriter, read_manifest

__all__ = ["collect_raw", "curate_paths", "curate_version", "make_redactor", "open_config_store", "privacy_summary"]

log = logging.getLogger(__name__)


def open_config_store(cfg: PipelineConfig, s3_client_factory: Callable[[], Any] | None = None) -> ObjectStore:
    return open_store(cfg.resolved_storage_root(), s3_client_factory=s3_client_factory,
                      endpoint_url=cfg.storage.endpoint_url, sse=cfg.storage.sse,
                      sse_kms_key_id=cfg.storage.sse_kms_key_id)


def make_redactor(cfg: PipelineConfig, key_resolver: Callable[[str], str] | None = None) -> Any:
    if not cfg.curation.pii.enabled:
        return None
    from llmops.privacy.pii import PIIRedactor

    sic = cfg.privacy.subject_index
    return PIIRedactor(cfg.curation.pii, key_resolver=key_resolver, capture=sic.entities if sic.enabled else ())


def privacy_summary(cfg: PipelineConfig) -> dict[str, Any]:
    """What a curated manifest says about PII handling; exports check it before any text leaves."""
    pii = cfg.curation.pii
    return {
        "pii_redaction": pii.enabled,
        "entities": sorted(pii.entities) + sorted(r.entity for r in pii.custom_recognizers),
        "default_operator": pii.default_operator,
        "operators": dict(sorted(pii.operators.items())),
        "spacy_model": pii.spacy_model,
        "ner_models": dict(sorted(pii.ner_models.items())),
    }


def collect_raw(
    cfg: PipelineConfig,
    *,
    store: ObjectStore,
    partition: str | None,
    producer: dict[str, Any],
    ctx: CollectContext | None = None,
) -> dict[str, Any]:
    """Collect all sources of ``cfg`` for ``partition`` into a ``raw`` dataset version."""
    if not cfg.sources:
        raise ValueError("no sources configured: add at least one entry under `sources`")
    ctx = ctx or CollectContext()
    ctx.partition = partition
    ctx.base_dir = cfg.resolved_base_dir()
    ctx.max_input_chars = cfg.curation.normalize.max_input_chars
    writer = VersionWriter(
        cfg.dataset, "raw", producer=producer,
        config_hash=config_hash(_SourcesView(cfg)),
        # the raw data files are the shards the curation is split into
        rows_per_file=min(cfg.curation.rows_per_file, cfg.curation.shard_rows),
        bytes_per_file=cfg.curation.shard_bytes,
    )
    try:
        batch: list[Record] = []
        quarantined: list[Quarantined] = []
        for item in collect(cfg.sources, ctx):
            writer.counts.input += 1
            if isinstance(item, Quarantined):
                quarantined.append(item)
            else:
                batch.append(item)
            if len(batch) >= cfg.curation.batch_size:
                writer.add_records(batch)
                batch = []
            if len(quarantined) >= cfg.curation.batch_size:
                writer.add_quarantined(quarantined)
                quarantined = []
        writer.add_records(batch)
        writer.add_quarantined(quarantined)
        gate_writer(writer, cfg, "raw")
        return writer.finish(store, partition=partition)
    except BaseException:
        writer.abort()
        raise


class _SourcesView:
    """Hashes only what determines the raw version: the sources and the input cap."""

    def __init__(self, cfg: PipelineConfig) -> None:
        self.cfg = cfg

    def model_dump(self, mode: str = "json") -> dict[str, Any]:
        return {
            "sources": [s.model_dump(mode=mode) for s in self.cfg.sources],
            "max_input_chars": self.cfg.curation.normalize.max_input_chars,
        }


def curate_version(
    cfg: PipelineConfig,
    *,
    store: ObjectStore,
    raw_version_id: str,
    partition: str | None,
    producer: dict[str, Any],
    redactor: Any | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Curate the ``raw`` version ``raw_version_id`` into a ``curated`` version: every shard
    (:func:`llmops.curate.shards.curate_shard`, staged in a local temporary folder), then the merge –
    what ``llm_data_collection`` runs as mapped tasks on many workers. With ``workers`` > 1 the shards
    are curated by that many local processes (each builds its own PII redactor from ``cfg``, so
    ``redactor`` must be None); the version is the same as with one."""
    from llmops.curate.shards import curate_shard, merge_shards, shard_count
    from llmops.storage import LocalStore

    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    raw = read_manifest(store, cfg.dataset, "raw", raw_version_id)
    shards = shard_count(raw)
    with tempfile.TemporaryDirectory(prefix="llmops-curate-") as tmp:
        staging = LocalStore(tmp)
        if workers > 1 and shards > 1:
            if redactor is not None:
                raise ValueError("workers > 1 builds a redactor in each process from cfg; pass redactor=None")
            _curate_shards_in_processes(cfg, store, raw, staging, min(workers, shards))
        else:
            if redactor is None:
                redactor = make_redactor(cfg)
            for index in range(shards):
                curate_shard(cfg, store=store, raw=raw, index=index, staging=staging, redactor=redactor)
        return merge_shards(cfg, store=store, raw=raw, partition=partition, producer=producer, staging=staging,
                            progress=progress)


_WORKER: dict[str, Any] = {}


def _shard_worker_init(cfg: PipelineConfig, store: ObjectStore | None) -> None:
    _WORKER["cfg"] = cfg
    _WORKER["store"] = store if store is not None else open_config_store(cfg)
    _WORKER["redactor"] = make_redactor(cfg)


def _shard_worker(raw: dict[str, Any], index: int, staging_root: str) -> dict[str, Any]:
    from llmops.curate.shards import curate_shard
    from llmops.storage import LocalStore

    return curate_shard(_WORKER["cfg"], store=_WORKER["store"], raw=raw, index=index,
                        staging=LocalStore(staging_root), redactor=_WORKER["redactor"])


def _curate_shards_in_processes(cfg: PipelineConfig, store: ObjectStore, raw: dict[str, Any], staging: Any,
                                workers: int) -> None:
    """The shards of ``raw`` by ``workers`` spawned processes (a fresh interpreter each: no state of
    this one is inherited), shard by shard as processes free up."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from llmops.curate.shards import shard_count
    from llmops.storage import LocalStore

    local = store if isinstance(store, LocalStore) else None  # an S3 client is opened again in each process
    root = str(staging.local_path(""))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_shard_worker_init, initargs=(cfg, local)) as pool:
        n = shard_count(raw)
        for _ in pool.map(_shard_worker, [raw] * n, range(n), [root] * n):
            pass  # each shard logs its own summary; an error in one is raised here


_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def _source_for(path: Path) -> FilesSource:
    name = _NAME.sub("_", path.stem).strip("_") or "input"
    return FilesSource(name=name, paths=[str(path)], required=True, meta_fields=[])


def curate_paths(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    cfg: PipelineConfig,
    *,
    redactor: Any | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Collect and curate local files in one pass into the version folder ``out_dir``."""
    from llmops.curate.pipeline import Curator

    paths = [Path(p) for p in inputs]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"input not found: {', '.join(missing)}")
    files: list[Path] = []
    for p in paths:
        files.extend(sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p])
    sources = []
    used: dict[str, int] = {}
    for f in files:
        src = _source_for(f.resolve())
        used[src.name] = used.get(src.name, 0) + 1
        if used[src.name] > 1:
            src.name = f"{src.name}_{used[src.name]}"
        sources.append(src)
    if redactor is None:
        redactor = make_redactor(cfg)
    ctx = CollectContext(base_dir=Path.cwd(), max_input_chars=cfg.curation.normalize.max_input_chars)
    writer = VersionWriter(
        cfg.dataset, "curated", producer={"kind": "cli", "inputs": [str(f) for f in files]},
        config_hash=config_hash(cfg.curation), rows_per_file=cfg.curation.rows_per_file,
        extra={"privacy": privacy_summary(cfg)},
    )
    try:
        Curator(cfg.curation, redactor=redactor, progress=progress).run(collect(sources, ctx), writer)
        gate_writer(writer, cfg, "curated", sources=[s.name for s in sources])
    except BaseException:
        writer.abort()
        raise
    return writer.finish_to_dir(Path(out_dir))
