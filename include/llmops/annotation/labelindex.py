"""Labels by content: every label bought from the crowd, keyed by what was labeled, so that no item
is paid for twice.

An item's key is a hash of its normalised text (case, Unicode form and whitespace folded, as the
exact-duplicate key of curation) and of the task definition (``annotation.task.name`` and
``version``): the same message in a re-curated version, a reprocessed day or another partition has
the same key; another task, or a new version of the task, has another.

The index is one JSON Lines file per published job, ``annotations/<dataset>/label_index/<task>@<version>/<job>.jsonl``,
created once (a retried publish creates nothing) and never rewritten except by erasure, whose store
scrub drops the lines of erased records by their ``record_id``. Lines hold keys, labels and
provenance (job, labeled version, votes, agreement), never text. When a key was labeled by several
jobs, the newest publication wins.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from llmops.curate.normalize import dedup_key

__all__ = ["LabelEntry", "index_prefix", "item_key", "label_set_hash", "load_index", "record_job", "relabel_reason",
           "task_ref"]


def task_ref(task: Any) -> str:
    """``<name>@<version>`` of an ``annotation.task`` config: the namespace labels are kept in."""
    return f"{task.name}@{task.version}"


def item_key(text: str, ref: str) -> str:
    """The content key of an item for task ``ref``: 32 hex digits."""
    return hashlib.blake2b(ref.encode() + b"\x00" + dedup_key(text), digest_size=16).hexdigest()


def label_set_hash(labels: Sequence[str]) -> str:
    return hashlib.sha256("\x00".join(sorted(labels)).encode()).hexdigest()[:12]


def index_prefix(dataset: str, ref: str) -> str:
    return f"annotations/{dataset}/label_index/{ref}/"


@dataclass(slots=True)
class LabelEntry:
    """One bought label of one item (no text)."""

    key: str
    record_id: str
    label: str
    label_confidence: float
    agreement: float
    n_votes: int
    votes: dict[str, str]
    method: str
    job_id: str
    labeled_version: str
    label_set: str
    published_at: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabelEntry:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def record_job(store: Any, dataset: str, ref: str, job_id: str, entries: Iterable[LabelEntry]) -> bool:
    """Add the labels of one published job (atomic create: a second call for the job does nothing)."""
    body = "".join(json.dumps(e.to_json(), sort_keys=True) + "\n" for e in sorted(entries, key=lambda e: e.key))
    return bool(store.create_bytes(f"{index_prefix(dataset, ref)}{job_id}.jsonl", body.encode()))


def load_index(store: Any, dataset: str, ref: str) -> dict[str, LabelEntry]:
    """Key -> the newest label of that key for task ``ref`` (ties broken by job id)."""
    entries: list[LabelEntry] = []
    for name in store.list(index_prefix(dataset, ref)):
        if not name.endswith(".jsonl"):
            continue
        for line in store.read_bytes(name).decode("utf-8").splitlines():
            if line.strip():
                entries.append(LabelEntry.from_json(json.loads(line)))
    out: dict[str, LabelEntry] = {}
    for e in sorted(entries, key=lambda e: (e.published_at, e.job_id)):
        out[e.key] = e
    return out


def relabel_reason(entry: LabelEntry, labels: Sequence[str], relabel: Any) -> str | None:
    """Why an item labeled before is bought again under the ``annotation.relabel`` policy (None: it is not)."""
    if entry.label not in labels:
        return "label_not_in_label_set"
    if relabel.label_set_changed and entry.label_set != label_set_hash(labels):
        return "label_set_changed"
    if relabel.below_agreement is not None and entry.agreement < relabel.below_agreement:
        return "low_agreement"
    return None
