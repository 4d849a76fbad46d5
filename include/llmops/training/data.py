"""Training data from a labeled dataset version: deterministic, stratified splits."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any

__all__ = ["load_labeled_rows", "split_rows"]


def load_labeled_rows(store: Any, dataset: str, versions: str | list[str]) -> list[dict[str, Any]]:
    """The rows (``id``, ``text``, ``label``, ``lang``, ``source``) of one or more labeled versions, in
    the order given; an id found in several versions keeps the row of the last one (a relabel)."""
    from llmops.versions import iter_batches, read_manifest

    by_id: dict[str, dict[str, Any]] = {}
    for version in [versions] if isinstance(versions, str) else versions:
        manifest = read_manifest(store, dataset, "labeled", version)
        for batch in iter_batches(store, manifest):
            for row in batch.to_pylist():
                by_id[row["id"]] = {k: row.get(k) for k in ("id", "text", "label", "lang", "source")}
    if not by_id:
        raise ValueError(f"labeled versions {versions} hold no rows")
    return list(by_id.values())


def split_rows(rows: list[dict[str, Any]], *, validation: float, test: float, seed: int,
               key: str = "label") -> dict[str, list[dict[str, Any]]]:
    """Split per ``key`` value by a seeded hash of the id: the same rows and seed always give the
    same split, whatever the input order, and every label is spread over the splits."""
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_label[str(row[key])].append(row)
    out: dict[str, list[dict[str, Any]]] = {"train": [], "validation": [], "test": []}
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda r: hashlib.sha256(f"{seed}:{r['id']}".encode()).hexdigest())
        n = len(group)
        n_test = round(n * test)
        n_val = round(n * validation)
        if n - n_test - n_val < 1:  # keep at least one training example per label
            n_test = max(0, min(n_test, n - 1))
            n_val = max(0, min(n_val, n - 1 - n_test))
        out["test"] += group[:n_test]
        out["validation"] += group[n_test : n_test + n_val]
        out["train"] += group[n_test + n_val :]
    return out
