"""Sharded curation: the CPU-heavy work of one partition spread over workers, duplicates decided once.

A raw version's data files are its shards (``curation.shard_rows`` rows / ``shard_bytes`` bytes of
text at most, see :func:`llmops.stages.collect_raw`).

* :func:`curate_shard` – one task per shard, on any worker: normalise, quality and language filters,
  exact duplicates inside the shard, Presidio PII redaction and the MinHash LSH keys. It stages two
  Parquet files in the object store – the *survivors* (redacted text, the original text in case it
  turns out to be a duplicate, a 16-byte exact key, LSH band keys and b-bit fingerprints, subject
  keys) and the *rejected* records with their reason – and ``done.json`` last. The same raw version
  and config give the same files, so a retried or repeated shard task changes nothing.
* :func:`merge_shards` – the reduce: decides exact, duplicate-id and near duplicates across all
  shards from the compact keys alone (never the texts), in the raw version's order and in the same
  batches one process would use; then streams the shards into one curated version (quality gate,
  counts that balance, subject index), writes a ``merged.json`` marker and removes the staged shards.

The curated version does not depend on the number of shards: kept records, quarantine, data files
and counts are byte-for-byte the same for 1 or N shards (only its raw parent differs when the raw
version was cut differently).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.config import PipelineConfig, config_hash
from llmops.curate.normalize import dedup_key
from llmops.records import Quarantined, Record
from llmops.storage import ObjectStore
from llmops.versions import VersionWriter, local_data_files

__all__ = ["curate_shard", "merge_shards", "shard_count", "staging_prefix"]

log = logging.getLogger(__name__)

_DONE = "done.json"
_MERGED = "merged.json"


def shard_count(raw: dict[str, Any]) -> int:
    """Shards of a raw version: one per data file."""
    return len(raw["files"])


def staging_prefix(cfg: PipelineConfig, raw: dict[str, Any]) -> str:
    """Where the shards of ``raw`` curated under ``cfg`` are staged: a key of everything that decides
    the staged files and the merge (raw version, curation, quality gate, subject index), so a
    changed config never reuses another config's shards."""
    what = [raw["id"], config_hash(cfg.curation), config_hash(cfg.quality),
            config_hash(cfg.privacy.subject_index)]
    key = hashlib.sha256(json.dumps(what).encode()).hexdigest()[:20]
    return f"datasets/{cfg.dataset}/staging/curated/{raw['id']}-{key}"


def _shard_prefix(prefix: str, index: int) -> str:
    return f"{prefix}/shard-{index:05d}"


def _offsets(raw: dict[str, Any]) -> list[int]:
    out, at = [], 0
    for entry in raw["files"]:
        out.append(at)
        at += int(entry["rows"])
    return out


# ------------------------------------------------------------------------------------ schemas
def _survivor_schema(bands: int, num_perm: int, near: bool) -> Any:
    import pyarrow as pa

    fields = [
        pa.field("pos", pa.int64(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),  # normalised and redacted
        pa.field("source", pa.string(), nullable=False),
        pa.field("lang", pa.string()),
        pa.field("created_at", pa.string()),
        pa.field("meta", pa.string()),
        pa.field("pii", pa.list_(pa.string())),
        pa.field("raw", pa.string()),  # the original text, for the quarantine if it is a duplicate
        pa.field("exact", pa.binary(16)),
        pa.field("entities", pa.string()),  # JSON {entity: occurrences redacted}
        pa.field("no_ner", pa.bool_()),
        pa.field("subjects", pa.list_(pa.string())),  # subject keys of the record as kept
        pa.field("subjects_found", pa.list_(pa.string())),  # ... of its text alone, if set aside
    ]
    if near:
        fields += [pa.field("bands", pa.list_(pa.uint64(), bands)),
                   pa.field("fps", pa.list_(pa.uint8(), num_perm))]
    return pa.schema(fields)


def _rejected_schema() -> Any:
    import pyarrow as pa

    from llmops.records import QUARANTINE_FIELDS

    return pa.schema([pa.field("pos", pa.int64(), nullable=False), pa.field("category", pa.string())]
                     + [pa.field(name, pa.string()) for name in QUARANTINE_FIELDS]
                     + [pa.field("subjects", pa.list_(pa.string()))])


def _near_index(cfg: PipelineConfig) -> Any:
    near = cfg.curation.dedup.near
    if not near.enabled:
        return None
    from llmops.curate.minhash import NearDupIndex

    return NearDupIndex(threshold=near.threshold, num_perm=near.num_perm, kind=near.shingle, n=near.ngram)


def _id_key(record_id: str) -> bytes:
    return hashlib.blake2b(record_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()


# ------------------------------------------------------------------------------------ map
def curate_shard(
    cfg: PipelineConfig,
    *,
    store: ObjectStore,
    raw: dict[str, Any],
    index: int,
    staging: ObjectStore | None = None,
    redactor: Any | None = None,
) -> dict[str, Any]:
    """Curate shard ``index`` of the raw version ``raw`` into the staging area (see the module).

    Returns a small summary (rows, survivors, rejected by category, seconds); when the shard is
    already staged, or its version already merged, nothing is computed and ``skipped`` says why."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llmops.curate.filters import LanguageIdentifier
    from llmops.curate.pipeline import records_from_batches, screen
    from llmops.privacy.subjects import subject_keys

    staging = staging or store
    n_shards = shard_count(raw)
    if not 0 <= index < n_shards:
        raise IndexError(f"raw version {raw['id']} has {n_shards} shard(s); there is no shard {index}")
    prefix = staging_prefix(cfg, raw)
    here = _shard_prefix(prefix, index)
    if staging.exists(f"{prefix}/{_MERGED}"):
        return {"shard": index, "skipped": "merged", "staging": here}
    if staging.exists(f"{here}/{_DONE}"):
        return {**json.loads(staging.read_bytes(f"{here}/{_DONE}")), "skipped": "staged"}

    cur = cfg.curation
    started = time.perf_counter()
    if redactor is None and cur.pii.enabled:
        from llmops.stages import make_redactor

        redactor = make_redactor(cfg)
    keys = subject_keys(cfg)
    index_quarantine = keys is not None and redactor is not None and cfg.privacy.subject_index.include_quarantine
    langid = LanguageIdentifier() if cur.filters.languages else None
    near = _near_index(cfg)
    survivor_schema = _survivor_schema(near.bands if near is not None else 0, cur.dedup.near.num_perm, near is not None)
    rejected_schema = _rejected_schema()
    offset = _offsets(raw)[index]
    path = local_data_files(store, raw, only=index)[0]

    tmp = Path(tempfile.mkdtemp(prefix="llmops-shard-"))
    summary: dict[str, Any] = {"shard": index, "of": n_shards, "raw_version_id": raw["id"], "rows": 0,
                               "survivors": 0, "rejected": Counter()}
    seen: set[bytes] = set()
    try:
        s_writer = pq.ParquetWriter(tmp / "survivors.parquet", survivor_schema, compression="zstd")
        r_writer = pq.ParquetWriter(tmp / "rejected.parquet", rejected_schema, compression="zstd")
        batch: list[tuple[int, Record, str, bytes | None]] = []
        rejected: list[tuple[int, str, Quarantined]] = []

        def flush() -> None:
            if batch:
                s_writer.write_table(pa.Table.from_pylist(
                    _survivor_rows(batch, cfg, redactor, keys, near), schema=survivor_schema))
                summary["survivors"] += len(batch)
                batch.clear()
            if rejected:
                found: list[list[tuple[str, str]]] = (
                    redactor.find_batch([q.raw for _, _, q in rejected]) if index_quarantine and redactor else [])
                rows = []
                for n, (pos, category, q) in enumerate(rejected):
                    subjects = (sorted(keys.for_record(found[n], {})) if index_quarantine and keys is not None
                                and q.id is not None else [])
                    rows.append({"pos": pos, "category": category, **q.to_row(), "subjects": subjects})
                    summary["rejected"][category] += 1
                r_writer.write_table(pa.Table.from_pylist(rows, schema=rejected_schema))
                rejected.clear()

        pf = pq.ParquetFile(path)
        for pos, rec in enumerate(records_from_batches(pf.iter_batches()), start=offset):
            summary["rows"] += 1
            original = rec.text
            out = screen(rec, cur, langid)
            if not isinstance(out, Record):
                rejected.append((pos, out[0], out[1]))
            else:
                digest = dedup_key(rec.text) if cur.dedup.exact else None
                if digest is not None and digest in seen:  # a duplicate of this shard: of the partition too
                    rejected.append((pos, "duplicates", Quarantined(
                        source=rec.source, location=str(rec.meta.get("location", "")), reason="exact_duplicate",
                        stage="dedup", id=rec.id, raw=original)))
                else:
                    if digest is not None:
                        seen.add(digest)
                    batch.append((pos, rec, original, digest))
            if len(batch) >= cur.batch_size or len(rejected) >= cur.batch_size:
                flush()
        flush()
        s_writer.close()
        r_writer.close()
        summary["rejected"] = dict(sorted(summary["rejected"].items()))
        summary["seconds"] = round(time.perf_counter() - started, 3)
        (tmp / _DONE).write_text(json.dumps(summary, sort_keys=True))
        staging.publish_dir(tmp, here, last=_DONE)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("shard %s/%s of %s: %s rows, %s survivors, rejected %s in %.1f s", index + 1, n_shards, raw["id"],
             summary["rows"], summary["survivors"], summary["rejected"], summary["seconds"])
    return summary


def _survivor_rows(batch: list[tuple[int, Record, str, bytes | None]], cfg: PipelineConfig, redactor: Any,
                   keys: Any, near: Any) -> list[dict[str, Any]]:
    """Redact a batch of screened records and compute their dedup keys."""
    texts = [rec.text for _, rec, _, _ in batch]
    bands = fps = None
    if near is not None:
        bands, fps = near.keys(texts)
    results = redactor.redact_batch(texts, [rec.lang for _, rec, _, _ in batch]) if redactor is not None else None
    rows = []
    for n, (pos, rec, original, digest) in enumerate(batch):
        entities: dict[str, int] = {}
        found: list[tuple[str, str]] = []
        no_ner = False
        if results is not None:
            res = results[n]
            rec.text = res.text
            rec.pii = sorted(res.entities)
            entities = dict(sorted(res.entities.items()))
            found = res.found
            no_ner = not redactor.has_ner(rec.lang)
        row = {**rec.to_row(), "pos": pos, "raw": original, "exact": digest,
               "entities": json.dumps(entities), "no_ner": no_ner,
               "subjects": sorted(keys.for_record(found, rec.meta)) if keys is not None else [],
               "subjects_found": sorted(keys.for_record(found, {})) if keys is not None and results is not None
               else []}
        if bands is not None and fps is not None:
            row["bands"] = bands[n]
            row["fps"] = fps[n]
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------ reduce
@dataclass
class _Drop:
    category: str
    stage: str
    reason: str
    detail: str = ""


def _staged(staging: ObjectStore, prefix: str, n_shards: int, cache: Path) -> list[tuple[Path, Path]]:
    """Local paths of every shard's (survivors, rejected) files; a clear error for a missing shard."""
    missing = [i for i in range(n_shards) if not staging.exists(f"{_shard_prefix(prefix, i)}/{_DONE}")]
    if missing:
        raise FileNotFoundError(
            f"shard(s) {missing} of {n_shards} are not staged under {prefix}: run (or clear) their curate_shard "
            "tasks before the merge")
    out = []
    for i in range(n_shards):
        pair = []
        for name in ("survivors.parquet", "rejected.parquet"):
            key = f"{_shard_prefix(prefix, i)}/{name}"
            local = staging.local_path(key)
            if local is None:
                local = staging.download(key, cache / f"{i:05d}-{name}")
            pair.append(local)
        out.append((pair[0], pair[1]))
    return out


def _history_drops(cfg: PipelineConfig, files: list[tuple[Path, Path]], history: Any) -> dict[int, _Drop]:
    """Survivors that repeat a record kept in an earlier partition (exact or near), from the index."""
    import numpy as np
    import pyarrow.parquet as pq

    from llmops.curate.history import exact_halves, near_params

    hcfg = cfg.curation.dedup.history
    near = _near_index(cfg)
    use_near = hcfg.near and near is not None
    params = near_params(near) if near is not None else None
    found: list[tuple[int, str, int, int]] = []  # (pos, reason, run, doc)
    columns = ["pos", "exact"] + (["bands", "fps"] if use_near else [])
    for survivors, _ in files:
        for rb in pq.ParquetFile(survivors).iter_batches(columns=columns, batch_size=65_536):
            pos = rb.column("pos").to_numpy()
            digests = rb.column("exact").to_pylist()
            have = [i for i, d in enumerate(digests) if d is not None]
            hi, lo = exact_halves([digests[i] for i in have])
            hit: set[int] = set()
            for qi, (r, doc) in history.exact(hi, lo).items():
                hit.add(have[qi])
                found.append((int(pos[have[qi]]), "exact_duplicate_history", r, doc))
            if use_near:
                bands = rb.column("bands").flatten().to_numpy().reshape(len(rb), near.bands)
                fps = rb.column("fps").flatten().to_numpy().reshape(len(rb), cfg.curation.dedup.near.num_perm)
                for i, (r, doc) in history.near(bands, fps, params=params, need=near.need,
                                                 cap=hcfg.max_candidates, skip=hit).items():
                    found.append((int(pos[i]), "near_duplicate_history", r, doc))
    names: dict[int, dict[int, str]] = {}
    for r in {r for _, _, r, _ in found}:
        names[r] = history.ids(r, np.asarray([d for _, _, rr, d in found if rr == r]))
    drops = {}
    for pos, reason, r, doc in found:
        kind = "exact" if reason.startswith("exact") else "near"
        drops[pos] = _Drop("duplicates", "dedup", reason, f"{kind} duplicate of {names[r].get(doc, '?')} "
                                                          f"(partition {history.runs[r]['partition']})")
    log.info("history: %d of the partition's records repeat one kept in %d earlier partition(s) (%d records); "
             "index blocks read %s of %s in %s segment(s)", len(drops), len(history), history.docs,
             history.stats["blocks_read"], history.stats["blocks_total"], history.stats["segments"])
    return drops


def _decide(cfg: PipelineConfig, files: list[tuple[Path, Path]], history: Any = None) -> dict[int, _Drop]:
    """Which survivors are duplicates, from their keys: the partition in order, as one process sees it,
    then (with ``history``) against the records kept in earlier partitions."""
    import numpy as np
    import pyarrow.parquet as pq

    cur = cfg.curation
    near = _near_index(cfg)
    past = _history_drops(cfg, files, history) if history is not None and len(history) else {}
    exact: set[bytes] = set()
    ids: set[bytes] = set()
    drops: dict[int, _Drop] = {}
    pend_pos: list[int] = []
    pend_ids: list[str] = []
    pend_bands: list[Any] = []
    pend_fps: list[Any] = []

    def check(count: int) -> None:
        b = np.concatenate(pend_bands) if pend_bands else np.zeros((0, 0), np.uint64)
        f = np.concatenate(pend_fps) if pend_fps else np.zeros((0, 0), np.uint8)
        dup_of = near.check_and_add_keys(pend_ids[:count], b[:count], f[:count])
        for pos, other in zip(pend_pos[:count], dup_of, strict=True):
            if other is not None:
                drops[pos] = _Drop("duplicates", "dedup", "near_duplicate", f"near-duplicate of {other}")
        del pend_pos[:count], pend_ids[:count]
        pend_bands[:] = [b[count:]]
        pend_fps[:] = [f[count:]]

    columns = ["pos", "id", "exact"] + (["bands", "fps"] if near is not None else [])
    for survivors, _ in files:
        for rb in pq.ParquetFile(survivors).iter_batches(columns=columns, batch_size=8192):
            cols = {k: rb.column(k).to_pylist() for k in ("pos", "id", "exact")}
            keep = []
            for n, (pos, rid, digest) in enumerate(zip(cols["pos"], cols["id"], cols["exact"], strict=True)):
                if digest is not None:
                    if digest in exact:
                        drops[pos] = _Drop("duplicates", "dedup", "exact_duplicate")
                        continue
                    exact.add(digest)
                if pos in past:
                    drops[pos] = past[pos]
                    continue
                key = _id_key(rid)
                if key in ids:
                    drops[pos] = _Drop("quarantined", "collect", "duplicate_id", "another record already has this id")
                    continue
                ids.add(key)
                keep.append(n)
            if near is None:
                continue
            sel = np.asarray(keep, dtype=np.int64)
            bands = rb.column("bands").flatten().to_numpy().reshape(len(rb), near.bands)[sel]
            fps = rb.column("fps").flatten().to_numpy().reshape(len(rb), cur.dedup.near.num_perm)[sel]
            pend_pos.extend(cols["pos"][n] for n in keep)
            pend_ids.extend(cols["id"][n] for n in keep)
            pend_bands.append(bands)
            pend_fps.append(fps.astype(near.fingerprint_dtype, copy=False))
            while len(pend_pos) >= cur.batch_size:
                check(cur.batch_size)
    if near is not None and pend_pos:
        check(len(pend_pos))
    return drops


def _merged_rows(files: list[tuple[Path, Path]], drops: dict[int, _Drop]) -> Iterator[tuple[str, Any]]:
    """``("data", row)`` / ``("drop", (category, Quarantined, subjects))`` / ``("rejected", ...)`` in
    the raw version's order, shard after shard."""
    import pyarrow.parquet as pq

    data_cols = ["pos", "id", "text", "source", "lang", "created_at", "meta", "pii", "raw", "entities", "no_ner",
                 "subjects", "subjects_found"]

    def survivors(path: Path) -> Iterator[dict[str, Any]]:
        for rb in pq.ParquetFile(path).iter_batches(columns=data_cols, batch_size=2048):
            yield from rb.to_pylist()

    def rejected(path: Path) -> Iterator[dict[str, Any]]:
        for rb in pq.ParquetFile(path).iter_batches(batch_size=2048):
            yield from rb.to_pylist()

    for s_path, r_path in files:
        s_iter, r_iter = survivors(s_path), rejected(r_path)
        s_row, r_row = next(s_iter, None), next(r_iter, None)
        while s_row is not None or r_row is not None:
            if s_row is not None and (r_row is None or s_row["pos"] < r_row["pos"]):
                drop = drops.get(s_row["pos"])
                if drop is None:
                    yield "data", s_row
                else:
                    q = Quarantined(source=s_row["source"], location=str(json.loads(s_row["meta"] or "{}")
                                                                          .get("location", "")),
                                    reason=drop.reason, stage=drop.stage, id=s_row["id"], detail=drop.detail,
                                    raw=s_row["raw"])
                    yield "drop", (drop.category, q, s_row["subjects_found"])
                s_row = next(s_iter, None)
            elif r_row is not None:
                q = Quarantined(**{k: r_row[k] for k in ("source", "location", "reason", "stage", "id", "detail",
                                                          "raw")})
                yield "drop", (r_row["category"], q, r_row["subjects"])
                r_row = next(r_iter, None)


def _record_history(cfg: PipelineConfig, store: ObjectStore, manifest: dict[str, Any],
                    files: list[tuple[Path, Path]], kept_pos: list[int], partition: str) -> None:
    """Write the dedup-index run of the version just published: its kept records' keys."""
    import numpy as np
    import pyarrow.parquet as pq

    from llmops.curate.history import near_params, write_run
    from llmops.versions import iter_batches

    near = _near_index(cfg)
    final: set[str] | None = None
    if manifest["counts"]["kept"] != len(kept_pos):  # the quality gate set rows aside
        final = {i for b in iter_batches(store, manifest) for i in b.column("id").to_pylist()}
    wanted = np.asarray(kept_pos, dtype=np.int64)
    ids: list[str] = []
    exact: list[bytes | None] = []
    bands, fps = [], []
    columns = ["pos", "id", "exact"] + (["bands", "fps"] if near is not None else [])
    for survivors, _ in files:
        for rb in pq.ParquetFile(survivors).iter_batches(columns=columns, batch_size=65_536):
            sel = np.isin(rb.column("pos").to_numpy(), wanted)
            rid = rb.column("id").to_pylist()
            if final is not None:
                sel &= np.asarray([i in final for i in rid], dtype=bool)
            rows = np.nonzero(sel)[0]
            ids.extend(rid[i] for i in rows.tolist())
            digests = rb.column("exact").to_pylist()
            exact.extend(digests[i] for i in rows.tolist())
            if near is not None:
                bands.append(rb.column("bands").flatten().to_numpy().reshape(len(rb), near.bands)[rows])
                fps.append(rb.column("fps").flatten().to_numpy().reshape(len(rb), near.hasher.num_perm)[rows])
    write_run(store, cfg.dataset, partition=partition, version_id=manifest["id"], ids=ids, exact=exact,
              bands=np.concatenate(bands) if near is not None and bands else None,
              fps=np.concatenate(fps) if near is not None and fps else None,
              params=near_params(near) if near is not None else None)


def merge_shards(
    cfg: PipelineConfig,
    *,
    store: ObjectStore,
    raw: dict[str, Any],
    partition: str | None,
    producer: dict[str, Any],
    staging: ObjectStore | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Decide duplicates across the staged shards of ``raw`` and publish one curated version."""
    from llmops.privacy.subjects import write_index
    from llmops.quality.apply import gate_writer
    from llmops.stages import privacy_summary
    from llmops.versions import partition_key, read_manifest

    staging = staging or store
    prefix = staging_prefix(cfg, raw)
    marker = f"{prefix}/{_MERGED}"
    if staging.exists(marker):  # merged before (a retried or repeated merge): the same version
        done = json.loads(staging.read_bytes(marker))
        manifest = read_manifest(store, cfg.dataset, "curated", done["version_id"])
        if partition is not None:
            pointer = {"version_id": manifest["id"], "partition": partition, "producer": producer}
            store.write_bytes(partition_key(cfg.dataset, "curated", partition),
                              json.dumps(pointer, indent=2, sort_keys=True).encode())
        log.info("shards of %s were merged before into %s", raw["id"], manifest["id"])
        return manifest

    cur = cfg.curation
    keys_cfg = cfg.privacy.subject_index
    from llmops.privacy.subjects import subject_keys

    keys = subject_keys(cfg)
    n_shards = shard_count(raw)
    started = time.perf_counter()
    cache = Path(tempfile.mkdtemp(prefix="llmops-merge-"))
    writer = VersionWriter(
        cfg.dataset, "curated", parents=[raw["id"]], producer=producer,
        config_hash=config_hash(cur), rows_per_file=cur.rows_per_file,
        extra={"upstream_counts": {raw["id"]: raw["counts"]}, "privacy": privacy_summary(cfg),
               "shards": n_shards},
    )
    index_rows: set[tuple[str, str, str]] = set()
    hcfg = cur.dedup.history
    history = None
    kept_pos: list[int] = []
    try:
        files = _staged(staging, prefix, n_shards, cache)
        if hcfg.enabled:
            from llmops.curate.history import HistoryIndex

            history = HistoryIndex.open(store, cfg.dataset, before=partition, horizon_days=hcfg.horizon_days)
        drops = _decide(cfg, files, history)
        if history is not None:
            writer.extra["history"] = {"partitions": len(history), "records": history.docs}
            history.close()
        data: list[dict[str, Any]] = []
        rejected: list[tuple[str, Quarantined]] = []
        # writes in fixed-size chunks, independent of where shards end: the same files for any sharding
        for kind, item in _merged_rows(files, drops):
            writer.counts.input += 1
            if kind == "data":
                row = item
                writer.counts.pii.update(json.loads(row["entities"]))
                if row["no_ner"]:
                    writer.counts.pii_without_ner[row["lang"] or "unknown"] += 1
                index_rows.update((k, row["id"], "data") for k in row["subjects"])
                kept_pos.append(row["pos"])
                data.append({k: row[k] for k in ("id", "text", "source", "lang", "created_at", "meta", "pii")})
                if len(data) >= cur.batch_size:
                    writer.add_rows(data)
                    data = []
            else:
                category, q, subjects = item
                if keys is not None and keys_cfg.include_quarantine and q.id is not None:
                    index_rows.update((k, q.id, "quarantine") for k in subjects)
                rejected.append((category, q))
                if len(rejected) >= cur.batch_size:
                    writer.add_rejected(rejected)
                    rejected = []
            if progress is not None and writer.counts.input % 50_000 == 0:
                progress(writer.counts.as_dict())
        writer.add_rows(data)
        writer.add_rejected(rejected)
        gate_writer(writer, cfg, "curated")
        writer.extra["privacy"]["subject_index"] = (
            {"entries": len(index_rows), "subjects": len({r[0] for r in index_rows}),
             "records": len({r[1] for r in index_rows})} if keys is not None else None)
        manifest = writer.finish(store, partition=partition)
    except BaseException:
        writer.abort()
        shutil.rmtree(cache, ignore_errors=True)
        raise
    if keys is not None:  # the index of the version just published (same content: same index)
        write_index(store, cfg.dataset, "curated", manifest["id"], index_rows)
    if hcfg.enabled and partition is not None:  # later partitions see this one's kept records
        _record_history(cfg, store, manifest, files, kept_pos, partition)
    shutil.rmtree(cache, ignore_errors=True)
    staging.write_bytes(marker, json.dumps({"version_id": manifest["id"], "raw_version_id": raw["id"],
                                            "shards": n_shards}, sort_keys=True).encode())
    for key in staging.list(prefix + "/"):
        if not key.endswith(f"/{_MERGED}"):
            staging.delete(key)
    counts = manifest["counts"]
    log.info("merged %s shard(s) of %s into %s in %.1f s: kept %s, duplicates %s, filtered %s, quarantined %s",
             n_shards, raw["id"], manifest["id"], time.perf_counter() - started, counts["kept"],
             counts["duplicates"], counts["filtered"], counts["quarantined"])
    if progress is not None:
        progress(counts)
    return manifest
