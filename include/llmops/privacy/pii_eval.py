"""How well the configured redactor works on a labelled sample of the user's own text.

The sample is JSONL, one record per line: ``{"text": ..., "spans": [{"start": 8, "end": 18,
"entity": "PERSON"}, ...], "lang": "es"}`` (character offsets, end exclusive; ``lang`` optional,
``entity_type`` / ``start_position`` / ``end_position`` as presidio-evaluator writes them are
accepted too). Per entity type:

* **recall**: the share of labelled spans that redaction would remove *entirely*: every letter and
  digit of the span lies inside some finding, of whatever type (a phone number redacted as an SSN
  is still gone; "Jane" left of "Jane Roe" is a leak);
* **precision**: the share of the redactor's findings of that type that touch a labelled span;
* **F2**: recall weighted four times precision, ``5PR / (4P + R)``: a leak costs more than a
  redacted common word.

The result holds counts and file digests, never text, so it can be kept in the store
(``privacy/pii_eval/latest.json``) where ``llmops pia`` reads it.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["LabeledSample", "check_minimums", "evaluate", "load_labeled", "read_latest", "record"]

LATEST = "privacy/pii_eval/latest.json"

#: entity names of other tools and corpora, mapped to Presidio's
ALIASES = {"PER": "PERSON", "NAME": "PERSON", "PHONE": "PHONE_NUMBER", "EMAIL": "EMAIL_ADDRESS",
           "IBAN": "IBAN_CODE", "IP": "IP_ADDRESS", "SSN": "US_SSN", "CARD": "CREDIT_CARD", "LOC": "LOCATION",
           "GPE": "LOCATION"}


@dataclass(slots=True)
class LabeledSample:
    text: str
    spans: list[tuple[int, int, str]]
    lang: str | None = None


def load_labeled(path: str | Path) -> tuple[list[LabeledSample], str]:
    """The samples of a JSONL file and its sha256. A malformed line raises ``ValueError`` naming the
    line and the fix."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: not found (a JSONL file with `text` and character `spans`)")
    raw = p.read_bytes()
    out = []
    for n, line in enumerate(raw.decode("utf-8", errors="strict").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p}:{n}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise ValueError(f"{p}:{n}: each line must be an object with a string `text`")
        spans = row.get("spans", [])
        if not isinstance(spans, list):
            raise ValueError(f"{p}:{n}: `spans` must be a list of {{start, end, entity}}")
        parsed = []
        for i, sp in enumerate(spans):
            start = sp.get("start", sp.get("start_position")) if isinstance(sp, dict) else None
            end = sp.get("end", sp.get("end_position")) if isinstance(sp, dict) else None
            entity = sp.get("entity", sp.get("entity_type")) if isinstance(sp, dict) else None
            if not (isinstance(start, int) and isinstance(end, int) and isinstance(entity, str)
                    and 0 <= start < end <= len(row["text"])):
                raise ValueError(f"{p}:{n}: spans[{i}] needs integer `start` < `end` within the text "
                                 f"({len(row['text'])} characters) and a string `entity`")
            parsed.append((start, end, ALIASES.get(entity.upper(), entity.upper())))
        lang = row.get("lang")
        out.append(LabeledSample(row["text"], parsed, lang if isinstance(lang, str) else None))
    if not out:
        raise ValueError(f"{p}: no records")
    return out, hashlib.sha256(raw).hexdigest()


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def evaluate(redactor: Any, samples: list[LabeledSample]) -> dict[str, Any]:
    """Per-entity counts and precision / recall / F2 of ``redactor`` (a :class:`PIIRedactor`) on
    ``samples``, with the findings redaction acts on (allow list and language rules applied)."""
    findings = redactor.findings_batch([s.text for s in samples], [s.lang for s in samples])
    gold: Counter[str] = Counter()
    caught: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    for sample, found in zip(samples, findings, strict=True):
        covered = [False] * len(sample.text)
        for f in found:
            for i in range(f.start, f.end):
                covered[i] = True
        for start, end, entity in sample.spans:
            gold[entity] += 1
            if all(covered[i] for i in range(start, end) if sample.text[i].isalnum()):
                caught[entity] += 1
        for f in found:
            predicted[f.entity_type] += 1
            if any(f.start < end and start < f.end for start, end, _ in sample.spans):
                correct[f.entity_type] += 1
    entities = {}
    for entity in sorted(set(gold) | set(predicted)):
        p, r = _ratio(correct[entity], predicted[entity]), _ratio(caught[entity], gold[entity])
        f2 = round(5 * p * r / (4 * p + r), 4) if p is not None and r is not None and (p or r) else None
        entities[entity] = {"labelled": gold[entity], "removed": caught[entity], "found": predicted[entity],
                            "found_labelled": correct[entity], "precision": p, "recall": r, "f2": f2,
                            "configured": entity in redactor.entities}
    return {"records": len(samples), "spans": sum(gold.values()), "entities": entities}


def check_minimums(result: dict[str, Any], cfg: Any) -> list[str]:
    """What falls below ``pii.min_recall`` / ``pii.min_precision`` (``*``: every entity), one line each.
    An entity with no labelled span is not judged on recall, one never found not on precision."""
    failures = []
    for entity, m in result["entities"].items():
        for metric, table in (("recall", cfg.min_recall), ("precision", cfg.min_precision)):
            floor = table.get(entity, table.get("*"))
            value = m[metric]
            if floor is not None and value is not None and value < floor:
                failures.append(f"{entity} {metric} {value:.3f} < {floor} (pii.min_{metric})")
    return failures


def record(store: Any, result: dict[str, Any], *, labeled_file: str, sha256: str, cfg_hash: str,
           failures: list[str], now: datetime | None = None) -> dict[str, Any]:
    """Keep the figures (no text) where the privacy impact assessment reads them."""
    entry = {"at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
             "labeled": {"file": Path(labeled_file).name, "sha256": sha256},
             "config_hash": cfg_hash, "passed": not failures, "failures": failures, **result}
    store.write_bytes(LATEST, json.dumps(entry, indent=2, sort_keys=True).encode())
    return entry


def read_latest(store: Any) -> dict[str, Any] | None:
    if not store.exists(LATEST):
        return None
    return json.loads(store.read_bytes(LATEST))
