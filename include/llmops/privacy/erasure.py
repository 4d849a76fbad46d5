"""Erasure of a data subject's records everywhere the pipeline put them (GDPR art. 17, CCPA).

:func:`erase` resolves the request (raw identifiers, pseudonyms or subject keys) to record ids
through the subject index and, for raw identifiers, a search of the unredacted text; then:

1. every dataset version (raw, curated, labeled) holding such records gets a **successor** without
   them (content-addressed, parent: the old version, the partition pointers moved to it, its
   manifest's ``erasure`` says the request id and the counts removed), and the **old version is
   purged** in place (its files rewritten without the records; its manifest's ``erasures`` lists the
   request and the counts; ``superseded_by`` names the successor). A version that already has a
   successor is only purged;
2. every other file in the store – annotation job items, Data Docs, label exports, crowd state –
   and every MLflow run artifact is scrubbed of the subject's text and identifiers;
3. the subject's entries leave the subject index, and the records' keys leave the dedup index of
   earlier partitions (:mod:`llmops.curate.history`);
4. open HITs holding the subject's items are expired (cancelled);
5. every registered model version trained on an affected labeled version is flagged (MLflow tag
   ``llmops.privacy.erasure``; the promotion gate refuses flagged versions), and the affected labeled
   versions' successors are returned for retraining.

The steps run in the order 4, 2, 5, 1, 3: everything that copies or points at the records goes
before the versions are rewritten, so a retry after a crash finds the same records again and
finishes the job. A request is recorded under ``privacy/erasures/<request_id>.json`` (totals
taken from the manifests, so a retried request counts right) and in the audit trail, with counts
only. Re-running the same request finds nothing left and changes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmops.privacy.audit import record_event
from llmops.privacy.subjects import SubjectQuery, index_bytes, read_index, subject_keys
from llmops.versions import VersionWriter, partition_key, version_prefix

__all__ = ["ErasureError", "Scrubber", "erase", "erasure_record"]

log = logging.getLogger(__name__)

STAGES = ("raw", "curated", "labeled")
ERASED = "[erased]"
MIN_TEXT_NEEDLE = 8
MIN_IDENTIFIER = 5
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_TEXT_SUFFIXES = {".json", ".jsonl", ".html", ".htm", ".md", ".txt", ".csv", ".tsv", ".xml", ".yaml", ".yml",
                  ".log"}
_LINE_SUFFIXES = {".txt", ".csv", ".tsv", ".log"}
_MAX_SCRUB_BYTES = 256 << 20


class ErasureError(ValueError):
    """The request cannot be carried out as given; the message says why (never the identifiers)."""


def erasure_record_key(request_id: str) -> str:
    return f"privacy/erasures/{request_id}.json"


def erasure_record(store: Any, request_id: str) -> dict[str, Any] | None:
    key = erasure_record_key(request_id)
    return json.loads(store.read_bytes(key)) if store.exists(key) else None


# --------------------------------------------------------------------------- scrubbing
@dataclass
class Scrubber:
    """Removes a subject's records (by id) and text (identifiers, record texts) from files."""

    ids: set[str] = field(default_factory=set)
    needles: set[str] = field(default_factory=set)
    _pattern: re.Pattern[str] | None = field(default=None, init=False)

    def add_text(self, text: str | None) -> None:
        if text and len(text.strip()) >= MIN_TEXT_NEEDLE:
            self.needles.add(text.strip())
            self._pattern = None

    def add_identifier(self, value: str) -> bool:
        """Search files for ``value`` too; refused (False) when shorter than ``MIN_IDENTIFIER``
        characters, which would match inside unrelated text (it still finds index entries)."""
        if len(value.strip()) < MIN_IDENTIFIER:
            return False
        self.needles.add(value.strip())
        self._pattern = None
        return True

    @property
    def pattern(self) -> re.Pattern[str] | None:
        if self._pattern is None and self.needles:
            variants: set[str] = set()
            for n in self.needles:
                variants.update({n, html.escape(n, quote=False), html.escape(n), json.dumps(n)[1:-1],
                                 json.dumps(n, ensure_ascii=False)[1:-1]})
            # longest first, so a record text goes whole rather than only the identifier in it
            alternatives = sorted(variants, key=len, reverse=True)
            # not inside a longer word: "ann@x.org" does not match "joann@x.org"
            self._pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(v) for v in alternatives) + r")(?!\w)",
                                       re.IGNORECASE)
        return self._pattern

    def hit(self, value: Any) -> bool:
        pat = self.pattern
        return isinstance(value, str) and pat is not None and pat.search(value) is not None

    def row_matches(self, row: dict[str, Any], id_columns: Iterable[str] = ("id", "record_id")) -> bool:
        if any(row.get(c) is not None and str(row.get(c)) in self.ids for c in id_columns):
            return True
        return any(self.hit(v) for v in row.values())

    # -- one file ----------------------------------------------------------------------------------
    def scrub(self, name: str, data: bytes) -> tuple[bytes | None, int]:
        """The scrubbed content of file ``name`` (None: unchanged) and how many rows/spots changed."""
        suffix = Path(name).suffix.lower()
        if suffix == ".parquet":
            return self._parquet(data)
        if suffix not in _TEXT_SUFFIXES or len(data) > _MAX_SCRUB_BYTES:
            return None, 0
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None, 0
        if suffix == ".jsonl":
            return self._jsonl(text)
        if suffix == ".json":
            return self._json(text)
        if suffix in _LINE_SUFFIXES:
            lines = text.splitlines(keepends=True)
            id_col = self._id_column(lines[0], suffix) if lines and suffix in {".csv", ".tsv"} else None
            kept = [lines[0]] if id_col is not None else []
            kept += [ln for ln in lines[len(kept):] if not self.hit(ln) and not self._has_id(ln, id_col, suffix)]
            return ("".join(kept).encode(), len(lines) - len(kept)) if len(kept) != len(lines) else (None, 0)
        return self._replace(text)

    @staticmethod
    def _cells(line: str, suffix: str) -> list[str]:
        return next(csv.reader([line], delimiter="\t" if suffix == ".tsv" else ","), [])

    def _id_column(self, header: str, suffix: str) -> int | None:
        """Position of an ``id``/``record_id`` column in a CSV/TSV header."""
        cells = [c.strip().lower() for c in self._cells(header, suffix)]
        return next((i for i, c in enumerate(cells) if c in ("id", "record_id")), None)

    def _has_id(self, line: str, col: int | None, suffix: str) -> bool:
        if col is None or not self.ids:
            return False
        cells = self._cells(line, suffix)
        return col < len(cells) and cells[col].strip() in self.ids

    def _replace(self, text: str) -> tuple[bytes | None, int]:
        pat = self.pattern
        if pat is None:
            return None, 0
        new, n = pat.subn(ERASED, text)
        return (new.encode(), n) if n else (None, 0)

    def _jsonl(self, text: str) -> tuple[bytes | None, int]:
        out, removed = [], 0
        for line in text.splitlines(keepends=True):
            try:
                obj = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:
                obj = None
            if isinstance(obj, dict) and self.row_matches(obj) or self.hit(line):
                removed += 1
                continue
            out.append(line)
        return ("".join(out).encode(), removed) if removed else (None, 0)

    def _json(self, text: str) -> tuple[bytes | None, int]:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            return self._replace(text)
        changed = [0]

        def walk(value: Any) -> Any:
            if isinstance(value, str):
                if self.hit(value):
                    assert self.pattern is not None
                    new, n = self.pattern.subn(ERASED, value)
                    changed[0] += n
                    return new
                return value
            if isinstance(value, list):
                return [walk(v) for v in value]
            if isinstance(value, dict):
                return {k: walk(v) for k, v in value.items()}
            return value

        new = walk(obj)
        if not changed[0]:
            return None, 0
        return json.dumps(new, indent=1, sort_keys=True, ensure_ascii=False).encode(), changed[0]

    def _parquet(self, data: bytes) -> tuple[bytes | None, int]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        keep = [not self.row_matches(row) for row in table.to_pylist()]
        removed = keep.count(False)
        if not removed:
            return None, 0
        buf = io.BytesIO()
        pq.write_table(table.filter(pa.array(keep, type=pa.bool_())), buf, compression="zstd")
        return buf.getvalue(), removed


# --------------------------------------------------------------------------- versions
def _manifests(store: Any, dataset: str, stage: str) -> list[dict[str, Any]]:
    prefix = f"datasets/{dataset}/{stage}/versions/"
    out = []
    for key in store.list(prefix):
        if key.endswith("/manifest.json") and key.count("/") == prefix.count("/") + 1:
            out.append(json.loads(store.read_bytes(key)))
    return sorted(out, key=lambda m: (m.get("created_at") or "", m["id"]))


def _read_table(store: Any, key: str) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(store.read_bytes(key)))


def _table_bytes(table: Any) -> bytes:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def _find_rows(store: Any, manifest: dict[str, Any], scrub: Scrubber, query: SubjectQuery
               ) -> dict[str, list[int]]:
    """``{file path in version: [row positions]}`` of the subject's rows; adds their ids and texts
    to ``scrub`` so that later stages and other files match them too."""
    if (manifest.get("retention") or {}).get("data_purged_at"):
        return {}  # its files are gone already (retention)
    prefix = version_prefix(manifest["dataset"], manifest["stage"], manifest["id"])
    usable = [r for r in query.raw if len(r) >= MIN_IDENTIFIER]
    raw_pat = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(r) for r in usable) + r")(?!\w)",
                         re.IGNORECASE) if usable else None
    found: dict[str, list[int]] = {}
    for which in ("files", "quarantine_files"):
        for entry in manifest.get(which, []):
            if not entry.get("rows"):
                continue
            table = _read_table(store, f"{prefix}/{entry['path']}")
            text_col = "text" if "text" in table.column_names else "raw"
            ids = table.column("id").to_pylist()
            texts = table.column(text_col).to_pylist()
            hits = [i for i, (rid, text) in enumerate(zip(ids, texts, strict=True))
                    if (rid is not None and rid in scrub.ids)
                    or (raw_pat is not None and text and raw_pat.search(text))
                    or (text and text.strip() in scrub.needles)]
            for i in hits:
                if ids[i] is not None:
                    scrub.ids.add(ids[i])
                scrub.add_text(texts[i])
            if hits:
                found[entry["path"]] = hits
    return found


def _category_of(manifest: dict[str, Any], reason: str) -> str:
    for category in ("quarantined", "filtered", "duplicates"):
        if reason in manifest["counts"]["by_reason"].get(category, {}):
            return category
    return "quarantined"


def _rewrite(store: Any, manifest: dict[str, Any], rows: dict[str, list[int]], request_id: str,
             make_successor: bool, producer: dict[str, Any]) -> dict[str, Any]:
    """Successor (optional) + in-place purge of one version; returns what was removed."""
    import pyarrow as pa

    dataset, stage, old_id = manifest["dataset"], manifest["stage"], manifest["id"]
    prefix = version_prefix(dataset, stage, old_id)
    removed_data = 0
    removed_q: Counter[str] = Counter()
    removed_pii_records = 0
    kept_tables: dict[str, Any] = {}
    for which in ("files", "quarantine_files"):
        for entry in manifest.get(which, []):
            table = _read_table(store, f"{prefix}/{entry['path']}")
            drop = set(rows.get(entry["path"], []))
            if drop:
                dropped = table.take(pa.array(sorted(drop), type=pa.int64())).to_pylist()
                if which == "files":
                    removed_data += len(dropped)
                    removed_pii_records += sum(1 for r in dropped if r.get("pii"))
                else:
                    removed_q.update(_category_of(manifest, r["reason"]) + "\x1f" + r["reason"] for r in dropped)
                table = table.filter(pa.array([i not in drop for i in range(table.num_rows)], type=pa.bool_()))
            kept_tables[entry["path"]] = table
    counts = json.loads(json.dumps(manifest["counts"]))
    counts["kept"] -= removed_data
    for key, n in removed_q.items():
        category, reason = key.split("\x1f")
        counts[category] -= n
        counts["by_reason"][category][reason] -= n
        if not counts["by_reason"][category][reason]:
            del counts["by_reason"][category][reason]
    removed_total = removed_data + sum(removed_q.values())
    counts["input"] -= removed_total
    removed = {"records": removed_total, "data": removed_data, "quarantine": sum(removed_q.values())}
    stamp = {"request_id": request_id, "at": datetime.now(UTC).isoformat(timespec="seconds"), "removed": removed}

    successor_id = None
    if make_successor:
        first = next(iter(kept_tables.values()), None)
        data_tables = [kept_tables[e["path"]] for e in manifest["files"]]
        schema = data_tables[0].schema if data_tables else (first.schema if first is not None else None)
        keep_extra = {k: v for k, v in manifest.items() if k not in {
            "id", "content_sha256", "format_version", "dataset", "stage", "parents", "producer", "partition",
            "created_at", "config_hash", "schema", "files", "quarantine_files", "counts", "pii", "validations",
            "erasures", "superseded_by", "erasure"}}
        writer = VersionWriter(dataset, stage, parents=[old_id], producer=producer,
                               config_hash=manifest.get("config_hash", ""), schema=schema,
                               extra={**keep_extra, "erasure": {"request_id": request_id, "supersedes": old_id,
                                                                "removed": removed}})
        try:
            for t in data_tables:
                writer.add_rows(t.to_pylist())
            q_rows = [r for e in manifest.get("quarantine_files", []) for r in kept_tables[e["path"]].to_pylist()]
            if q_rows:
                writer._quarantine.write(q_rows)
            writer.counts.input = counts["input"]
            for category in ("quarantined", "filtered", "duplicates"):
                getattr(writer.counts, category).update(counts["by_reason"][category])
            writer.counts.pii.update(manifest.get("pii", {}).get("entities", {}))
            writer.validations = list(manifest.get("validations", []))
            for key in store.list(prefix):  # exports, Data Docs: copied scrubbed by the caller's scrubber
                rel = key[len(prefix) + 1:]
                if rel != "manifest.json" and not rel.startswith(("data/", "quarantine/")):
                    writer.add_file(rel, store.read_bytes(key))
            new = writer.finish(store)
        except BaseException:
            writer.abort()
            raise
        successor_id = new["id"]
        for key in store.list(f"datasets/{dataset}/{stage}/partitions/"):
            pointer = json.loads(store.read_bytes(key))
            if pointer.get("version_id") == old_id:
                pointer = {**pointer, "version_id": successor_id, "erasure": request_id}
                store.write_bytes(partition_key(dataset, stage, pointer["partition"]),
                                  json.dumps(pointer, indent=2, sort_keys=True).encode())

    # purge the old version in place: its files without the rows, its manifest says so
    updated = dict(manifest)
    for which in ("files", "quarantine_files"):
        entries = []
        for entry in manifest.get(which, []):
            if entry["path"] in rows:
                data = _table_bytes(kept_tables[entry["path"]])
                store.write_bytes(f"{prefix}/{entry['path']}", data)
                entry = {**entry, "rows": kept_tables[entry["path"]].num_rows, "bytes": len(data),
                         "sha256": hashlib.sha256(data).hexdigest()}
            entries.append(entry)
        updated[which] = entries
    updated["counts"] = counts
    if "pii" in updated:
        updated["pii"] = {**updated["pii"], "records": updated["pii"].get("records", 0) - removed_pii_records}
    updated["erasures"] = [*manifest.get("erasures", []), stamp]
    if successor_id:
        updated["superseded_by"] = successor_id
    store.write_bytes(f"{prefix}/manifest.json", json.dumps(updated, indent=2, sort_keys=True).encode())
    return {"version": old_id, "stage": stage, "successor": successor_id, **removed}


# --------------------------------------------------------------------------- MLflow
def _mlflow_client(cfg: Any) -> Any:
    from mlflow import MlflowClient

    from llmops.config import expand_vars

    return MlflowClient(tracking_uri=expand_vars(cfg.training.tracking.tracking_uri))


def _scrub_mlflow(client: Any, scrub: Scrubber) -> int:
    """Scrub text artifacts of every run; returns the number of files rewritten."""
    import tempfile

    from mlflow.entities import ViewType

    changed = 0
    for exp in client.search_experiments(view_type=ViewType.ALL):
        for run in client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL, max_results=50_000):
            run_id = run.info.run_id
            stack: list[str | None] = [None]
            while stack:
                path = stack.pop()
                listing = client.list_artifacts(run_id, path)
                if any(Path(a.path).name == "MLmodel" for a in listing):
                    continue  # a logged model (weights, tokenizer): flagged for retraining, never edited
                for art in listing:
                    if art.is_dir:
                        stack.append(art.path)
                        continue
                    suffix = Path(art.path).suffix.lower()
                    if suffix not in _TEXT_SUFFIXES and suffix != ".parquet":
                        continue
                    if art.file_size is not None and art.file_size > _MAX_SCRUB_BYTES:
                        continue
                    with tempfile.TemporaryDirectory() as tmp:
                        local = Path(client.download_artifacts(run_id, art.path, tmp))
                        new, n = scrub.scrub(art.path, local.read_bytes())
                        if new is None:
                            continue
                        local.write_bytes(new)
                        parent = str(Path(art.path).parent)
                        client.log_artifact(run_id, str(local), None if parent == "." else parent)
                        changed += 1
                        log.info("scrubbed MLflow artifact %s of run %s (%d spots)", art.path, run_id, n)
    return changed


def _flag_models(client: Any, names: Iterable[str], labeled: set[str], request_id: str) -> list[dict[str, str]]:
    flagged = []
    for name in sorted(set(names)):
        for mv in client.search_model_versions(f"name = '{name}'"):
            used = set(filter(None, (mv.tags.get("llmops.dataset_versions") or "").split(",")))
            if not used & labeled:
                continue
            requests = set(filter(None, (mv.tags.get("llmops.privacy.erasure") or "").split(",")))
            if request_id not in requests:
                client.set_model_version_tag(name, mv.version, "llmops.privacy.erasure",
                                             ",".join(sorted(requests | {request_id})))
                client.set_model_version_tag(name, mv.version, "llmops.privacy.retrain_required", "true")
                flagged.append({"name": name, "version": str(mv.version)})
    return flagged


# --------------------------------------------------------------------------- the request
def erase(cfg: Any, *, store: Any, request_id: str, subjects: Iterable[str],
          mlflow_client: Any | None = None, backend_factory: Callable[[], Any] | None = None,
          who: dict[str, str] | None = None) -> dict[str, Any]:
    """Carry out erasure request ``request_id`` for ``subjects``; returns counts (no data)."""
    if not _REQUEST_ID.match(request_id or ""):
        raise ErasureError("request_id must be 1-128 letters, digits, '.', '_', ':' or '-' (e.g. DSR-2026-0042)")
    subjects = [s for s in (str(x).strip() for x in subjects) if s]
    if not subjects:
        raise ErasureError("name at least one subject: a raw identifier, a pseudonym such as "
                           "<EMAIL_ADDRESS_1a2b3c4d5e6f> or a subject key ENTITY:<64 hex>")
    keys = subject_keys(cfg)
    if keys is None:
        raw = [s for s in subjects if not s.startswith("<")]
        if len(raw) != len(subjects):
            raise ErasureError("pseudonyms need the subject index: set privacy.subject_index.enabled and its key")
        query = SubjectQuery(raw=raw)
    else:
        query = keys.query(subjects)
    scrub = Scrubber()
    short = [value for value in query.raw if not scrub.add_identifier(value)]
    if short and keys is None:
        raise ErasureError(f"{len(short)} identifier(s) shorter than {MIN_IDENTIFIER} characters can only be "
                           "matched through the subject index; enable privacy.subject_index")
    if short:
        log.warning("%d identifier(s) shorter than %d characters are matched through the subject index only",
                    len(short), MIN_IDENTIFIER)

    # 1. the index: subject keys -> record ids
    index_files: dict[str, list[tuple[str, str, str]]] = {}
    for key, rows in read_index(store, cfg.dataset):
        index_files[key] = rows
        for subject, record_id, _ in rows:
            if query.matches(subject):
                scrub.ids.add(record_id)

    # 2. dataset versions: find the records (raw first: the unredacted text)
    producer = {"kind": "erasure", "request_id": request_id}
    manifests = {stage: _manifests(store, cfg.dataset, stage) for stage in STAGES}
    found: list[tuple[dict[str, Any], dict[str, list[int]]]] = []
    for _ in range(2):  # a second pass: ids and texts found in a later stage match earlier stages too
        before = (len(scrub.ids), len(scrub.needles))
        found = []
        for stage in STAGES:
            for manifest in manifests[stage]:
                hits = _find_rows(store, manifest, scrub, query)
                if hits:
                    found.append((manifest, hits))
        if (len(scrub.ids), len(scrub.needles)) == before:
            break
    # Everything that copies or points at the records goes first, the versions last: until they
    # are rewritten, a retry after a crash finds the same records and texts again.
    # 3. open HITs holding the subject's items: expired before their items leave the job files
    hits_cancelled = _cancel_hits(cfg, store, scrub.ids, request_id, backend_factory)

    # 4. the dedup index (keys of kept records that later partitions are checked against): the
    # records' keys go, so nothing derived from their text stays
    from llmops.curate.history import erase_records

    dedup_removed = erase_records(store, cfg.dataset, scrub.ids)

    # 5. every other file in the store (a successor copies the scrubbed exports and Data Docs)
    files_scrubbed = 0
    skip = re.compile(r"^(datasets/[^/]+/[^/]+/versions/[^/]+/(manifest\.json|data/|quarantine/)"
                      r"|datasets/[^/]+/[^/]+/partitions/|datasets/[^/]+/dedup_index/|privacy/|audit/)")
    if scrub.ids or scrub.needles:
        for key in store.list(""):
            if skip.match(key) or not _scrubbable(key):
                continue
            new, n = scrub.scrub(key, store.read_bytes(key))
            if new is not None:
                store.write_bytes(key, new)
                files_scrubbed += 1
                log.info("scrubbed %s (%d spots)", key, n)

    # 6. MLflow: artifacts scrubbed, model versions trained on affected labeled versions flagged
    affected_labeled = {m["id"] for m, _ in found if m["stage"] == "labeled"}
    for manifest in manifests["labeled"]:  # versions an earlier run of this request already purged
        if any(e.get("request_id") == request_id for e in manifest.get("erasures", [])):
            affected_labeled.add(manifest["id"])
    artifacts_scrubbed, flagged = 0, []
    if cfg.privacy.erasure_scan_mlflow or affected_labeled:
        client = mlflow_client if mlflow_client is not None else _mlflow_client(cfg)
        if cfg.privacy.erasure_scan_mlflow and (scrub.ids or scrub.needles):
            artifacts_scrubbed = _scrub_mlflow(client, scrub)
        if affected_labeled:
            names = [cfg.training.registered_model, *(c.registered_model for c in cfg.training.candidates
                                                       if getattr(c, "registered_model", None))]
            flagged = _flag_models(client, names, affected_labeled, request_id)

    # 7. the dataset versions: successors without the records, the old versions purged
    versions = [_rewrite(store, m, hits, request_id, make_successor=not m.get("superseded_by"), producer=producer)
                for m, hits in found]

    # 8. the index: the subject's entries go (last: a retry still finds the records by them)
    index_removed = 0
    for key, rows in index_files.items():
        kept = [r for r in rows if not query.matches(r[0]) and r[1] not in scrub.ids]
        if len(kept) != len(rows):
            index_removed += len(rows) - len(kept)
            store.write_bytes(key, index_bytes(kept))

    retrain = sorted(v["successor"] for v in versions if v["stage"] == "labeled" and v["successor"])
    summary = {
        "request_id": request_id, "subjects": len(subjects), "records": len(scrub.ids),
        "versions": versions, "removed": {
            stage: sum(v["records"] for v in versions if v["stage"] == stage) for stage in STAGES},
        "files_scrubbed": files_scrubbed, "index_entries_removed": index_removed,
        "dedup_index_removed": dedup_removed,
        "mlflow_artifacts_scrubbed": artifacts_scrubbed, "model_versions_flagged": flagged,
        "hits_cancelled": hits_cancelled, "retrain": retrain,
    }
    summary["changed"] = bool(versions or files_scrubbed or index_removed or artifacts_scrubbed or flagged
                              or hits_cancelled or dedup_removed)
    _record(store, summary, who, cfg.dataset)
    return summary


def _scrubbable(key: str) -> bool:
    suffix = Path(key).suffix.lower()
    return suffix in _TEXT_SUFFIXES or suffix == ".parquet"


def _cancel_hits(cfg: Any, store: Any, ids: set[str], request_id: str,
                 backend_factory: Callable[[], Any] | None) -> int:
    from llmops.annotation.jobs import _save_ledger

    if not ids:
        return 0
    backend = None
    cancelled = 0
    prefix = f"annotations/{cfg.dataset}/jobs/"
    for key in store.list(prefix):
        if not key.endswith("/ledger.json"):
            continue
        ledger = json.loads(store.read_bytes(key))
        if ledger.get("status") == "published":
            continue
        done = {c["hit_id"] for c in ledger.get("cancelled", [])}
        for hit in ledger.get("hits", {}).values():
            if hit["hit_id"] in done or not set(hit.get("fields", {}).values()) & ids:
                continue
            if backend is None:
                if backend_factory is None:
                    from llmops.annotation.jobs import make_backend

                    backend = make_backend(cfg, store)
                else:
                    backend = backend_factory()
            backend.extend_hit(hit["hit_id"], datetime(2015, 1, 1, tzinfo=UTC))  # a past time expires it
            ledger.setdefault("cancelled", []).append({"hit_id": hit["hit_id"], "request_id": request_id,
                                                       "reason": "erasure"})
            _save_ledger(store, ledger)
            cancelled += 1
            log.info("HIT %s of job %s expired for erasure request %s", hit["hit_id"],
                     key[len(prefix):].split("/")[0], request_id)
    return cancelled


def _totals(store: Any, dataset: str, request_id: str) -> dict[str, Any]:
    """What the request removed over all its runs, from the manifests (durable: right after a retry)."""
    removed = dict.fromkeys(STAGES, 0)
    successors: dict[str, str | None] = {}
    for stage in STAGES:
        for manifest in _manifests(store, dataset, stage):
            for entry in manifest.get("erasures", []):
                if entry.get("request_id") == request_id:
                    removed[stage] += entry["removed"]["records"]
                    successors[manifest["id"]] = manifest.get("superseded_by")
    return {"removed": removed, "versions": dict(sorted(successors.items()))}


def _record(store: Any, summary: dict[str, Any], who: dict[str, str] | None, dataset: str) -> None:
    """``privacy/erasures/<request_id>.json`` (totals, and each run that changed something) and the
    audit event, written once the request is complete. Counts and ids only, never data."""
    key = erasure_record_key(summary["request_id"])
    record = erasure_record(store, summary["request_id"])
    run = {k: summary[k] for k in ("records", "removed", "files_scrubbed", "index_entries_removed",
                                   "mlflow_artifacts_scrubbed", "hits_cancelled")}
    run["model_versions_flagged"] = summary["model_versions_flagged"]
    run["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    if record is None:
        record = {"request_id": summary["request_id"], "subjects": summary["subjects"], "runs": []}
    if summary["changed"] or not record["runs"]:
        record["runs"].append(run)
        runs = record["runs"]
        record.update(_totals(store, dataset, summary["request_id"]))
        record.update({
            "records": max(r["records"] for r in runs), "completed_at": run["at"],
            "files_scrubbed": sum(r["files_scrubbed"] for r in runs),
            "mlflow_artifacts_scrubbed": sum(r["mlflow_artifacts_scrubbed"] for r in runs),
            "hits_cancelled": sum(r["hits_cancelled"] for r in runs),
            "model_versions_flagged": [mv for r in runs for mv in r["model_versions_flagged"]],
        })
        store.write_bytes(key, json.dumps(record, indent=1, sort_keys=True).encode())
    record_event(store, "erasure", event_key=summary["request_id"], who=who, details={
        k: record[k] for k in ("subjects", "records", "removed", "files_scrubbed", "mlflow_artifacts_scrubbed",
                               "hits_cancelled")} | {"versions": len(record["versions"]),
                                                    "model_versions_flagged": len(record["model_versions_flagged"])})
