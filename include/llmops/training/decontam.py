"""Decontamination: training and annotation data never hold the evaluation suites' golden items.

A golden item counts as *in* a training row when the row is

* an **exact** duplicate of it (the same words, case and spacing aside),
* shares a run of ``ngram`` consecutive words with it (**n-gram overlap**, as the GPT-3 paper and
  lm-evaluation-harness check benchmarks against training data, with their 13 words by default;
  a golden item shorter than that is one run: found where a row holds all of it, in order), or
* a **near** duplicate: Jaccard similarity of character 5-gram shingles (the curation stage's
  near-duplicate measure) of at least ``jaccard``.

Such rows are removed before the split and reported: how many rows, by reason, and which golden
items were found (ids only, never texts), per suite. The share of a suite's golden items found in
the training data is its **contamination rate**: the training run records it (before removal,
so a report can tell what the data held) and the evaluation report states it.

Lookups go through inverted indexes over the golden items' n-grams and shingles, so a row is only
compared with the golden items it shares something with.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmops.curate.minhash import shingles

__all__ = ["GoldenIndex", "Match", "decontaminate", "golden_index", "index_for"]

_SHINGLE = 5


def _words(text: str) -> list[str]:
    return "".join(ch if ch.isalnum() or ch in "<>_" else " " for ch in text.casefold()).split()


def _grams(words: list[str], n: int) -> set[str]:
    if len(words) < n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class Match:
    """The golden item a training row contains, and how it was found."""

    suite: str
    golden_id: str
    reason: str  # exact | ngram | near
    jaccard: float


@dataclass
class GoldenIndex:
    """The golden items of some suites, indexed for :meth:`match`."""

    ngram: int | None  # None: no n-gram overlap check
    jaccard: float
    suites: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {version, items}
    items: list[tuple[str, str]] = field(default_factory=list)  # (suite, golden id)
    _exact: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    _grams: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    _short: set[int] = field(default_factory=set)  # word counts of the items shorter than ngram
    _shingles: list[set[str]] = field(default_factory=list)
    _by_shingle: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def add(self, suite: str, golden_id: str, text: str) -> None:
        i = len(self.items)
        self.items.append((suite, golden_id))
        words = _words(text)
        self._exact[" ".join(words)].append(i)
        if self.ngram:
            if 0 < len(words) < self.ngram:  # a short item is one run: found where a row holds it whole
                self._short.add(len(words))
            for gram in _grams(words, self.ngram):
                self._grams[gram].append(i)
        sh = shingles(text, kind="char", n=_SHINGLE)
        self._shingles.append(sh)
        for s in sh:
            self._by_shingle[s].append(i)

    def match(self, text: str) -> Match | None:
        """The first golden item ``text`` contains (exact, then n-gram, then near), or None."""
        words = _words(text)
        hit = self._exact.get(" ".join(words))
        if hit:
            return Match(*self.items[hit[0]], "exact", 1.0)
        grams = _grams(words, self.ngram) if self.ngram else set()
        for k in self._short:
            grams |= _grams(words, k) if len(words) > k else set()
        for gram in sorted(grams):
            hit = self._grams.get(gram)
            if hit:
                return Match(*self.items[min(hit)], "ngram", self._similarity(text, min(hit)))
        sh = shingles(text, kind="char", n=_SHINGLE)
        shared: dict[int, int] = defaultdict(int)
        for s in sh:
            for i in self._by_shingle.get(s, ()):
                shared[i] += 1
        best, score = None, 0.0
        for i, common in sorted(shared.items()):
            sim = common / (len(sh) + len(self._shingles[i]) - common)
            if sim > score:
                best, score = i, sim
        if best is not None and score >= self.jaccard:
            return Match(*self.items[best], "near", round(score, 4))
        return None

    def _similarity(self, text: str, i: int) -> float:
        sh = shingles(text, kind="char", n=_SHINGLE)
        other = self._shingles[i]
        return round(len(sh & other) / max(len(sh | other), 1), 4)


def golden_index(suites: Iterable[Any], *, ngram: int | None = None, jaccard: float = 0.8) -> GoldenIndex:
    """The index of the golden sets of ``suites`` (:class:`~llmops.evaluation.suites.Suite`); a
    golden set two suites share is indexed once, under the first suite."""
    from llmops.evaluation.golden import load_golden

    index = GoldenIndex(ngram=ngram, jaccard=jaccard)
    seen: dict[tuple[str, str], str] = {}
    for suite in suites:
        ref = (suite.golden.name, suite.golden.version)
        rows, manifest = load_golden(*ref)
        index.suites[suite.name] = {"golden": f"{ref[0]}-{ref[1]}", "sha256": manifest["sha256"], "items": len(rows)}
        if ref in seen:
            index.suites[suite.name]["same_as"] = seen[ref]
            continue
        seen[ref] = suite.name
        for row in rows:
            index.add(suite.name, str(row["id"]), str(row["text"]))
    return index


def index_for(suites: Sequence[str], suites_dir: str | None = None, *, ngram: int | None = None,
              jaccard: float = 0.8) -> GoldenIndex:
    """:func:`golden_index` of evaluation suites named (or given as YAML paths) in ``suites``,
    ``suites_dir`` searched before the built-in ones."""
    from llmops.evaluation.suites import load_suite

    return golden_index([load_suite(name, suites_dir) for name in suites], ngram=ngram, jaccard=jaccard)


def decontaminate(rows: Sequence[dict[str, Any]], index: GoldenIndex, *,
                  text_key: str = "text") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``rows`` without those that contain a golden item, and the report: rows checked and
    removed (by reason), and per suite the golden items found and the contamination rate (the
    share of its golden items found in ``rows``). The report holds ids, never texts."""
    kept: list[dict[str, Any]] = []
    removed: list[dict[str, Any]] = []
    found: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        match = index.match(str(row.get(text_key) or ""))
        if match is None:
            kept.append(row)
            continue
        found[match.suite].add(match.golden_id)
        removed.append({"id": row.get("id"), "suite": match.suite, "golden_id": match.golden_id,
                        "reason": match.reason, "jaccard": match.jaccard})
    by_reason: dict[str, int] = defaultdict(int)
    for r in removed:
        by_reason[r["reason"]] += 1
    suites = {}
    for name, info in index.suites.items():
        owner = info.get("same_as", name)
        hits = sorted(found.get(owner, ()))
        suites[name] = {**{k: v for k, v in info.items() if k != "same_as"}, "golden_items_found": len(hits),
                        "contamination_rate": round(len(hits) / info["items"], 4) if info["items"] else 0.0,
                        "golden_ids_found": hits}
    report = {"ngram": index.ngram, "jaccard": index.jaccard, "rows_checked": len(rows), "rows_removed": len(removed),
              "by_reason": dict(sorted(by_reason.items())), "suites": suites, "removed": removed}
    return kept, report
