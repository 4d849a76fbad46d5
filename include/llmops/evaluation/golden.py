"""Golden test sets: versioned JSONL files under ``include/evaluation/golden/`` with a manifest.

A golden set is never trained on. Its manifest (``<name>.manifest.json``) records the version, the
number of items, the label distribution and the file's sha256; :func:`load_golden` refuses a file
that does not match its manifest, so a silently edited test set cannot skew a comparison.

``support_intents-v1`` is built from the sample-corpus templates with a seed of its own and no
planted personal data (``build_support_intents``), 25% Spanish, from two sources.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["GOLDEN_DIR", "GoldenSetError", "build_support_intents", "load_golden", "write_golden"]

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "evaluation" / "golden"


class GoldenSetError(ValueError):
    pass


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_golden(rows: list[dict[str, Any]], name: str, version: str, folder: Path = GOLDEN_DIR) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows),
                    encoding="utf-8")
    manifest = {"name": name, "version": version, "file": path.name, "sha256": _sha256(path), "items": len(rows),
                "labels": dict(sorted(Counter(str(r["label"]) for r in rows).items())),
                "langs": dict(sorted(Counter(str(r.get("lang")) for r in rows).items()))}
    (folder / f"{name}-{version}.manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def load_golden(name: str, version: str, folder: Path = GOLDEN_DIR) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows and manifest of a golden set; the file must match the manifest's sha256."""
    mpath = folder / f"{name}-{version}.manifest.json"
    if not mpath.exists():
        have = sorted(p.name.removesuffix(".manifest.json") for p in folder.glob("*.manifest.json"))
        raise GoldenSetError(f"golden set {name}-{version} not found in {folder}; available: {have}")
    manifest = json.loads(mpath.read_text())
    path = folder / manifest["file"]
    if _sha256(path) != manifest["sha256"]:
        raise GoldenSetError(f"{path} does not match its manifest (sha256); a golden set is immutable: "
                             "write a new version instead")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(rows) != manifest["items"]:
        raise GoldenSetError(f"{path}: {len(rows)} items, manifest says {manifest['items']}")
    return rows, manifest


def build_support_intents(n_per_intent: int = 40, seed: int = 20261128, redactor: Any = None) -> list[dict[str, Any]]:
    """Support messages for the six intents (no personal data planted), 25% Spanish, redacted by the
    pipeline's PII settings, so they read like curated text (``<ORDER_ID>``, ...)."""
    from llmops.sampledata import INTENTS, _message

    rng = random.Random(seed)
    rows = []
    for intent in INTENTS:
        for i in range(n_per_intent):
            lang = "es" if i % 4 == 3 else "en"
            source = "email" if rng.random() < 0.6 else "chat"
            rows.append({"id": f"gold-{intent}-{i:03d}", "text": _message(rng, lang, intent, []), "label": intent,
                         "lang": lang, "source": source, "meta": {"domain": "support"}})
    if redactor is None:  # the pipeline's own settings (custom recognizers such as ORDER_ID included)
        from llmops.config import load_config
        from llmops.privacy.pii import PIIRedactor

        redactor = PIIRedactor(load_config(Path(__file__).resolve().parents[2] / "config" / "pipeline.yaml")
                               .curation.pii)
    for row, result in zip(rows, redactor.redact_batch([r["text"] for r in rows], [r["lang"] for r in rows]),
                           strict=True):
        row["text"] = result.text
    return rows
