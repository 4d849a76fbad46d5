"""Curation: normalise → quality filters → language → dedup (exact, near) → PII → dataset version.

Streaming: records flow through in batches of ``curation.batch_size``; only compact dedup state
(16-byte exact keys, MinHash band keys and signatures) grows with the input, never the texts.
Every input ends up counted exactly once: kept (data files), or in the quarantine files as
``quarantined`` (unusable input), ``filtered`` (quality / language) or ``duplicates`` (exact /
near), each with its reason. ``VersionWriter`` refuses to publish if the sum does not match.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from llmops.config import CurationConfig
from llmops.curate.filters import LanguageIdentifier, quality_reason
from llmops.curate.normalize import dedup_key, normalize_text
from llmops.records import Quarantined, Record
from llmops.versions import VersionWriter

__all__ = ["Curator", "records_from_batches", "screen"]

log = logging.getLogger(__name__)


def _reject(rec: Record, stage: str, reason: str, detail: str = "", *, raw: str | None = None) -> Quarantined:
    """A rejected record, kept whole (its original text) with the stage and reason."""
    return Quarantined(source=rec.source, location=str(rec.meta.get("location", "")), reason=reason,
                       stage=stage, id=rec.id, detail=detail, raw=rec.text if raw is None else raw)


def screen(rec: Record, cfg: CurationConfig, langid: LanguageIdentifier | None) -> tuple[str, Quarantined] | Record:
    """Normalise and filter one record (no dedup): the record, its ``text`` normalised and its
    language set, or (category, rejection) with the original text."""
    n = cfg.normalize
    original = rec.text
    if len(original) > n.max_input_chars:
        return "quarantined", _reject(rec, "normalize", "oversized",
                                      f"{len(original)} chars > normalize.max_input_chars")
    rec.text = normalize_text(original, form=n.unicode_form, strip_control=n.strip_control_chars,
                              collapse_whitespace=n.collapse_whitespace)
    reason = quality_reason(rec.text, cfg.filters)
    if reason is not None:
        return "filtered", _reject(rec, "filter", reason, raw=original)
    if langid is not None:
        lang, prob = langid.detect(rec.text)
        rec.lang = lang
        rec.meta["lang_confidence"] = round(prob, 4)
        if lang not in cfg.filters.languages:
            return "filtered", _reject(rec, "filter", "language_not_allowed", f"detected {lang} ({prob:.2f})",
                                      raw=original)
    return rec


@dataclass
class Curator:
    """Runs the curation steps over a stream of records / quarantine entries into a writer."""

    cfg: CurationConfig
    redactor: Any | None = None  # llmops.privacy.pii.PIIRedactor; None when pii.enabled is false
    progress: Callable[[dict[str, Any]], None] | None = None
    progress_every: int = 50_000
    #: llmops.privacy.subjects.SubjectKeys: when set, (subject key, record id, location) rows of the
    #: subject index are collected in ``index_rows`` (quarantined records too with ``index_quarantine``)
    subjects: Any | None = None
    index_quarantine: bool = True
    index_rows: list[tuple[str, str, str]] = field(default_factory=list, init=False)
    _langid: LanguageIdentifier | None = field(default=None, init=False)
    _exact: set[bytes] = field(default_factory=set, init=False)
    _ids: set[bytes] = field(default_factory=set, init=False)
    _near: Any = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.cfg.filters.languages:
            self._langid = LanguageIdentifier()
        near = self.cfg.dedup.near
        if near.enabled:
            from llmops.curate.minhash import NearDupIndex

            self._near = NearDupIndex(
                threshold=near.threshold, num_perm=near.num_perm, kind=near.shingle, n=near.ngram
            )

    # -- per record ------------------------------------------------------------------------------
    def _screen(self, rec: Record) -> tuple[str, Quarantined] | Record:
        """Normalise, filter and dedup one record: the record to keep, or (category, rejection)."""
        original = rec.text
        out = screen(rec, self.cfg, self._langid)
        if not isinstance(out, Record):
            return out
        if self.cfg.dedup.exact:
            digest = dedup_key(rec.text)
            if digest in self._exact:
                return "duplicates", _reject(rec, "dedup", "exact_duplicate", raw=original)
            self._exact.add(digest)
        key = hashlib.blake2b(rec.id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        if key in self._ids:  # same id, different text: ambiguous, keep it aside
            return "quarantined", _reject(rec, "collect", "duplicate_id", "another record already has this id",
                                          raw=original)
        self._ids.add(key)
        return rec

    # -- batches -----------------------------------------------------------------------------------
    def _flush(self, batch: list[Record], writer: VersionWriter) -> None:
        if not batch:
            return
        if self._near is not None:
            dup_of = self._near.check_and_add([r.id for r in batch], [r.text for r in batch])
            kept = []
            dups = []
            for rec, other in zip(batch, dup_of, strict=True):
                if other is None:
                    kept.append(rec)
                else:
                    dups.append(_reject(rec, "dedup", "near_duplicate", f"near-duplicate of {other}"))
            self._add_rejected(dups, "duplicates", writer)
            batch = kept
        if self.redactor is not None and batch:
            results = self.redactor.redact_batch([r.text for r in batch], [r.lang for r in batch])
            for rec, res in zip(batch, results, strict=True):
                rec.text = res.text
                rec.pii = sorted(res.entities)
                writer.counts.pii.update(res.entities)
                if not self.redactor.has_ner(rec.lang):
                    writer.counts.pii_without_ner[rec.lang or "unknown"] += 1
                if self.subjects is not None:
                    self.index_rows.extend((k, rec.id, "data") for k in self.subjects.for_record(res.found, rec.meta))
        elif self.subjects is not None:
            for rec in batch:
                self.index_rows.extend((k, rec.id, "data") for k in self.subjects.for_record([], rec.meta))
        writer.add_records(batch)

    def _add_rejected(self, items: list[Quarantined], category: str, writer: VersionWriter) -> None:
        """Quarantine ``items``; with a subject index, index their original text too."""
        if items and self.subjects is not None and self.index_quarantine and self.redactor is not None:
            found = self.redactor.find_batch([q.raw for q in items])
            for q, f in zip(items, found, strict=True):
                if q.id is not None:
                    self.index_rows.extend((k, q.id, "quarantine") for k in self.subjects.for_record(f, {}))
        writer.add_quarantined(items, category)

    def run(self, items: Iterable[Record | Quarantined], writer: VersionWriter) -> None:
        batch: list[Record] = []
        rejected: dict[str, list[Quarantined]] = {"quarantined": [], "filtered": [], "duplicates": []}
        size = self.cfg.batch_size
        started = time.perf_counter()
        for item in items:
            writer.counts.input += 1
            if isinstance(item, Quarantined):
                rejected["quarantined"].append(item)
            else:
                out = self._screen(item)
                if isinstance(out, Record):
                    batch.append(out)
                else:
                    rejected[out[0]].append(out[1])
            if len(batch) >= size:
                self._flush(batch, writer)
                batch = []
                for cat, items_ in rejected.items():
                    self._add_rejected(items_, cat, writer)
                    items_.clear()
            if self.progress and writer.counts.input % self.progress_every == 0:
                self._report(writer, started)
        self._flush(batch, writer)
        for cat, items_ in rejected.items():
            self._add_rejected(items_, cat, writer)
        self._report(writer, started)

    def _report(self, writer: VersionWriter, started: float) -> None:
        counts = writer.counts.as_dict()
        elapsed = time.perf_counter() - started
        counts["docs_per_s"] = round(counts["input"] / elapsed, 1) if elapsed > 0 else None
        if self.progress:
            self.progress(counts)
        log.info("curated %(input)s records: kept %(kept)s, duplicates %(duplicates)s, filtered "
                 "%(filtered)s, quarantined %(quarantined)s", counts)


def records_from_batches(batches: Iterable[Any]) -> Iterator[Record]:
    """Records of a (raw) dataset version, from its Parquet record batches."""
    for batch in batches:
        for row in batch.to_pylist():
            yield Record(
                id=row["id"], text=row["text"], source=row["source"], lang=row.get("lang"),
                created_at=row.get("created_at"), meta=json.loads(row["meta"] or "{}"),
                pii=list(row.get("pii") or []),
            )
