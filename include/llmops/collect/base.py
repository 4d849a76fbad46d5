"""What every source shares: the registry, the run context and raw-item → record conversion."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmops.records import Quarantined, Record, stable_id

__all__ = ["SOURCES", "CollectContext", "SourceError", "Item", "register_source", "to_record"]

log = logging.getLogger(__name__)

# undecodable bytes read with errors="surrogateescape" (CSV) show up as lone surrogates
_SURROGATES = re.compile("[\udc80-\udcff]")

Item = Record | Quarantined
SourceFn = Callable[[Any, "CollectContext"], Iterator[Item]]

#: kind -> function(source_config, context) yielding records or quarantine entries.
SOURCES: dict[str, SourceFn] = {}


def register_source(kind: str) -> Callable[[SourceFn], SourceFn]:
    """Register a source implementation under ``kind`` (the ``kind:`` value in config)."""

    def deco(fn: SourceFn) -> SourceFn:
        SOURCES[kind] = fn
        return fn

    return deco


class SourceError(RuntimeError):
    """A whole source failed (unreachable API, missing required files): the task should retry."""


@dataclass
class CollectContext:
    partition: str | None = None
    base_dir: Path = field(default_factory=Path.cwd)
    max_input_chars: int = 50_000
    secret_resolver: Callable[[str], str] | None = None
    s3_client_factory: Callable[[str | None, str | None], Any] | None = None

    def substitute(self, template: str) -> str:
        """Expand ``${VAR}`` from the environment and ``{partition}`` / ``{ds}`` from the run."""
        from llmops.config import expand_vars

        out = expand_vars(template)
        return out.replace("{partition}", self.partition or "").replace("{ds}", self.partition or "")


def _iso(value: Any) -> str | None:
    """Normalise a timestamp to ISO-8601 UTC; None when it cannot be parsed."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        dt = datetime.fromtimestamp(float(value), tz=UTC)
    else:
        text = str(value).strip().replace("Z", "+00:00")
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat()


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def raw_repr(payload: Any, limit: int = 4000) -> str:
    if isinstance(payload, str):
        return payload[:limit]
    try:
        return json.dumps(payload, ensure_ascii=False, default=str)[:limit]
    except (TypeError, ValueError):
        return repr(payload)[:limit]


def to_record(payload: Any, cfg: Any, location: str, ctx: CollectContext) -> Item:
    """Turn one parsed input object into a :class:`Record`, or quarantine it with a reason."""
    fm = cfg.field_map
    if not isinstance(payload, dict):
        return Quarantined(cfg.name, location, "not_an_object", raw=raw_repr(payload),
                           detail=f"expected an object, got {type(payload).__name__}")
    raw_id = payload.get(fm.id) if fm.id else None
    rid = str(raw_id) if raw_id not in (None, "") else stable_id(cfg.name, location)

    def bad(reason: str, detail: str) -> Quarantined:
        return Quarantined(cfg.name, location, reason, id=rid, detail=detail, raw=raw_repr(payload))

    if fm.text not in payload:
        return bad("missing_text", f"field {fm.text!r} is absent")
    text = payload[fm.text]
    if text is None:
        return bad("null_text", f"field {fm.text!r} is null")
    if not isinstance(text, str):
        return bad("non_string_text", f"field {fm.text!r} is {type(text).__name__}")
    if _SURROGATES.search(text):
        return bad("invalid_utf8", "text contains bytes that are not valid UTF-8")
    if not text.strip():
        return bad("empty_text", f"field {fm.text!r} is empty")
    if len(text) > ctx.max_input_chars:
        return Quarantined(cfg.name, location, "oversized", id=rid,
                           detail=f"{len(text)} chars > normalize.max_input_chars={ctx.max_input_chars}",
                           raw=text[:4000])
    meta: dict[str, Any] = {}
    raw_created = payload.get(fm.created_at) if fm.created_at else None
    created = _iso(raw_created)
    if raw_created not in (None, "") and created is None:
        meta["created_at_raw"] = str(raw_created)
    if fm.lang and payload.get(fm.lang):
        meta["lang_hint"] = str(payload[fm.lang])
    for name in cfg.meta_fields:
        if name in payload:
            meta[name] = _jsonable(payload[name])
    meta["location"] = location
    return Record(id=rid, text=text, source=cfg.name, created_at=created, meta=meta)
