"""The subject index: which records relate to which data subject, without the identifiers.

A *subject key* is ``ENTITY:<hex HMAC-SHA256>`` of a canonical identifier (an e-mail address, a
phone number, a value of a configured subject field such as ``customer_id``), keyed with the
configured secret. The same key makes the pseudonyms redaction writes (``<EMAIL_ADDRESS_1a2b…>``
is the first 12 hex digits), so an erasure request may name a subject by a raw identifier, by a
pseudonym found in the data, or by the key itself.

Layout: ``privacy/subject_index/<dataset>/<stage>/<version_id>.parquet`` with the columns
``subject``, ``record_id`` and ``location`` (``data`` or ``quarantine``), written beside each
curated version, in the same store (and with the same encryption) as the data.
"""

from __future__ import annotations

import io
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.privacy.pii import subject_digest

__all__ = ["SubjectKeys", "SubjectQuery", "index_prefix", "read_index", "subject_keys", "write_index"]

_PSEUDONYM = re.compile(r"^<([A-Z][A-Z0-9_]*?)_([0-9a-f]{6,64})>$")
_KEY = re.compile(r"^([A-Z][A-Za-z0-9_.]*):([0-9a-f]{64})$")


def index_prefix(dataset: str) -> str:
    return f"privacy/subject_index/{dataset}"


@dataclass
class SubjectQuery:
    """What an erasure request names, resolved: exact keys, key prefixes (from pseudonyms) and the
    raw identifiers (searched for in unredacted text too). ``raw`` never leaves the process."""

    keys: set[str] = field(default_factory=set)
    prefixes: set[str] = field(default_factory=set)
    raw: list[str] = field(default_factory=list)

    def matches(self, key: str) -> bool:
        return key in self.keys or any(key.startswith(p) for p in self.prefixes)

    @property
    def count(self) -> int:
        return len(self.keys) + len(self.prefixes) + len(self.raw)


class SubjectKeys:
    """Computes subject keys with the index key."""

    def __init__(self, key: bytes, entities: Iterable[str], fields: Iterable[str] = ()) -> None:
        if not key:
            raise ValueError("the subject index key is empty")
        self._key = key
        self.entities = sorted(set(entities))
        self.fields = sorted(set(fields))

    def key(self, entity: str, value: str) -> str:
        return f"{entity}:{subject_digest(self._key, entity, value)}"

    def for_record(self, found: Iterable[tuple[str, str]], meta: dict[str, Any]) -> set[str]:
        keys = {self.key(entity, value) for entity, value in found if entity in self.entities and value.strip()}
        for name in self.fields:
            value = meta.get(name)
            if value not in (None, ""):
                keys.add(self.key(f"FIELD.{name}", str(value)))
        return keys

    def query(self, subjects: Iterable[str]) -> SubjectQuery:
        """Resolve what a request names: ``<ENTITY_hex>`` pseudonyms, ``ENTITY:hex`` keys, or raw
        identifiers (hashed as every configured entity type and subject field)."""
        q = SubjectQuery()
        for item in subjects:
            item = str(item).strip()
            if not item:
                continue
            if m := _PSEUDONYM.match(item):
                q.prefixes.add(f"{m.group(1)}:{m.group(2)}")
            elif _KEY.match(item):
                q.keys.add(item)
            else:
                q.raw.append(item)
                q.keys.update(self.key(e, item) for e in self.entities)
                q.keys.update(self.key(f"FIELD.{f}", item) for f in self.fields)
        return q


def _key_reference(cfg: Any) -> str | None:
    from llmops.config import expand_vars

    ref = cfg.privacy.subject_index.key or cfg.curation.pii.pseudonym_key
    return expand_vars(ref) if ref else None


def subject_keys(cfg: Any, *, resolver: Any = None) -> SubjectKeys | None:
    """The configured :class:`SubjectKeys`, or None when the index is off. A missing ``file:`` key
    is created when ``privacy.subject_index.create_key`` allows it (the local default)."""
    sic = cfg.privacy.subject_index
    if not sic.enabled:
        return None
    ref = _key_reference(cfg)
    if ref is None:
        return None
    if ref.startswith("file:") and sic.create_key:
        path = Path(ref[5:])
        if not path.exists():
            _create_key_file(path)
    if resolver is None:
        from llmops.secrets import resolve_secret as resolver
    return SubjectKeys(resolver(ref).encode(), sic.entities, sic.fields)


def _create_key_file(path: Path) -> None:
    """A new random key at ``path`` (mode 0600), atomically: concurrent tasks all read the one that won."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)  # fails if another process created the key first: theirs is kept
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema([pa.field("subject", pa.string()), pa.field("record_id", pa.string()),
                      pa.field("location", pa.string())])


def index_bytes(rows: Iterable[tuple[str, str, str]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = sorted(set(rows))
    table = pa.table({"subject": [r[0] for r in rows], "record_id": [r[1] for r in rows],
                      "location": [r[2] for r in rows]}, schema=_schema())
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def write_index(store: Any, dataset: str, stage: str, version_id: str, rows: Iterable[tuple[str, str, str]]) -> str:
    """Write the index of one version (``(subject, record_id, location)`` rows); returns its key."""
    key = f"{index_prefix(dataset)}/{stage}/{version_id}.parquet"
    store.write_bytes(key, index_bytes(rows))
    return key


def read_index(store: Any, dataset: str) -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    """``(key, rows)`` of every index file of ``dataset``."""
    import pyarrow.parquet as pq

    for key in store.list(index_prefix(dataset)):
        if key.endswith(".parquet"):
            table = pq.read_table(io.BytesIO(store.read_bytes(key)))
            yield key, list(zip(*(table.column(c).to_pylist() for c in ("subject", "record_id", "location")),
                                strict=True))
