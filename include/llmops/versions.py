"""Immutable, content-addressed dataset versions.

Layout in the object store::

    datasets/<dataset>/<stage>/versions/<version_id>/manifest.json
                                                    data/part-00000.parquet ...
                                                    quarantine/part-00000.parquet ...
    datasets/<dataset>/<stage>/partitions/<partition>.json   -> {"version_id": ...}

A version's id is a hash of its content (data and quarantine file hashes, schema, parents,
config hash and counts) – not of when or by whom it was produced – so re-running a partition on
the same input and config yields the same id and writes nothing new. Files are staged locally and
published with the manifest last; the partition pointer is replaced afterwards, so a re-run of a
partition replaces that partition's version without duplicating anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmops.records import Quarantined, Record, quarantine_schema, record_schema
from llmops.storage import ObjectStore

__all__ = [
    "Counts",
    "CountsMismatchError",
    "VersionWriter",
    "iter_batches",
    "latest_for_partition",
    "local_data_files",
    "read_manifest",
    "version_prefix",
]

FORMAT_VERSION = 1


class CountsMismatchError(RuntimeError):
    """``input != kept + duplicates + filtered + quarantined`` – a record was lost or double counted."""


@dataclass
class Counts:
    input: int = 0
    kept: int = 0
    duplicates: Counter[str] = field(default_factory=Counter)
    filtered: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)
    pii: Counter[str] = field(default_factory=Counter)  # entity type -> occurrences redacted
    pii_records: int = 0
    #: detected language -> records redacted without a NER pipeline trained for that language
    #: (patterns, and names only where every word is capitalised)
    pii_without_ner: Counter[str] = field(default_factory=Counter)

    def check(self) -> None:
        total = self.kept + sum(self.duplicates.values()) + sum(self.filtered.values())
        total += sum(self.quarantined.values())
        if total != self.input:
            raise CountsMismatchError(
                f"input={self.input} but kept+duplicates+filtered+quarantined={total}: {self.as_dict()}"
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "kept": self.kept,
            "duplicates": sum(self.duplicates.values()),
            "filtered": sum(self.filtered.values()),
            "quarantined": sum(self.quarantined.values()),
            "by_reason": {
                "duplicates": dict(sorted(self.duplicates.items())),
                "filtered": dict(sorted(self.filtered.items())),
                "quarantined": dict(sorted(self.quarantined.items())),
            },
        }


def version_prefix(dataset: str, stage: str, version_id: str) -> str:
    return f"datasets/{dataset}/{stage}/versions/{version_id}"


def partition_key(dataset: str, stage: str, partition: str) -> str:
    safe = partition.replace("/", "_").replace(":", "-")
    return f"datasets/{dataset}/{stage}/partitions/{safe}.json"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _RotatingParquet:
    """Writes rows to ``part-NNNNN.parquet`` files of at most ``rows_per_file`` rows and, with
    ``bytes_per_file``, about that many UTF-8 bytes of ``text`` (a file ends with the row that
    reaches it; one longer row still gets a file)."""

    def __init__(self, folder: Path, schema: Any, rows_per_file: int, bytes_per_file: int | None = None) -> None:
        self.folder = folder
        self.schema = schema
        self.rows_per_file = rows_per_file
        self.bytes_per_file = bytes_per_file
        self.files: list[tuple[Path, int]] = []
        self._writer: Any = None
        self._rows_in_file = 0
        self._bytes_in_file = 0

    def _full(self) -> bool:
        return self._rows_in_file >= self.rows_per_file or (
            self.bytes_per_file is not None and self._bytes_in_file >= self.bytes_per_file)

    def _take(self, rows: list[dict[str, Any]], start: int) -> int:
        """How many of ``rows[start:]`` go into the open file."""
        take = min(len(rows) - start, self.rows_per_file - self._rows_in_file)
        if self.bytes_per_file is None:
            return take
        used = self._bytes_in_file
        for n in range(take):
            used += len((rows[start + n].get("text") or "").encode("utf-8", "surrogatepass"))
            if used >= self.bytes_per_file:
                take = n + 1
                break
        self._bytes_in_file = used
        return take

    def _open(self) -> None:
        import pyarrow.parquet as pq

        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"part-{len(self.files):05d}.parquet"
        self._writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self.files.append((path, 0))
        self._rows_in_file = 0
        self._bytes_in_file = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa

        start = 0
        while start < len(rows):
            if self._writer is None or self._full():
                self.close()
                self._open()
            take = self._take(rows, start)
            table = pa.Table.from_pylist(rows[start : start + take], schema=self.schema)
            self._writer.write_table(table)
            self._rows_in_file += take
            path, n = self.files[-1]
            self.files[-1] = (path, n + take)
            start += take

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def finish(self) -> list[tuple[Path, int]]:
        if not self.files:  # always leave one (empty) file so readers see the schema
            self._open()
        self.close()
        return self.files


class VersionWriter:
    """Streams records and quarantine entries into a staged version, then publishes it."""

    def __init__(
        self,
        dataset: str,
        stage: str,
        *,
        parents: Iterable[str] = (),
        producer: dict[str, Any] | None = None,
        config_hash: str = "",
        rows_per_file: int = 200_000,
        bytes_per_file: int | None = None,
        extra: dict[str, Any] | None = None,
        schema: Any | None = None,
    ) -> None:
        """``schema`` extends the record schema for stages that add columns (labels); rows of such
        a version are written with :meth:`add_rows`. ``bytes_per_file`` bounds the text bytes of a
        data file too (a raw version's files are the shards its curation is split into)."""
        self.dataset = dataset
        self.stage = stage
        self.parents = sorted(set(parents))
        self.producer = producer or {"kind": "library"}
        self.config_hash = config_hash
        self.extra = extra or {}
        self.counts = Counts()
        self._tmp = Path(tempfile.mkdtemp(prefix="llmops-version-"))
        self.schema = schema if schema is not None else record_schema()
        self._data = _RotatingParquet(self._tmp / "data", self.schema, rows_per_file, bytes_per_file)
        self._quarantine = _RotatingParquet(self._tmp / "quarantine", quarantine_schema(), rows_per_file)
        self.validations: list[dict[str, Any]] = []

    # -- streaming -----------------------------------------------------------------------------
    def add_records(self, records: list[Record]) -> None:
        if not records:
            return
        self.counts.pii_records += sum(1 for rec in records if rec.pii)
        self.counts.kept += len(records)
        self._data.write([r.to_row() for r in records])

    def add_rows(self, rows: list[dict[str, Any]]) -> None:
        """Add rows already in the version's (extended) schema, e.g. labeled records."""
        if not rows:
            return
        self.counts.pii_records += sum(1 for row in rows if row.get("pii"))
        self.counts.kept += len(rows)
        self._data.write(rows)

    def add_file(self, relpath: str, data: bytes) -> None:
        """Publish an extra file with the version (an export); it is not part of the content id."""
        parts = Path(relpath).parts
        if not parts or Path(relpath).is_absolute() or ".." in parts or parts[0] in {"data", "quarantine"} \
                or relpath == "manifest.json":
            raise ValueError(f"cannot add {relpath!r}: use a relative path outside data/ and quarantine/")
        target = self._tmp / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def add_rejected(self, items: list[tuple[str, Quarantined]]) -> None:
        """Like :meth:`add_quarantined` for entries of mixed categories, kept in the given order."""
        if not items:
            return
        for category, item in items:
            getattr(self.counts, category)[item.reason] += 1
        self._quarantine.write([q.to_row() for _, q in items])

    def add_quarantined(self, items: list[Quarantined], category: str = "quarantined") -> None:
        """Keep rejected inputs beside the version. ``category`` is the manifest counter they count
        under: ``quarantined`` (unusable input), ``filtered`` (quality/language) or ``duplicates``."""
        if not items:
            return
        counter: Counter[str] = getattr(self.counts, category)
        for item in items:
            counter[item.reason] += 1
        self._quarantine.write([q.to_row() for q in items])

    # -- quality gates -------------------------------------------------------------------------
    def staged_frames(self) -> Iterator[Any]:
        """The rows staged so far, one pandas DataFrame per data file (for a quality gate: memory
        stays bounded by ``rows_per_file``); one empty frame when nothing is staged."""
        import pyarrow.parquet as pq

        self._data.close()
        if not self._data.files:
            yield self.schema.empty_table().to_pandas()
        for path, _ in self._data.files:
            yield pq.read_table(path).to_pandas()

    def move_to_quarantine(self, row_reasons: dict[int, str], stage: str = "gate") -> int:
        """Move staged rows (positions over the whole version) to the quarantine with their reasons."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._data.close()
        moved: list[Quarantined] = []
        offset = 0
        files = []
        for path, n in self._data.files:
            start, offset = offset, offset + n
            local = sorted(i - start for i in row_reasons if start <= i < start + n)
            if local:
                table = pq.read_table(path)
                keep = [True] * n
                for i in local:
                    keep[i] = False
                mask = pa.array(keep)
                for i, row in zip(local, table.filter(pa.compute.invert(mask)).to_pylist(), strict=True):
                    meta = json.loads(row["meta"] or "{}")
                    moved.append(Quarantined(source=row["source"], location=str(meta.get("location", "")),
                                             reason=row_reasons[i + start], stage=stage, id=row["id"],
                                             detail="failed a quality gate", raw=row["text"]))
                    if row.get("pii"):
                        self.counts.pii_records -= 1
                table = table.filter(mask)
                pq.write_table(table, path, compression="zstd")
                n = table.num_rows
            files.append((path, n))
        self._data.files = files
        self.counts.kept -= len(moved)
        self.add_quarantined(moved)
        return len(moved)

    def add_validation(self, entry: dict[str, Any], docs_dir: Path | None = None) -> None:
        """Record a gate result in the manifest; its Data Docs are published with the version."""
        if docs_dir is not None and docs_dir.exists():
            target = self._tmp / "docs" / entry["suite"]
            shutil.copytree(docs_dir, target, dirs_exist_ok=True)
            entry = {**entry, "data_docs": f"docs/{entry['suite']}/index.html"}
        self.validations.append(entry)

    # -- publishing ----------------------------------------------------------------------------
    def finish(self, store: ObjectStore, *, partition: str | None = None) -> dict[str, Any]:
        """Validate counts, compute the content id, publish (idempotent) and return the manifest."""
        manifest = self._seal(partition)
        version_id = manifest["id"]
        prefix = version_prefix(self.dataset, self.stage, version_id)
        try:
            store.publish_dir(self._tmp, prefix, last="manifest.json")
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)
        published = read_manifest(store, self.dataset, self.stage, version_id)
        if partition is not None:
            pointer = {"version_id": version_id, "partition": partition, "producer": self.producer}
            store.write_bytes(
                partition_key(self.dataset, self.stage, partition),
                json.dumps(pointer, indent=2, sort_keys=True).encode(),
            )
        return published

    def finish_to_dir(self, out_dir: Path) -> dict[str, Any]:
        """Publish the version as the folder ``out_dir`` itself (``llmops curate --out DIR``).

        An existing version there is replaced atomically (renamed aside, then removed); a folder
        holding anything else is refused rather than overwritten.
        """
        out_dir = Path(out_dir).resolve()
        if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "manifest.json").exists():
            self.abort()
            raise FileExistsError(f"{out_dir} is not empty and holds no dataset version; choose another --out")
        manifest = self._seal(None)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
        old = out_dir.parent / f".{out_dir.name}.old-{manifest['content_sha256'][:8]}"
        try:
            shutil.copytree(self._tmp, staging, dirs_exist_ok=True)
            if out_dir.exists():
                os.rename(out_dir, old)
            os.rename(staging, out_dir)
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
        return manifest

    def _seal(self, partition: str | None) -> dict[str, Any]:
        """Close the files, check the counts and write ``manifest.json`` into the staging folder."""
        try:
            self.counts.check()
        except CountsMismatchError:
            self.abort()
            raise
        data_files = self._data.finish()
        q_files = self._quarantine.finish()

        def describe(files: list[tuple[Path, int]]) -> list[dict[str, Any]]:
            return [
                {
                    "path": p.relative_to(self._tmp).as_posix(),
                    "sha256": _sha256_file(p),
                    "rows": n,
                    "bytes": p.stat().st_size,
                }
                for p, n in files
            ]

        files = describe(data_files)
        quarantine = describe(q_files)
        schema = [{"name": f.name, "type": str(f.type)} for f in self.schema]
        counts = self.counts.as_dict()
        identity = {
            "format_version": FORMAT_VERSION,
            "dataset": self.dataset,
            "stage": self.stage,
            "parents": self.parents,
            "config_hash": self.config_hash,
            "schema": schema,
            "files": [(f["path"], f["sha256"]) for f in files],
            "quarantine_files": [(f["path"], f["sha256"]) for f in quarantine],
            "counts": counts,
        }
        content = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        version_id = f"{self.stage}-{content[:16]}"
        manifest = {
            "id": version_id,
            "content_sha256": content,
            "format_version": FORMAT_VERSION,
            "dataset": self.dataset,
            "stage": self.stage,
            "parents": self.parents,
            "producer": self.producer,
            "partition": partition,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "config_hash": self.config_hash,
            "schema": schema,
            "files": files,
            "quarantine_files": quarantine,
            "counts": counts,
            "pii": {"entities": dict(sorted(self.counts.pii.items())), "records": self.counts.pii_records,
                    **({"without_ner": dict(sorted(self.counts.pii_without_ner.items()))}
                       if self.counts.pii_without_ner else {})},
            "validations": self.validations,
            **self.extra,
        }
        (self._tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        return manifest

    def abort(self) -> None:
        self._data.close()
        self._quarantine.close()
        shutil.rmtree(self._tmp, ignore_errors=True)


# --------------------------------------------------------------------------- reading
def read_manifest(store: ObjectStore, dataset: str, stage: str, version_id: str) -> dict[str, Any]:
    return json.loads(store.read_bytes(f"{version_prefix(dataset, stage, version_id)}/manifest.json"))


def latest_for_partition(store: ObjectStore, dataset: str, stage: str, partition: str) -> str | None:
    key = partition_key(dataset, stage, partition)
    if not store.exists(key):
        return None
    return str(json.loads(store.read_bytes(key))["version_id"])


def latest_versions(store: ObjectStore, dataset: str, stage: str) -> dict[str, str]:
    """``{partition: newest version id}`` of every partition of a stage, sorted by partition."""
    prefix = f"datasets/{dataset}/{stage}/partitions/"
    out = {}
    for key in store.list(prefix):
        if key.endswith(".json"):
            pointer = json.loads(store.read_bytes(key))
            out[key[len(prefix):-len(".json")]] = str(pointer["version_id"])
    return dict(sorted(out.items()))


def local_data_files(
    store: ObjectStore, manifest: dict[str, Any], *, which: str = "files", cache_dir: Path | None = None,
    only: int | None = None,
) -> list[Path]:
    """Local paths of a version's Parquet files (downloaded to ``cache_dir`` for remote stores);
    with ``only``, just that file (one shard of a raw version)."""
    purged = (manifest.get("retention") or {}).get("data_purged_at")
    if purged:
        raise FileNotFoundError(f"{manifest['stage']} version {manifest['id']} has no data any more: its files were "
                                f"removed on {purged} by the retention policy ({manifest['retention'].get('policy')})")
    prefix = version_prefix(manifest["dataset"], manifest["stage"], manifest["id"])
    out = []
    for entry in manifest[which] if only is None else [manifest[which][only]]:
        key = f"{prefix}/{entry['path']}"
        local = store.local_path(key)
        if local is None:
            base = cache_dir or Path(tempfile.gettempdir()) / "llmops-cache"
            local = base / key
            if not local.exists() or _sha256_file(local) != entry["sha256"]:
                store.download(key, local)
        out.append(local)
    return out


def iter_batches(store: ObjectStore, manifest: dict[str, Any], *, which: str = "files") -> Iterator[Any]:
    """Stream a version's rows as pyarrow RecordBatches."""
    import pyarrow.parquet as pq

    for path in local_data_files(store, manifest, which=which):
        yield from pq.ParquetFile(path).iter_batches()
