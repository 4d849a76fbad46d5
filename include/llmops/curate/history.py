"""Duplicates across partitions: an append-only dedup index of every published curated version.

The index is a small log-structured store of immutable *segments* in the object store::

    datasets/<dataset>/dedup_index/segments/<segment>/exact_hi.bin, exact_lo.bin, exact_doc.bin
                                                      band_key.bin, band_doc.bin        (with near dedup)
                                                      exact_fence.bin, band_fence.bin
                                                      doc_run.bin, fps.bin, id_off.bin, id_data.bin
                                                      segment.json                      written last
    datasets/<dataset>/dedup_index/partitions/<P>.json  -> {"version_id": ...}

When a curated version of partition ``P`` is published, the keys of its kept records are written as
a segment of one *run* (``run-<version_id>``) and the partition's pointer is set to it. Each segment
holds its key columns sorted (the 16-byte exact keys as two int64 halves; the MinHash LSH band keys)
with the number of the document each key belongs to, and a *fence* of every ``BLOCK``-th key; per
document its run, its 8-bit MinHash fingerprints and its record id. Nothing here holds text.

A lookup of ``Q`` keys reads, per segment, the fence and the ``BLOCK``-key blocks the fence says can
hold a queried key: at most ``Q`` blocks however large the segment is. Segments are compacted as they
accumulate (size tiers of ``FANOUT``: ``FANOUT`` segments of one tier are merged into one of the next,
by key ranges, in bounded memory), so a history of ``N`` documents has ``O(log N)`` segments and a
lookup's cost grows with ``Q log N``, not with ``N``. Segments are immutable; a worker reading from
an S3 store keeps a local copy of each segment it reads (under the system temp folder, by segment
name), and reads blocks from it with memory maps whose pages it hands back after each chunk.

A partition consults the runs of the partitions *before* it (in partition order: ISO dates sort),
through their pointers; so a backfill of an older day sees what a first run of that day saw, and
re-running any day gives the same version. Which segment holds a run does not change an answer: every
match is resolved to (run, document) and the earliest is taken. A re-published partition moves its
pointer to the new run; runs no pointer names are dropped at the next compaction that touches them.
Erasure (:func:`erase_records`) rewrites the segments that hold an erased record, without its keys.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import mmap
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["HistoryIndex", "compact", "erase_records", "exact_halves", "index_prefix", "write_run"]

log = logging.getLogger(__name__)

BLOCK = 512  # keys per block (4 KiB of int64): the unit a lookup reads
CHUNK = 8_192  # query keys matched at once (bounds a lookup's memory)
FANOUT = 4  # segments of one size tier merged into one
MERGE_RANGES = 64  # key ranges a merge is done in (bounds its memory)
FORMAT = 2

_DTYPES = {"exact_hi": np.int64, "exact_lo": np.int64, "exact_doc": np.int32, "exact_fence": np.int64,
           "band_key": np.int64, "band_doc": np.int32, "band_fence": np.int64, "doc_run": np.int32,
           "fps": np.uint8, "id_off": np.int64, "id_data": np.uint8}


def index_prefix(dataset: str) -> str:
    return f"datasets/{dataset}/dedup_index"


def _pointer_key(dataset: str, partition: str) -> str:
    safe = partition.replace("/", "_").replace(":", "-")
    return f"{index_prefix(dataset)}/partitions/{safe}.json"


def _segments_prefix(dataset: str) -> str:
    return f"{index_prefix(dataset)}/segments"


def _signed(keys: np.ndarray) -> np.ndarray:
    """uint64 keys as int64 (a bit-for-bit view)."""
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


def _params_key(params: dict[str, Any] | None) -> str:
    return json.dumps(params, sort_keys=True)


def _expand(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The concatenated ranges ``starts[i] .. starts[i] + counts[i]``."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts.astype(np.int64), counts) + (np.arange(total, dtype=np.int64) - offsets)


# ------------------------------------------------------------------------------------ a segment on disk
class _Segment:
    """One segment's files in a local folder, read through memory maps."""

    def __init__(self, name: str, folder: Path, meta: dict[str, Any]) -> None:
        self.name, self.folder, self.meta = name, folder, meta
        self.docs = int(meta["docs"])
        self.runs: list[dict[str, Any]] = meta["runs"]
        self.starts = np.asarray([int(r["start"]) for r in self.runs] + [self.docs], dtype=np.int64)
        self.near: dict[str, Any] | None = meta.get("near")
        self._maps: dict[str, np.ndarray] = {}
        self._fences: dict[str, np.ndarray] = {}
        # the files are opened now: a compaction that deletes the segment afterwards does not break a
        # reader that has it open
        self._fh = {n: open(folder / f"{n}.bin", "rb") for n in _DTYPES if (folder / f"{n}.bin").exists()}

    def close(self) -> None:
        self._maps.clear()
        for fh in self._fh.values():
            fh.close()
        self._fh.clear()

    def array(self, name: str) -> np.ndarray:
        if name not in self._maps:
            fh = self._fh.get(name)
            size = os.fstat(fh.fileno()).st_size if fh is not None else 0
            if size == 0:
                arr: np.ndarray = np.zeros(0, _DTYPES[name])
            else:
                assert fh is not None
                arr = np.memmap(fh, dtype=np.dtype(_DTYPES[name]), mode="r")
            if name == "fps":
                arr = arr.reshape(-1, int(self.meta.get("fp_width") or 1))
            self._maps[name] = arr
        return self._maps[name]

    def fence(self, name: str) -> np.ndarray:
        if name not in self._fences:
            self._fences[name] = np.array(self.array(f"{name}_fence"))
        return self._fences[name]

    def release(self) -> None:
        """Hand the pages read so far back to the OS (they stay in its cache, not in this process)."""
        for arr in self._maps.values():
            base = getattr(arr, "_mmap", None) if isinstance(arr, np.memmap) else None
            if base is None and isinstance(arr.base, np.memmap):
                base = getattr(arr.base, "_mmap", None)
            dontneed = getattr(mmap, "MADV_DONTNEED", None)
            if base is not None and dontneed is not None and hasattr(base, "madvise"):
                with contextlib.suppress(OSError, ValueError):
                    base.madvise(dontneed)

    def match(self, column: str, query: np.ndarray, stats: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
        """Every entry of the sorted key column ``column`` (``exact_hi`` or ``band_key``) equal to one
        of the sorted unique ``query`` values: (query index, entry position) pairs. Reads the blocks
        the fence points at, ``CHUNK`` query values at a time."""
        keys = self.array(column)
        fence = self.fence("exact" if column == "exact_hi" else "band")
        n = len(keys)
        out_q: list[np.ndarray] = []
        out_pos: list[np.ndarray] = []
        stats["blocks_total"] += len(fence)
        if n == 0 or len(query) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        for c in range(0, len(query), CHUNK):
            q = query[c:c + CHUNK]
            first = np.maximum(np.searchsorted(fence, q, "left") - 1, 0)
            last = np.maximum(np.searchsorted(fence, q, "right") - 1, 0)
            blocks = np.unique(_expand(first, last - first + 1))
            pos = (blocks[:, None] * BLOCK + np.arange(BLOCK, dtype=np.int64)).ravel()
            pos = pos[pos < n]
            vals = np.asarray(keys[pos])
            stats["blocks_read"] += len(blocks)
            stats["keys_read"] += len(pos)
            left = np.searchsorted(vals, q, "left")
            counts = np.searchsorted(vals, q, "right") - left
            if counts.any():
                out_pos.append(pos[_expand(left, counts)])
                out_q.append(c + np.repeat(np.arange(len(q), dtype=np.int64), counts))
            self.release()
        if not out_q:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(out_q), np.concatenate(out_pos)

    def ids(self, docs: np.ndarray) -> list[str]:
        off, data = self.array("id_off"), self.array("id_data")
        out = []
        for d in docs.tolist():
            a, b = int(off[d]), int(off[d + 1])
            out.append(bytes(data[a:b]).decode())
        return out

    def run_of(self, docs: np.ndarray) -> np.ndarray:
        return np.asarray(self.array("doc_run")[docs], dtype=np.int64)


# ------------------------------------------------------------------------------------ writing segments
class _Writer:
    """Writes a segment's files into a local folder: key columns appended in sorted order (their
    fences as they go), per-document columns appended run by run."""

    def __init__(self, folder: Path, *, near: bool) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        names = ["exact_hi", "exact_lo", "exact_doc", "exact_fence", "doc_run", "id_off", "id_data"]
        if near:
            names += ["band_key", "band_doc", "band_fence", "fps"]
        self._fh = {n: open(folder / f"{n}.bin", "wb") for n in names}
        self.count = {"exact": 0, "band": 0}
        self.docs = 0
        self.id_bytes = 0
        self._fh["id_off"].write(np.zeros(1, np.int64).tobytes())

    def keys(self, kind: str, key: np.ndarray, doc: np.ndarray, lo: np.ndarray | None = None) -> None:
        """Append sorted entries (continuing the sorted order of the previous call)."""
        if len(key) == 0:
            return
        at = self.count[kind]
        self._fh[f"{kind}_fence"].write(np.ascontiguousarray(key[(-at) % BLOCK::BLOCK], np.int64).tobytes())
        self._fh["exact_hi" if kind == "exact" else "band_key"].write(np.ascontiguousarray(key, np.int64).tobytes())
        if lo is not None:
            self._fh["exact_lo"].write(np.ascontiguousarray(lo, np.int64).tobytes())
        self._fh[f"{kind}_doc"].write(np.ascontiguousarray(doc, np.int32).tobytes())
        self.count[kind] += len(key)

    def documents(self, run: int, ids: Sequence[str], fps: np.ndarray | None) -> None:
        encoded = [i.encode() for i in ids]
        lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
        self.documents_raw(run, lengths, b"".join(encoded), fps)

    def documents_raw(self, run: int, lengths: np.ndarray, data: bytes, fps: np.ndarray | None) -> None:
        """Documents given as their ids' UTF-8 lengths and bytes (copied from another segment as is)."""
        self._fh["id_off"].write((self.id_bytes + np.cumsum(lengths, dtype=np.int64)).tobytes())
        self._fh["id_data"].write(data)
        self.id_bytes += int(lengths.sum())
        self._fh["doc_run"].write(np.full(len(lengths), run, np.int32).tobytes())
        if fps is not None and "fps" in self._fh:
            self._fh["fps"].write(np.ascontiguousarray(fps, np.uint8).tobytes())
        self.docs += len(lengths)

    def close(self, meta: dict[str, Any]) -> None:
        for fh in self._fh.values():
            fh.close()
        (self.folder / "segment.json").write_text(json.dumps({**meta, "docs": self.docs, "format": FORMAT,
                                                              "keys": self.count}, sort_keys=True))


def _publish(store: Any, dataset: str, name: str, folder: Path) -> None:
    store.publish_dir(folder, f"{_segments_prefix(dataset)}/{name}", last="segment.json")


def write_run(store: Any, dataset: str, *, partition: str, version_id: str, ids: Sequence[str],
              exact: Sequence[bytes | None], bands: np.ndarray | None, fps: np.ndarray | None,
              params: dict[str, Any] | None, compaction: bool = True) -> dict[str, Any]:
    """Index the kept records of ``version_id`` (partition ``partition``) as a segment of one run,
    point the partition at it, then compact the index if a size tier is full. Idempotent: a run
    already written is not written again."""
    n = len(ids)
    near = bands is not None and fps is not None and params is not None
    run = {"partition": partition, "version_id": version_id, "docs": n, "near": params if near else None}
    name = f"run-{version_id}"
    if not store.exists(f"{_segments_prefix(dataset)}/{name}/segment.json"):
        tmp = Path(tempfile.mkdtemp(prefix="llmops-history-"))
        try:
            w = _Writer(tmp, near=near)
            have = np.asarray([i for i, d in enumerate(exact) if d is not None], dtype=np.int64)
            hi, lo = exact_halves([exact[i] for i in have.tolist()])
            order = np.lexsort((lo, hi))
            w.keys("exact", hi[order], have[order], lo[order])
            if near:
                assert bands is not None
                keys = _signed(bands).ravel()
                order = np.argsort(keys, kind="stable")
                w.keys("band", keys[order], np.repeat(np.arange(n, dtype=np.int64), bands.shape[1])[order])
            w.documents(0, list(ids), fps if near else None)
            w.close({"runs": [{**run, "start": 0}], "near": run["near"],
                     "fp_width": int(fps.shape[1]) if near and fps is not None else 0})
            _publish(store, dataset, name, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    store.write_bytes(_pointer_key(dataset, partition),
                      json.dumps({"partition": partition, "version_id": version_id}, sort_keys=True).encode())
    if compaction:
        try:
            compact(store, dataset)
        except Exception as exc:  # the run is indexed and its pointer set: a compaction can wait
            log.warning("dedup index: compaction of %s skipped (%s); the next publication retries it", dataset, exc)
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


def _pointers(store: Any, dataset: str) -> dict[str, str]:
    """Partition -> the version id its pointer names."""
    out = {}
    for key in store.list(f"{index_prefix(dataset)}/partitions/"):
        if key.endswith(".json"):
            pointer = json.loads(store.read_bytes(key))
            out[pointer["partition"]] = pointer["version_id"]
    return out


def _segment_names(store: Any, dataset: str) -> list[str]:
    prefix = _segments_prefix(dataset) + "/"
    names = {k[len(prefix):].split("/", 1)[0] for k in store.list(prefix) if k.endswith("/segment.json")}
    return sorted(n for n in names if not n.startswith("."))  # not a folder still being published


def _missing_errors() -> tuple[type[BaseException], ...]:
    """What reading a key that was just deleted raises: the local store's error, or S3's."""
    try:
        from botocore.exceptions import ClientError
    except ImportError:
        return (FileNotFoundError,)
    return (FileNotFoundError, ClientError)


def _segment_metas(store: Any, dataset: str) -> list[tuple[str, dict[str, Any]]]:
    """Each segment's name and ``segment.json`` (its runs, documents, MinHash parameters): what
    planning a lookup or a compaction needs, without reading the segment's files."""
    out = []
    for name in _segment_names(store, dataset):
        with contextlib.suppress(*_missing_errors()):  # replaced since the listing: not a segment any more
            out.append((name, json.loads(store.read_bytes(f"{_segments_prefix(dataset)}/{name}/segment.json"))))
    return out


def _cache_root() -> Path:
    return Path(os.environ.get("LLMOPS_INDEX_CACHE") or Path(tempfile.gettempdir()) / "llmops-dedup-index")


def _cache_dir(store: Any, dataset: str) -> Path:
    """Where this machine keeps its copies of a remote index's segments (one folder per index)."""
    return _cache_root() / hashlib.blake2b(store.url(_segments_prefix(dataset)).encode(), digest_size=8).hexdigest()


def _prune_cache(store: Any, dataset: str, names: list[str]) -> None:
    """Drop the local copies of segments the index no longer holds (compacted or erased away); a
    reader that still has one open keeps reading it (open files outlive their names)."""
    if store.local_path(_segments_prefix(dataset)) is not None:
        return
    folder = _cache_dir(store, dataset)
    if folder.is_dir():
        for old in folder.iterdir():
            if old.name not in names and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)


def _local_segment(store: Any, dataset: str, name: str) -> _Segment:
    """A segment's files on this machine: the store's own folder, or a local copy (segments never
    change under a name, so a copy is good for as long as it exists)."""
    prefix = f"{_segments_prefix(dataset)}/{name}"
    meta = json.loads(store.read_bytes(f"{prefix}/segment.json"))
    local = store.local_path(f"{prefix}/segment.json")
    if local is not None:
        return _Segment(name, Path(local).parent, meta)
    folder = _cache_dir(store, dataset) / name
    if not (folder / "segment.json").exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
        try:
            for key in store.list(prefix + "/"):
                store.download(key, tmp / key.rsplit("/", 1)[-1])
            with contextlib.suppress(OSError):  # another reader put the same copy there first
                tmp.rename(folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return _Segment(name, folder, meta)


class HistoryIndex:
    """The runs of the partitions before ``before`` (all with ``before=None``), oldest first, and the
    segments that hold them."""

    def __init__(self, store: Any, dataset: str, runs: list[dict[str, Any]],
                 segments: list[tuple[_Segment, np.ndarray]]) -> None:
        self.store = store
        self.dataset = dataset
        self.runs = runs
        #: (segment, its run number -> the index's run number, -1 for a run not consulted)
        self.segments = segments
        self._where: dict[int, tuple[_Segment, int]] = {}
        for seg, mapping in segments:
            for local, r in enumerate(mapping.tolist()):
                if r >= 0:
                    self._where[r] = (seg, local)
        self.stats = {"blocks_read": 0, "blocks_total": 0, "keys_read": 0, "segments": len(segments)}

    @classmethod
    def open(cls, store: Any, dataset: str, *, before: str | None, horizon_days: int | None = None) -> HistoryIndex:
        """The runs of the partitions before ``before``; with ``horizon_days`` (and date partitions)
        only those of the last ``horizon_days`` days before it."""
        for attempt in range(3):
            try:
                return cls._open(store, dataset, before=before, horizon_days=horizon_days)
            except _missing_errors():  # a compaction replaced a segment between listing and opening
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def _open(cls, store: Any, dataset: str, *, before: str | None, horizon_days: int | None) -> HistoryIndex:
        since = _days_before(before, horizon_days)
        wanted = {}
        for partition, version in _pointers(store, dataset).items():
            if before is None or partition < before:
                if since is None or not _is_date(partition) or partition >= since:
                    wanted[version] = partition
        _migrate_legacy_runs(store, dataset, set(wanted))
        metas = _segment_metas(store, dataset)
        _prune_cache(store, dataset, [name for name, _ in metas])
        # the fewest segments that hold every wanted run: largest first, each run from one segment
        metas.sort(key=lambda nm: (-int(nm[1]["docs"]), -int(nm[1].get("generation", 0)), nm[0]))
        chosen: dict[str, tuple[str, dict[str, Any]]] = {}
        picked: list[tuple[str, dict[str, Any], set[str]]] = []
        for name, meta in metas:
            mine = [r["version_id"] for r in meta["runs"] if r["version_id"] in wanted and r["version_id"] not in chosen]
            if mine:
                picked.append((name, meta, set(mine)))
                for v in mine:
                    chosen[v] = (name, meta)
        runs = []
        for version, partition in sorted(wanted.items(), key=lambda vp: (vp[1], vp[0])):
            if version not in chosen:
                log.warning("dedup index: partition %s points at run %s, which is missing; skipped", partition, version)
                continue
            run = next(r for r in chosen[version][1]["runs"] if r["version_id"] == version)
            runs.append({k: run[k] for k in ("partition", "version_id", "docs", "near")})
        number = {r["version_id"]: i for i, r in enumerate(runs)}
        segments = []
        try:
            for name, _meta, held in picked:
                seg = _local_segment(store, dataset, name)
                mapping = np.asarray([number[r["version_id"]] if r["version_id"] in held else -1
                                      for r in seg.runs], dtype=np.int64)
                segments.append((seg, mapping))
        except BaseException:
            for seg, _ in segments:
                seg.close()
            raise
        return cls(store, dataset, runs, segments)

    def __len__(self) -> int:
        return len(self.runs)

    @property
    def docs(self) -> int:
        return sum(int(r["docs"]) for r in self.runs)

    def close(self) -> None:
        for seg, _ in self.segments:
            seg.close()

    def _resolve(self, seg: _Segment, mapping: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Segment documents -> (index run, document within the run); run -1 for a run not consulted."""
        local = seg.run_of(docs) if len(docs) else np.zeros(0, np.int64)
        return mapping[local], docs - seg.starts[local]

    def ids(self, r: int, docs: np.ndarray) -> dict[int, str]:
        seg, local = self._where[r]
        wanted = np.unique(np.asarray(docs, dtype=np.int64))
        wanted = wanted[(wanted >= 0) & (wanted < int(self.runs[r]["docs"]))]
        names = seg.ids(wanted + seg.starts[local])
        return {d: name for d, name in zip(wanted.tolist(), names, strict=True) if name}

    def exact(self, hi: np.ndarray, lo: np.ndarray) -> dict[int, tuple[int, int]]:
        """Query row -> (run, doc) of the earliest kept record with the same exact key."""
        out: dict[int, tuple[int, int]] = {}
        if len(hi) == 0:
            return out
        query, inverse = np.unique(hi, return_inverse=True)
        rows_of: dict[int, list[int]] = {}
        for row, u in enumerate(inverse.tolist()):
            rows_of.setdefault(u, []).append(row)
        for seg, mapping in self.segments:
            qi, pos = seg.match("exact_hi", query, self.stats)
            if len(pos) == 0:
                continue
            lo_h = np.asarray(seg.array("exact_lo")[pos])
            docs = np.asarray(seg.array("exact_doc")[pos], dtype=np.int64)
            runs, in_run = self._resolve(seg, mapping, docs)
            for u, low, r, d in zip(qi.tolist(), lo_h.tolist(), runs.tolist(), in_run.tolist(), strict=True):
                if r < 0:
                    continue
                for row in rows_of[u]:
                    if int(lo[row]) == low and (row not in out or (r, d) < out[row]):
                        out[row] = (r, d)
            seg.release()
        return out

    def near(self, bands: np.ndarray, fps: np.ndarray, *, params: dict[str, Any], need: int,
             cap: int = 64, skip: set[int] | None = None) -> dict[int, tuple[int, int]]:
        """Query row -> (run, doc) of the earliest kept record sharing an LSH band with it whose
        fingerprints agree on at least ``need`` of ``num_perm`` values (runs built with other MinHash
        parameters are not compared); at most ``cap`` candidates per row and run are verified, the
        earliest documents of the run."""
        out: dict[int, tuple[int, int]] = {}
        n, b = bands.shape
        if n == 0:
            return out
        qkeys = _signed(bands).ravel()
        qrow = np.repeat(np.arange(n, dtype=np.int64), b)
        order = np.argsort(qkeys, kind="stable")
        qs, qr = qkeys[order], qrow[order]
        query, first = np.unique(qs, return_index=True)
        per_key = np.diff(np.append(first, len(qs)))
        skip_rows = np.asarray(sorted(skip or ()), dtype=np.int64)
        pairs = []  # (query row, run, doc, segment number, segment doc)
        for s, (seg, mapping) in enumerate(self.segments):
            if seg.near != params or seg.near is None:
                continue
            ui, pos = seg.match("band_key", query, self.stats)
            if len(pos) == 0:
                continue
            docs = np.asarray(seg.array("band_doc")[pos], dtype=np.int64)
            # every query row holding that key
            rows = qr[_expand(first[ui], per_key[ui])]
            docs = np.repeat(docs, per_key[ui])
            runs, in_run = self._resolve(seg, mapping, docs)
            keep = (runs >= 0) & ~np.isin(rows, skip_rows)
            pairs.append(np.stack([rows[keep], runs[keep], in_run[keep], np.full(int(keep.sum()), s),
                                   docs[keep]], axis=1))
            seg.release()
        if not pairs:
            return out
        cand = np.unique(np.concatenate(pairs), axis=0)  # by query row, run, document
        if cap and len(cand):
            group = cand[:, 0] * (len(self.runs) + 1) + cand[:, 1]
            rank = np.arange(len(cand)) - np.searchsorted(group, group, "left")
            cand = cand[rank < cap]
        ok = np.zeros(len(cand), dtype=bool)
        for s, (seg, _) in enumerate(self.segments):
            at = np.nonzero(cand[:, 3] == s)[0]
            if len(at) == 0:
                continue
            hist = np.asarray(seg.array("fps")[cand[at, 4]])
            ok[at] = np.count_nonzero(fps[cand[at, 0]] == hist, axis=1) >= need
            seg.release()
        for row, r, d in cand[ok][:, :3].tolist():
            if row not in out:  # the first verified candidate of a row is its earliest (sorted)
                out[row] = (r, d)
        return out


# ------------------------------------------------------------------------------------ compaction
def _tier(docs: int) -> int:
    return int(math.log(max(docs, 1), FANOUT))


def _merge(store: Any, dataset: str, inputs: list[_Segment], *, live: dict[str, str] | None,
           erased: dict[str, np.ndarray] | None, name: str) -> dict[str, Any]:
    """Write one segment holding the runs of ``inputs`` (each run once; with ``live``, only runs
    their partition's pointer names, or whose partition has none); ``erased`` maps an input to a
    mask of its documents whose keys are left out (their ids blanked, their fingerprints zeroed)."""
    near = inputs[0].near
    sources: dict[str, tuple[int, int]] = {}  # version -> (input, its run number)
    for i, seg in enumerate(inputs):
        for k, run in enumerate(seg.runs):
            v = run["version_id"]
            if v in sources:
                continue
            if live is not None and run["partition"] in live and live[run["partition"]] != v:
                continue
            sources[v] = (i, k)
    order = sorted(sources, key=lambda v: (inputs[sources[v][0]].runs[sources[v][1]]["partition"], v))
    out_start, runs_meta, start = {}, [], 0
    for v in order:
        i, k = sources[v]
        run = dict(inputs[i].runs[k])
        out_start[v] = start
        runs_meta.append({**run, "start": start})
        start += int(run["docs"])
    # per input: document -> output document (-1: left out)
    doc_map = []
    for i, seg in enumerate(inputs):
        m = np.full(seg.docs, -1, dtype=np.int64)
        for k, run in enumerate(seg.runs):
            v = run["version_id"]
            if sources.get(v) == (i, k):
                a, b = int(seg.starts[k]), int(seg.starts[k + 1])
                m[a:b] = np.arange(b - a, dtype=np.int64) + out_start[v]
        if erased and seg.name in erased:
            m[erased[seg.name]] = -1
        doc_map.append(m)
    tmp = Path(tempfile.mkdtemp(prefix="llmops-history-merge-"))
    try:
        w = _Writer(tmp, near=near is not None)
        for j, v in enumerate(order):
            i, k = sources[v]
            seg = inputs[i]
            a, b = int(seg.starts[k]), int(seg.starts[k + 1])
            for c in range(a, b, 1_000_000):
                e = min(b, c + 1_000_000)
                fps = None
                if near is not None:
                    fps = np.array(seg.array("fps")[c:e])
                    if erased and seg.name in erased:
                        fps[erased[seg.name][c:e]] = 0
                if erased and seg.name in erased:
                    names = [("" if gone else name) for name, gone in
                             zip(seg.ids(np.arange(c, e)), erased[seg.name][c:e].tolist(), strict=True)]
                    w.documents(j, names, fps)
                else:
                    off = np.asarray(seg.array("id_off")[c:e + 1])
                    w.documents_raw(j, np.diff(off), bytes(seg.array("id_data")[int(off[0]):int(off[-1])]), fps)
                seg.release()
        for kind, column in (("exact", "exact_hi"), ("band", "band_key")):
            if kind == "band" and near is None:
                continue
            arrays = [seg.array(column) for seg in inputs]
            total = sum(len(a) for a in arrays)
            if total == 0:
                continue
            big = max(range(len(inputs)), key=lambda i: len(arrays[i]))
            sample = np.asarray(arrays[big][np.linspace(0, len(arrays[big]) - 1, MERGE_RANGES + 1).astype(np.int64)])
            bounds = np.unique(sample[1:-1])
            for lo_key, hi_key in zip([None, *bounds.tolist()], [*bounds.tolist(), None], strict=True):
                keys: list[np.ndarray] = []
                docs_at: list[np.ndarray] = []
                lows: list[np.ndarray] = []
                for i, seg in enumerate(inputs):
                    arr = arrays[i]
                    a = 0 if lo_key is None else int(np.searchsorted(arr, lo_key, "left"))
                    b = len(arr) if hi_key is None else int(np.searchsorted(arr, hi_key, "left"))
                    if b <= a:
                        continue
                    mapped = doc_map[i][np.asarray(seg.array(f"{kind}_doc")[a:b], dtype=np.int64)]
                    keep = mapped >= 0
                    keys.append(np.asarray(arr[a:b])[keep])
                    docs_at.append(mapped[keep])
                    if kind == "exact":
                        lows.append(np.asarray(seg.array("exact_lo")[a:b])[keep])
                    seg.release()
                if not keys:
                    continue
                key, doc = np.concatenate(keys), np.concatenate(docs_at)
                if kind == "exact":
                    lo_ = np.concatenate(lows)
                    o = np.lexsort((doc, lo_, key))
                    w.keys("exact", key[o], doc[o], lo_[o])
                else:
                    o = np.lexsort((doc, key))
                    w.keys("band", key[o], doc[o])
        generation = max(int(seg.meta.get("generation", 0)) for seg in inputs) + (1 if erased else 0)
        w.close({"runs": runs_meta, "near": near, "fp_width": int(inputs[0].meta.get("fp_width") or 0),
                 "generation": generation})
        _publish(store, dataset, name, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"name": name, "runs": len(runs_meta), "docs": start}


def _open_all(store: Any, dataset: str) -> list[_Segment]:
    out = []
    for name in _segment_names(store, dataset):
        with contextlib.suppress(*_missing_errors()):
            out.append(_local_segment(store, dataset, name))
    return out


def _delete_segment(store: Any, dataset: str, name: str) -> None:
    prefix = f"{_segments_prefix(dataset)}/{name}"
    local = store.local_path(prefix)
    if local is not None:
        with contextlib.suppress(FileNotFoundError):
            (Path(local) / "segment.json").unlink()  # the marker first: listings stop showing it
        shutil.rmtree(local, ignore_errors=True)
        return
    keys = store.list(prefix + "/")
    for key in sorted(keys, key=lambda k: k.endswith("/segment.json"), reverse=True):
        with contextlib.suppress(*_missing_errors()):
            store.delete(key)


def compact(store: Any, dataset: str, *, fanout: int = FANOUT, full: bool = False) -> list[dict[str, Any]]:
    """Merge ``fanout`` segments of one size tier (and the same MinHash parameters) into one, until no
    tier holds ``fanout`` (``full``: every segment of the same parameters into one); the merged
    segments are deleted once their successor is published. Runs no pointer names any more (a
    partition re-published since) are dropped on the way. Returns what was merged."""
    done: list[dict[str, Any]] = []
    while True:
        groups: dict[tuple[str, int], list[tuple[str, dict[str, Any]]]] = {}
        for name, meta in _segment_metas(store, dataset):
            key = (_params_key(meta.get("near")), 0 if full else _tier(int(meta["docs"])))
            groups.setdefault(key, []).append((name, meta))
        ready = sorted((t, key, group) for (key, t), group in groups.items() if len(group) >= (2 if full else fanout))
        if not ready:
            return done
        chosen = sorted(ready[0][2])[: None if full else fanout]
        versions = sorted(r["version_id"] for _, meta in chosen for r in meta["runs"])
        name = "m-" + hashlib.blake2b("\n".join(versions).encode(), digest_size=10).hexdigest()
        if name in {n for n, _ in chosen}:
            return done
        segs = [_local_segment(store, dataset, n) for n, _ in chosen]  # only the inputs are read
        try:
            result = _merge(store, dataset, segs, live=_pointers(store, dataset), erased=None, name=name)
        finally:
            for seg in segs:
                seg.close()
        log.info("dedup index: merged %d segments (%s) into %s: %d runs, %d documents", len(segs),
                 ", ".join(n for n, _ in chosen), name, result["runs"], result["docs"])
        done.append({**result, "inputs": [n for n, _ in chosen]})
        for old, _ in chosen:
            if old != name:
                _delete_segment(store, dataset, old)


# ------------------------------------------------------------------------------------ legacy runs
def _legacy_table(store: Any, key: str, tmp: Path) -> Any:
    import pyarrow.parquet as pq

    if not store.exists(key):
        return None
    return pq.read_table(store.local_path(key) or store.download(key, tmp / key.rsplit("/", 1)[-1]))


def _migrate_legacy_runs(store: Any, dataset: str, versions: set[str]) -> None:
    """Runs written in the earlier layout (``runs/<version>/*.parquet``) that a pointer names become
    segments of one run (once; the old files are left in place)."""

    base = f"{index_prefix(dataset)}/runs"
    legacy = {k.split("/")[-2] for k in store.list(base + "/") if k.endswith("/run.json")} & versions
    for version in sorted(legacy):
        if store.exists(f"{_segments_prefix(dataset)}/run-{version}/segment.json"):
            continue
        run = json.loads(store.read_bytes(f"{base}/{version}/run.json"))
        tmp = Path(tempfile.mkdtemp(prefix="llmops-history-legacy-"))
        try:
            docs_t, exact_t, bands_t = (_legacy_table(store, f"{base}/{version}/{name}", tmp)
                                        for name in ("docs.parquet", "exact.parquet", "bands.parquet"))
            n = int(run["docs"])
            ids = [""] * n
            near = run.get("near") if bands_t is not None and docs_t is not None and "fps" in docs_t.column_names else None
            fps = None
            if docs_t is not None:
                d = docs_t.column("doc").to_numpy()
                for doc, rid in zip(d.tolist(), docs_t.column("id").to_pylist(), strict=True):
                    ids[doc] = rid
                if near is not None:
                    width = docs_t.column("fps").type.list_size
                    fps = np.zeros((n, width), np.uint8)
                    fps[d] = docs_t.column("fps").combine_chunks().flatten().to_numpy().reshape(-1, width)
            out = tmp / "segment"
            w = _Writer(out, near=near is not None)
            if exact_t is not None:
                w.keys("exact", exact_t.column("hi").to_numpy(), exact_t.column("doc").to_numpy(),
                       exact_t.column("lo").to_numpy())
            if near is not None:
                w.keys("band", bands_t.column("key").to_numpy(), bands_t.column("doc").to_numpy())
            w.documents(0, ids, fps)
            w.close({"runs": [{"partition": run["partition"], "version_id": version, "docs": n, "near": near,
                               "start": 0}], "near": near, "fp_width": int(fps.shape[1]) if fps is not None else 0})
            _publish(store, dataset, f"run-{version}", out)
            log.info("dedup index: run %s converted to a segment", version)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------ erasure
def _erased_mask(seg: _Segment, ids: set[str]) -> np.ndarray:
    """Which of the segment's documents have one of ``ids``: its ids read as one Arrow string column
    (the offsets and bytes as they are on disk), matched with ``is_in``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    mask = np.zeros(seg.docs, dtype=bool)
    if seg.docs == 0:
        return mask
    off, data = np.asarray(seg.array("id_off")), np.asarray(seg.array("id_data"))
    column = pa.LargeStringArray.from_buffers(seg.docs, pa.py_buffer(off), pa.py_buffer(data))
    mask[:] = pc.is_in(column, value_set=pa.array(sorted(ids), pa.large_string())).to_numpy(zero_copy_only=False)
    seg.release()
    return mask


def erase_records(store: Any, dataset: str, ids: set[str]) -> int:
    """Remove the records ``ids`` (their keys, ids and fingerprints) from every segment of the
    dataset's index; returns how many index documents were removed. Re-running finds nothing left.
    Runs in the earlier layout are converted first, then their old files are deleted."""
    if not ids:
        return 0
    _migrate_legacy_runs(store, dataset, {k.split("/")[-2] for k in store.list(f"{index_prefix(dataset)}/runs/")
                                           if k.endswith("/run.json")})
    for key in store.list(f"{index_prefix(dataset)}/runs/"):
        store.delete(key)
    removed = 0
    for seg in _open_all(store, dataset):
        try:
            mask = _erased_mask(seg, ids)
            if not mask.any():
                continue
            tag = hashlib.blake2b("\n".join(sorted(ids)).encode(), digest_size=6).hexdigest()
            name = f"{seg.name.split('~')[0]}~e{tag}"
            _merge(store, dataset, [seg], live=None, erased={seg.name: mask}, name=name)
            removed += int(mask.sum())
            log.info("dedup index: %d record(s) erased from segment %s (now %s)", int(mask.sum()), seg.name, name)
        finally:
            seg.close()
        if mask.any():
            _delete_segment(store, dataset, seg.name)
    return removed
