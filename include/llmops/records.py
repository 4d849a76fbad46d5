"""The canonical record and the quarantine entry, with their Parquet schemas."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "QUARANTINE_FIELDS",
    "RECORD_FIELDS",
    "Quarantined",
    "Record",
    "quarantine_schema",
    "record_schema",
    "stable_id",
]

RECORD_FIELDS = ("id", "text", "source", "lang", "created_at", "meta", "pii")
QUARANTINE_FIELDS = ("id", "source", "location", "stage", "reason", "detail", "raw")


@dataclass(slots=True)
class Record:
    """One text record. ``meta`` is stored as a JSON object string in Parquet; ``pii`` lists the
    entity types that were found and redacted (types only, never values)."""

    id: str
    text: str
    source: str
    lang: str | None = None
    created_at: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    pii: list[str] = field(default_factory=list)

    def to_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "source": self.source,
            "lang": self.lang,
            "created_at": self.created_at,
            "meta": json.dumps(self.meta, sort_keys=True, ensure_ascii=False, default=str),
            "pii": list(self.pii),
        }


@dataclass(slots=True)
class Quarantined:
    """An input record that could not be processed, kept with the reason."""

    source: str
    location: str
    reason: str
    stage: str = "collect"
    id: str | None = None
    detail: str = ""
    raw: str = ""

    def to_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "location": self.location,
            "stage": self.stage,
            "reason": self.reason,
            "detail": self.detail[:2000],
            "raw": self.raw,
        }


def stable_id(*parts: str) -> str:
    """Deterministic id for inputs that carry none (a text line): hash of source and location."""
    return hashlib.sha256(":".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:24]


def record_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("lang", pa.string()),
            pa.field("created_at", pa.string()),
            pa.field("meta", pa.string()),
            pa.field("pii", pa.list_(pa.string())),
        ]
    )


def quarantine_schema() -> Any:
    import pyarrow as pa

    return pa.schema([pa.field(name, pa.string()) for name in QUARANTINE_FIELDS])
