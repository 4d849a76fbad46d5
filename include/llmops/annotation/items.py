"""Items to label: candidates read from a curated version, gold (known-answer) items, and the
job files that carry them between tasks."""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmops.config import expand_vars

__all__ = ["Item", "PROJECT_DIR", "item_from_row", "iter_items", "load_candidates", "load_gold", "rank_key",
           "resolve_path", "sample_items"]

PROJECT_DIR = Path(__file__).resolve().parents[3]


@dataclass(slots=True)
class Item:
    """One unit of work for a worker. ``gold`` is the known answer of a control item (never shown)."""

    id: str
    text: str
    source: str = ""
    lang: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    pii: list[str] = field(default_factory=list)
    created_at: str | None = None
    gold: str | None = None
    prelabel: str | None = None
    lf_votes: dict[str, str] = field(default_factory=dict)
    score: float | None = None  # selection score (uncertainty), when the strategy has one

    def field_value(self, name: str) -> str:
        """``source`` / ``lang`` / ``meta.<key>`` as a string (``"∅"`` when missing)."""
        if name.startswith("meta."):
            value = self.meta.get(name[5:])
        else:
            value = getattr(self, name, None)
        return "∅" if value is None or value == "" else str(value)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Item:
        return cls(**data)


def resolve_path(path: str) -> Path:
    """A configured path: ``${VAR}`` expanded, relative paths under the project folder."""
    p = Path(expand_vars(path))
    return p if p.is_absolute() else PROJECT_DIR / p


def rank_key(seed: int | str, item_id: str) -> str:
    """A seeded, stable pseudo-random order of ids (independent of input order)."""
    return hashlib.sha256(f"{seed}:{item_id}".encode()).hexdigest()


def load_candidates(store: Any, manifest: dict[str, Any], *, pool: int, seed: int,
                    exclude: Iterable[str] = ()) -> list[Item]:
    """At most ``pool`` records of a curated version, a seeded uniform sample (streamed; memory
    holds ``pool`` records). ``exclude`` drops ids that were labeled before."""
    skip = set(exclude)
    return sample_items((it for it in iter_items(store, manifest) if it.id not in skip), pool=pool, seed=seed)


def sample_items(items: Iterable[Item], *, pool: int, seed: int) -> list[Item]:
    """At most ``pool`` of ``items``, a seeded uniform sample by :func:`rank_key` (streamed: memory
    holds ``pool`` items), in rank order."""
    heap: list[tuple[str, int, Item]] = []
    for n, it in enumerate(items):
        key = rank_key(seed, it.id)
        inverted = "".join(f"{15 - int(c, 16):x}" for c in key)  # heapq is a min-heap: keep smallest keys
        if len(heap) < pool:
            heapq.heappush(heap, (inverted, n, it))
        elif inverted > heap[0][0]:
            heapq.heapreplace(heap, (inverted, n, it))
    return [it for _, _, it in sorted(heap, reverse=True)]


def item_from_row(r: dict[str, Any]) -> Item:
    """An :class:`Item` from a dataset version's row."""
    return Item(id=r["id"], text=r["text"], source=r["source"], lang=r.get("lang"),
                meta=json.loads(r.get("meta") or "{}"), pii=list(r.get("pii") or []), created_at=r.get("created_at"))


def iter_items(store: Any, manifest: dict[str, Any]) -> Iterator[Item]:
    """Every record of a dataset version as an :class:`Item` (streamed)."""
    from llmops.versions import iter_batches

    for batch in iter_batches(store, manifest):
        for row in batch.to_pylist():
            yield item_from_row(row)


def load_gold(path: str | None, labels: list[str]) -> list[Item]:
    """Gold items from a JSONL file of ``{"id", "text", "label"[, "lang"]}``; ids get a ``gold:`` prefix."""
    if not path:
        return []
    p = resolve_path(path)
    if not p.is_file():
        raise FileNotFoundError(f"gold file {p} does not exist; fix annotation.selection.gold.path or set it to null")
    out = []
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            item = Item(id=f"gold:{data['id']}", text=str(data["text"]), source="gold", lang=data.get("lang"),
                        gold=str(data["label"]))
        except (ValueError, KeyError) as exc:
            raise ValueError(f"{p}:{lineno}: a gold line needs id, text and label ({exc})") from None
        if item.gold not in labels:
            raise ValueError(f"{p}:{lineno}: gold label {item.gold!r} is not in annotation.task.labels")
        out.append(item)
    return out
