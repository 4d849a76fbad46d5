"""Local files (and downloaded objects) in JSON Lines, JSON, CSV, Parquet or plain text.

Parsing is streaming and defensive: each line / row is decoded on its own, so one bad line
(truncated JSON, invalid UTF-8, a list instead of an object) is quarantined with its location
while the rest of the file is read.
"""

from __future__ import annotations

import csv
import glob
import itertools
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmops.collect.base import CollectContext, Item, SourceError, register_source, to_record
from llmops.records import Quarantined

log = logging.getLogger(__name__)

SUPPORTED = (".jsonl", ".ndjson", ".json", ".csv", ".parquet", ".txt")

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def parse_file(path: Path, cfg: Any, ctx: CollectContext, display: str | None = None) -> Iterator[Item]:
    """Yield records / quarantine entries for one file, dispatching on its extension."""
    name = display or path.as_posix()
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from _jsonl(path, cfg, ctx, name)
    elif suffix == ".json":
        yield from _json(path, cfg, ctx, name)
    elif suffix == ".csv":
        yield from _csv(path, cfg, ctx, name)
    elif suffix == ".parquet":
        yield from _parquet(path, cfg, ctx, name)
    elif suffix == ".txt":
        yield from _txt(path, cfg, ctx, name)
    else:
        yield Quarantined(cfg.name, name, "unsupported_format",
                          detail=f"extension {suffix!r} is not one of {', '.join(SUPPORTED)}")


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield lineno, line


def _jsonl(path: Path, cfg: Any, ctx: CollectContext, name: str) -> Iterator[Item]:
    for lineno, line in _lines(path):
        loc = f"{name}:{lineno}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Quarantined(cfg.name, loc, "invalid_utf8", detail=str(exc),
                              raw=line.decode("utf-8", "replace")[:4000])
            continue
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Quarantined(cfg.name, loc, "malformed_json", detail=str(exc), raw=text[:4000])
            continue
        yield to_record(payload, cfg, loc, ctx)


def _json(path: Path, cfg: Any, ctx: CollectContext, name: str) -> Iterator[Item]:
    try:
        payload = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = "invalid_utf8" if isinstance(exc, UnicodeDecodeError) else "malformed_json"
        yield Quarantined(cfg.name, name, reason, detail=str(exc)[:500])
        return
    items = payload.get("items", payload.get("data")) if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        items = [payload]
    for idx, item in enumerate(items):
        yield to_record(item, cfg, f"{name}#{idx}", ctx)


def _csv(path: Path, cfg: Any, ctx: CollectContext, name: str) -> Iterator[Item]:
    # surrogateescape keeps undecodable bytes visible per row instead of failing the whole file
    with path.open("r", encoding="utf-8", errors="surrogateescape", newline="") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            loc = f"{name}:{reader.line_num}"
            if None in row:  # more fields than the header
                extra = row.pop(None)
                yield Quarantined(cfg.name, loc, "malformed_csv_row",
                                  detail=f"{len(extra)} more fields than the header",
                                  raw=json.dumps(row, ensure_ascii=False, default=str)[:4000])
                continue
            yield to_record(row, cfg, loc, ctx)


def _parquet(path: Path, cfg: Any, ctx: CollectContext, name: str) -> Iterator[Item]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # corrupt file: quarantine the file, keep going
        yield Quarantined(cfg.name, name, "unreadable_file", detail=f"{type(exc).__name__}: {exc}"[:500])
        return
    row = 0
    for batch in pf.iter_batches(batch_size=4096):
        for payload in batch.to_pylist():
            yield to_record(payload, cfg, f"{name}#{row}", ctx)
            row += 1


def _txt(path: Path, cfg: Any, ctx: CollectContext, name: str) -> Iterator[Item]:
    """One record per non-empty line; ids are derived from file and line number."""
    for lineno, line in _lines(path):
        loc = f"{name}:{lineno}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Quarantined(cfg.name, loc, "invalid_utf8", detail=str(exc),
                              raw=line.decode("utf-8", "replace")[:4000])
            continue
        yield to_record({"text": text}, _TxtView(cfg), loc, ctx)


class _TxtView:
    """The source config seen with a fixed field map: a text line has only text."""

    def __init__(self, cfg: Any) -> None:
        self.name = cfg.name
        self.meta_fields: list[str] = []
        self.field_map = type(cfg.field_map)(id=None, text="text", created_at=None)


def _glob_root(pattern: str) -> Path:
    """The folder of a path pattern before its first wildcard (the pattern's folder if it has none)."""
    parts = Path(pattern).parts
    fixed = [p for p in itertools.takewhile(lambda part: not glob.has_magic(part), parts)]
    root = Path(*fixed) if fixed else Path(".")
    return root.parent if root == Path(pattern) else root


def _stable_name(path: Path, base_dir: Path, root: Path) -> str:
    """A file's location as records keep it (and their ids and version ids hash it): relative to
    ``base_dir``, or for a file outside it relative to its pattern's folder - never an absolute
    path, which changes from one machine or checkout to the next."""
    for folder in (base_dir, root):
        try:
            return path.relative_to(folder).as_posix()
        except ValueError:
            continue
    return path.name


@register_source("files")
def files_source(cfg: Any, ctx: CollectContext) -> Iterator[Item]:
    matched: dict[Path, Path] = {}  # file -> the folder its location is given relative to
    for pattern in cfg.paths:
        pat = ctx.substitute(pattern)
        if not Path(pat).is_absolute():
            pat = str(ctx.base_dir / pat)
        for p in glob.glob(pat, recursive=True):
            if Path(p).is_file():
                matched.setdefault(Path(p), _glob_root(pat))
    files = sorted(matched)
    if not files:
        msg = f"source {cfg.name!r}: no file matches {cfg.paths} (partition={ctx.partition!r})"
        if cfg.required:
            raise SourceError(msg)
        log.warning(msg)
    for path in files:
        yield from parse_file(path, cfg, ctx, _stable_name(path, ctx.base_dir, matched[path]))
