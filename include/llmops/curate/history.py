"""Duplicates across partitions: an append-only dedup index of every published curated version.

When a curated version of partition ``P`` is published, the keys of its kept records are written as
one *run* of the dataset's index in the object store, and the partition's pointer in the index is
set to it::

    datasets/<dataset>/dedup_index/runs/<version_id>/exact.parquet  hi, lo (the 16-byte exact key), doc
                                                     bands.parquet  key (one MinHash LSH band key), doc
                                                     docs.parquet   doc, id, fps (8-bit fingerprints)
                                                     run.json       written last
    datasets/<dataset>/dedup_index/partitions/<P>.json                -> {"version_id": ...}

The key files are sorted with small row groups, so a lookup reads, per run, only the row groups
whose key range holds a queried key (Parquet min/max statistics), never the whole history; the
fingerprints of a candidate are read the same way, by document number. Nothing here holds text.

A partition consults the runs of the partitions *before* it (in partition order: ISO dates sort),
through their pointers; so a backfill of an older day sees what a first run of that day saw, and
re-running any day gives the same version. A re-published partition moves its pointer to the new
run. Erasure (:func:`erase_records`) rewrites the runs without the erased records' keys.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["HistoryIndex", "erase_records", "exact_halves", "index_prefix", "write_run"]

log = logging.getLogger(__name__)

KEY_ROW_GROUP = 16_384
DOC_ROW_GROUP = 4_096
READ_GROUPS = 32  # row groups read at once by a lookup


def index_prefix(dataset: str) -> str:
    return f"datasets/{dataset}/dedup_index"


def _pointer_key(dataset: str, partition: str) -> str:
    safe = partition.replace("/", "_").replace(":", "-")
    return f"{index_prefix(dataset)}/partitions/{safe}.json"


def _signed(keys: np.ndarray) -> np.ndarray:
    """uint64 keys as int64 (a bit-for-bit view): Parquet's min/max statistics then order them the
    same way NumPy sorts them."""
    return np.ascontiguousarray(keys, dtype=np.uint64).view(np.int64)


def exact_halves(digests: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """16-byte exact keys as two int64 arrays (high, low)."""
    if not digests:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    both = np.frombuffer(b"".join(digests), dtype="<i8").reshape(-1, 2)
    return both[:, 0].copy(), both[:, 1].copy()


def near_params(near: Any) -> dict[str, Any]:
    """What band keys and fingerprints depend on (runs with other parameters are not compared)."""
    return {"num_perm": near.hasher.num_perm, "kind": near.hasher.kind, "n": near.hasher.n,
            "seed": near.hasher.seed, "bands": near.bands, "rows": near.rows, "fingerprint_bits": 8}


# ------------------------------------------------------------------------------------ writing
def write_run(store: Any, dataset: str, *, partition: str, version_id: str, ids: Sequence[str],
              exact: Sequence[bytes | None], bands: np.ndarray | None, fps: np.ndarray | None,
              params: dict[str, Any] | None) -> dict[str, Any]:
    """Index the kept records of ``version_id`` (partition ``partition``) and point the partition at
    them. Idempotent: a run already written is not written again."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    prefix = f"{index_prefix(dataset)}/runs/{version_id}"
    n = len(ids)
    run = {"partition": partition, "version_id": version_id, "docs": n, "near": params}
    if not store.exists(f"{prefix}/run.json"):
        tmp = Path(tempfile.mkdtemp(prefix="llmops-history-"))
        try:
            docs = np.arange(n, dtype=np.int32)
            have = np.asarray([i for i, d in enumerate(exact) if d is not None], dtype=np.int64)
            hi, lo = exact_halves([exact[i] for i in have.tolist()])
            order = np.lexsort((lo, hi))
            pq.write_table(pa.table({"hi": hi[order], "lo": lo[order], "doc": docs[have][order]}),
                           tmp / "exact.parquet", row_group_size=KEY_ROW_GROUP, compression="zstd")
            if bands is not None and params is not None:
                keys = _signed(bands).ravel()
                order = np.argsort(keys, kind="stable")
                pq.write_table(pa.table({"key": keys[order], "doc": np.repeat(docs, bands.shape[1])[order]}),
                               tmp / "bands.parquet", row_group_size=KEY_ROW_GROUP, compression="zstd")
            cols: dict[str, Any] = {"doc": docs, "id": pa.array(list(ids), pa.string())}
            if fps is not None and params is not None:
                cols["fps"] = pa.FixedSizeListArray.from_arrays(pa.array(fps.astype(np.uint8).ravel()),
                                                                fps.shape[1])
            pq.write_table(pa.table(cols), tmp / "docs.parquet", row_group_size=DOC_ROW_GROUP, compression="zstd")
            (tmp / "run.json").write_text(json.dumps(run, sort_keys=True))
            store.publish_dir(tmp, prefix, last="run.json")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    store.write_bytes(_pointer_key(dataset, partition),
                      json.dumps({"partition": partition, "version_id": version_id}, sort_keys=True).encode())
    return run


# ------------------------------------------------------------------------------------ reading
def _is_date(value: str) -> bool:
    from datetime import date

    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _days_before(partition: str | None, days: int | None) -> str | None:
    """The first day of the ``days`` days before ``partition`` (None: no date partition or no horizon)."""
    from datetime import date, timedelta

    if partition is None or days is None or not _is_date(partition):
        return None
    return (date.fromisoformat(partition) - timedelta(days=days)).isoformat()


class HistoryIndex:
    """The runs of the partitions before ``before`` (all with ``before=None``), oldest first."""

    def __init__(self, store: Any, dataset: str, runs: list[dict[str, Any]]) -> None:
        self.store = store
        self.dataset = dataset
        self.runs = runs
        self._files: dict[tuple[int, str], Any] = {}
        self._cache = Path(tempfile.mkdtemp(prefix="llmops-history-read-"))
        self.stats = {"row_groups_read": 0, "row_groups_total": 0, "rows_read": 0}

    @classmethod
    def open(cls, store: Any, dataset: str, *, before: str | None, horizon_days: int | None = None) -> HistoryIndex:
        """The runs of the partitions before ``before``; with ``horizon_days`` (and date partitions)
        only those of the last ``horizon_days`` days before it."""
        prefix = f"{index_prefix(dataset)}/partitions/"
        since = _days_before(before, horizon_days)
        pointers = []
        for key in store.list(prefix):
            if key.endswith(".json"):
                pointer = json.loads(store.read_bytes(key))
                if before is None or pointer["partition"] < before:
                    if since is None or not _is_date(pointer["partition"]) or pointer["partition"] >= since:
                        pointers.append(pointer)
        runs = []
        for pointer in sorted(pointers, key=lambda p: p["partition"]):
            key = f"{index_prefix(dataset)}/runs/{pointer['version_id']}/run.json"
            if not store.exists(key):
                log.warning("dedup index: partition %s points at run %s, which is missing; skipped",
                            pointer["partition"], pointer["version_id"])
                continue
            runs.append(json.loads(store.read_bytes(key)))
        return cls(store, dataset, runs)

    def __len__(self) -> int:
        return len(self.runs)

    @property
    def docs(self) -> int:
        return sum(int(r["docs"]) for r in self.runs)

    def close(self) -> None:
        self._files.clear()
        shutil.rmtree(self._cache, ignore_errors=True)

    def _parquet(self, r: int, name: str) -> Any:
        import pyarrow.parquet as pq

        if (r, name) not in self._files:
            key = f"{index_prefix(self.dataset)}/runs/{self.runs[r]['version_id']}/{name}"
            if not self.store.exists(key):
                self._files[(r, name)] = None
            else:
                local = self.store.local_path(key)
                if local is None:
                    local = self.store.download(key, self._cache / str(r) / name)
                self._files[(r, name)] = pq.ParquetFile(local)
        return self._files[(r, name)]

    def _read(self, r: int, name: str, column: str, query: np.ndarray, columns: list[str]) -> dict[str, np.ndarray]:
        """Rows of run ``r``'s file whose row group may hold one of the sorted ``query`` values of ``column``
        (by the row groups' min/max statistics), filtered to exact matches."""
        pf = self._parquet(r, name)
        empty = {c: np.zeros(0, np.int64) for c in columns}
        if pf is None or len(query) == 0:
            return empty
        md = pf.metadata
        ci = pf.schema_arrow.get_field_index(column)
        groups = []
        for g in range(md.num_row_groups):
            st = md.row_group(g).column(ci).statistics
            if st is None or not st.has_min_max:
                groups.append(g)
            elif np.searchsorted(query, st.min, "left") < np.searchsorted(query, st.max, "right"):
                groups.append(g)
        self.stats["row_groups_total"] += md.num_row_groups
        if not groups:
            return empty
        parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
        for start in range(0, len(groups), READ_GROUPS):  # bounded memory: a few row groups at a time
            table = pf.read_row_groups(groups[start:start + READ_GROUPS], columns=columns)
            self.stats["row_groups_read"] += min(READ_GROUPS, len(groups) - start)
            self.stats["rows_read"] += table.num_rows
            mask = np.isin(table.column(column).to_numpy(), query)
            if not mask.any():
                continue
            for c in columns:
                col = table.column(c)
                if c == "fps":
                    width = col.type.list_size
                    parts[c].append(col.combine_chunks().flatten().to_numpy().reshape(-1, width)[mask])
                elif c == "id":
                    parts[c].append(np.asarray(col.to_pylist(), dtype=object)[mask])
                else:
                    parts[c].append(col.to_numpy()[mask])
        return {c: np.concatenate(v) if v else empty[c] for c, v in parts.items()}

    def ids(self, r: int, docs: np.ndarray) -> dict[int, str]:
        got = self._read(r, "docs.parquet", "doc", np.unique(docs.astype(np.int32)), ["doc", "id"])
        return dict(zip(got["doc"].tolist(), got["id"].tolist(), strict=True))

    def exact(self, hi: np.ndarray, lo: np.ndarray) -> dict[int, tuple[int, int]]:
        """Query row -> (run, doc) of the earliest kept record with the same exact key."""
        out: dict[int, tuple[int, int]] = {}
        if len(hi) == 0:
            return out
        wanted: dict[tuple[int, int], list[int]] = {}
        for qi, key in enumerate(zip(hi.tolist(), lo.tolist(), strict=True)):
            wanted.setdefault(key, []).append(qi)
        query = np.unique(hi)
        for r in range(len(self.runs)):
            got = self._read(r, "exact.parquet", "hi", query, ["hi", "lo", "doc"])
            for h, lo_, doc in zip(got["hi"].tolist(), got["lo"].tolist(), got["doc"].tolist(), strict=True):
                for qi in wanted.get((h, lo_), ()):
                    if qi not in out or (out[qi][0] == r and doc < out[qi][1]):
                        out[qi] = (r, doc)
            if len(out) == len(hi):
                break
        return out

    def near(self, bands: np.ndarray, fps: np.ndarray, *, params: dict[str, Any], need: int,
             cap: int = 64, skip: set[int] | None = None) -> dict[int, tuple[int, int]]:
        """Query row -> (run, doc) of the earliest kept record sharing an LSH band with it whose
        fingerprints agree on at least ``need`` of ``num_perm`` values (runs built with other MinHash
        parameters are not compared); at most ``cap`` candidates per row and run are verified."""
        out: dict[int, tuple[int, int]] = {}
        n, b = bands.shape
        if n == 0:
            return out
        qkeys = _signed(bands).ravel()
        qdoc = np.repeat(np.arange(n, dtype=np.int64), b)
        order = np.argsort(qkeys, kind="stable")
        qs, qd = qkeys[order], qdoc[order]
        query = np.unique(qs)
        skip = set(skip or ())
        for r, run in enumerate(self.runs):
            if run.get("near") != params:
                continue
            got = self._read(r, "bands.parquet", "key", query, ["key", "doc"])
            if len(got["key"]) == 0:
                continue
            left = np.searchsorted(qs, got["key"], "left")
            counts = np.searchsorted(qs, got["key"], "right") - left
            hist_doc = np.repeat(got["doc"].astype(np.int64), counts)
            starts = np.repeat(left - np.cumsum(counts) + counts, counts)
            q_doc = qd[starts + np.arange(len(hist_doc))]
            pair = np.unique((q_doc << 32) | hist_doc)  # by query row, then oldest document
            q_doc, hist_doc = pair >> 32, pair & 0xFFFFFFFF
            keep = np.array([q not in out and q not in skip for q in q_doc.tolist()], dtype=bool)
            q_doc, hist_doc = q_doc[keep], hist_doc[keep]
            if cap and len(q_doc):
                first = np.searchsorted(q_doc, q_doc, "left")
                rank = np.arange(len(q_doc)) - first
                q_doc, hist_doc = q_doc[rank < cap], hist_doc[rank < cap]
            if len(q_doc) == 0:
                continue
            docs = np.unique(hist_doc)
            rows = self._read(r, "docs.parquet", "doc", docs.astype(np.int32), ["doc", "fps"])
            at = {d: i for i, d in enumerate(rows["doc"].tolist())}
            found = np.array([d in at for d in hist_doc.tolist()], dtype=bool)
            q_doc, hist_doc = q_doc[found], hist_doc[found]  # erased documents are gone
            if len(q_doc) == 0:
                continue
            hist_fps = rows["fps"][[at[d] for d in hist_doc.tolist()]]
            ok = np.count_nonzero(fps[q_doc] == hist_fps, axis=1) >= need
            for q, d in zip(q_doc[ok].tolist(), hist_doc[ok].tolist(), strict=True):
                if q not in out:
                    out[q] = (r, d)
        return out


# ------------------------------------------------------------------------------------ erasure
def _run_table(store: Any, run_prefix: str, name: str, tmp: Path) -> Any:
    import pyarrow.parquet as pq

    key = f"{run_prefix}/{name}"
    if not store.exists(key):
        return None
    return pq.read_table(store.local_path(key) or store.download(key, tmp / name))


def erase_records(store: Any, dataset: str, ids: set[str]) -> int:
    """Remove the records ``ids`` (and their keys) from every run of the dataset's index; returns
    how many index documents were removed. Re-running finds nothing left."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not ids:
        return 0
    removed = 0
    prefix = f"{index_prefix(dataset)}/runs/"
    for key in store.list(prefix):
        if not key.endswith("/run.json"):
            continue
        run_prefix = key[: -len("/run.json")]
        tmp = Path(tempfile.mkdtemp(prefix="llmops-history-erase-"))
        try:
            docs = _run_table(store, run_prefix, "docs.parquet", tmp)
            if docs is None:
                continue
            gone = pc.is_in(docs.column("id"), value_set=pa.array(sorted(ids), pa.string()))
            erased = docs.filter(gone).column("doc")
            if len(erased) == 0:
                continue
            for name, size in (("exact.parquet", KEY_ROW_GROUP), ("bands.parquet", KEY_ROW_GROUP),
                               ("docs.parquet", DOC_ROW_GROUP)):
                t = docs if name == "docs.parquet" else _run_table(store, run_prefix, name, tmp)
                if t is None:
                    continue
                t = t.filter(pc.invert(pc.is_in(t.column("doc"), value_set=erased)))
                out = tmp / f"new-{name}"
                pq.write_table(t, out, row_group_size=size, compression="zstd")
                store.write_bytes(f"{run_prefix}/{name}", out.read_bytes())
            removed += len(erased)
            log.info("dedup index: %d record(s) erased from %s", len(erased), run_prefix)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return removed
